"""deepseek_infra/runcache.py: one cache per name and run, built once per key."""

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
