"""deepseek_infra/runcache.py: one cache per name and run, built once per key; and the only
place a cache is hung on pyinfra's State."""

import ast
from pathlib import Path
from types import SimpleNamespace

from deepseek_infra.runcache import cached, run_cache


def test_a_cache_is_per_name_and_per_run():
    first, second = SimpleNamespace(), SimpleNamespace()
    run_cache(first, "weights.manifests")["m"] = 1
    assert run_cache(first, "weights.manifests") == {"m": 1}
    assert run_cache(first, "weights.keys") == {}
    assert run_cache(second, "weights.manifests") == {}


def test_cached_builds_once_per_key():
    calls = []
    cache = {}
    for _ in range(3):
        assert cached(cache, "k", lambda: calls.append(1) or len(calls)) == 1
    assert cached(cache, "other", lambda: "x") == "x"
    assert calls == [1]


# --- one home: no ad-hoc attribute on pyinfra's State anywhere else ---------------------------

REPO = Path(__file__).resolve().parents[3]
SCANNED = ("deepseek_infra", "roles", "fleet", "deploy")
HOME = "deepseek_infra/runcache.py"


def _is_state(node: ast.expr) -> bool:
    """``state``, ``host.state``, ``target.state``, ``self.state``..."""
    return (isinstance(node, ast.Name) and node.id == "state") or (isinstance(node, ast.Attribute) and node.attr == "state")


def ad_hoc_state_caches(source: str) -> list[str]:
    """``line: text`` of each cache hung on a State outside ``run_cache``: ``state.__dict__``,
    ``setattr(state, ...)``/``getattr(state, ...)``, or a ``state._deepseek*`` attribute."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _is_state(node.value) and (
            node.attr == "__dict__" or node.attr.startswith("_deepseek")
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in {"setattr", "getattr", "vars"} and node.args and _is_state(node.args[0])):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_catches_each_ad_hoc_cache():
    offending = '''
cache = host.state.__dict__.setdefault("_deepseek_x", {})
cached = getattr(state, "_deepseek_settings", None)
state._deepseek_settings = cached
setattr(target.state, "memo", {})
vars(host.state)["y"] = 1
'''
    assert sorted(int(hit.split(":")[0]) for hit in ad_hoc_state_caches(offending)) == [2, 3, 4, 5, 6]
    fine = '''
cache = run_cache(host.state, "weights.manifests")
stage = host.state.current_stage
'''
    assert ad_hoc_state_caches(fine) == []


def test_every_run_cache_lives_in_runcache():
    offenders = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative != HOME:
                offenders += [f"{relative}:{hit}" for hit in ad_hoc_state_caches(path.read_text())]
    assert not offenders, f"use run_cache(state, name) ({HOME}):\n" + "\n".join(offenders)
    assert ad_hoc_state_caches((REPO / HOME).read_text()), "the scan must see the one home's own use"
