"""The one home of per-run caches: values computed once per pyinfra run and shared by hosts.

pyinfra builds one ``State`` per run; a cache hung on it lives exactly as long as the run
(a test's second ``State`` starts empty). Every cache of the collection goes through
``run_cache`` with its own name, so they are found in one place and cannot collide:

    manifests = run_cache(host.state, "weights.manifests")
    manifest = cached(manifests, path, lambda: load_manifest(path))
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pyinfra.api.state import State

_ATTRIBUTE = "_deepseek_run_cache"
T = TypeVar("T")


def run_cache(state: State, name: str) -> dict[Any, Any]:
    """The run's cache called ``name`` (``"<role or module>.<what>"``), created empty on first use."""
    caches: dict[str, dict[Any, Any]] = state.__dict__.setdefault(_ATTRIBUTE, {})
    return caches.setdefault(name, {})


def cached(cache: dict[Any, Any], key: Hashable, build: Callable[[], T]) -> T:
    """``cache[key]``, built with ``build()`` the first time it is asked for."""
    if key not in cache:
        cache[key] = build()
    return cache[key]
