"""Fleet benchmark: how the full deploy scales with lab fleet size (not a test).

    .venv/bin/python bench/fleet.py                      # sizes 1,4,8; both variants
    .venv/bin/python bench/fleet.py --sizes 1,4,8,16 --json bench.json
    .venv/bin/python bench/fleet.py --sizes 1,4 --baseline before.json   # side by side with an earlier run

For each fleet size N it brings up a fresh lab fleet of its own (DEEPSEEK_LAB_FLEET=bench
unless set), then for each variant runs ``pyinfra -y inventories/lab.py deploy/full.py``
twice: the first deploy on fresh nodes and a no-op re-run, and reports per run:

* wall time of the pyinfra run;
* controller CPU seconds per host: ``pyinfra`` = the pyinfra process itself
  (``getrusage(RUSAGE_SELF)`` written by the child at exit), ``total`` = the child and
  every process it waited for (``os.times()`` children delta: adds the ``docker exec`` /
  ``docker cp`` clients the docker connector spawns, one per remote command);
* remote commands per host: counted inside the pyinfra child by wrapping
  ``Host.run_shell_command`` / ``put_file`` / ``get_file`` (every fact and every operation
  command goes through them, whatever the connector), plus the facts asked, by class.

Variants:

* ``batched``: the collection as it is (HostHardware: all hardware facts in one command;
  ``deepseek_infra.facts.host.remembered_fact``: a fact asked again while the host cannot have
  changed is not asked again; files synced, put and templated with one fact when in place);
* ``unbatched`` (baseline): the same deploy as stock pyinfra facts would be used: every
  ``HostHardware`` read replaced by its individual section facts, each its own round trip,
  nothing remembered (every ``remembered_fact`` / ``hardware_part`` asks the host), and
  stock ``files.sync`` / ``files.put`` / ``files.template`` in place of
  ``deepseek_infra.operations.sync``'s one-fact ``directory_synced`` / ``file_synced`` /
  ``template_synced``.

Ratios are unbatched / batched. ``--baseline`` adds an earlier run's figures (its
``--json``) beside these: commands and facts per host before -> now. The per-host facts by
class of the no-op re-run are printed too (what is still asked repeatedly). The no-op
re-run must report zero changes; a run that changed something is flagged. The fleet is
removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FLEET = os.environ.setdefault("DEEPSEEK_LAB_FLEET", "bench")
CHILD = "_pyinfra-child"
VARIANTS = ("batched", "unbatched")


# --- inside the pyinfra child ------------------------------------------------------------

def _child(stats_path: str, unbatched: bool, pyinfra_args: list[str]) -> None:
    import pyinfra_cli  # noqa: F401  gevent patching first, as the CLI does

    import atexit
    import resource
    from collections import Counter, defaultdict

    from pyinfra.api.host import Host

    sys.path.insert(0, str(REPO))
    calls: dict[str, Counter] = defaultdict(Counter)
    facts: dict[str, Counter] = defaultdict(Counter)

    def counted(kind: str, method):
        def wrapper(self, *args, **kwargs):
            calls[self.name][kind] += 1
            return method(self, *args, **kwargs)
        return wrapper

    Host.run_shell_command = counted("shell", Host.run_shell_command)
    Host.put_file = counted("put", Host.put_file)
    Host.get_file = counted("get", Host.get_file)

    original_get_fact = Host.get_fact

    def get_fact(self, fact_cls, *args, **kwargs):
        facts[self.name][fact_cls.__name__] += 1
        if unbatched and fact_cls.__name__ == "HostHardware":
            return _unbatched_hardware(self, original_get_fact)
        return original_get_fact(self, fact_cls, *args, **kwargs)

    Host.get_fact = get_fact
    if unbatched:
        import deepseek_infra.facts.host as host_facts

        host_facts._valid = lambda *_: (False, None)  # stock pyinfra: no reading is reused
        from pyinfra.operations import files

        import deepseek_infra.operations.sync as sync

        # The stock operations the one-fact ones stand in for (roles look them up at call time).
        sync.directory_synced, sync.file_synced, sync.template_synced = files.sync, files.put, files.template

    def write_stats() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        Path(stats_path).write_text(json.dumps({
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "calls": {host: dict(counter) for host, counter in calls.items()},
            "facts": {host: dict(counter) for host, counter in facts.items()},
        }))

    atexit.register(write_stats)
    sys.argv = ["pyinfra", *pyinfra_args]
    from pyinfra_cli.main import main

    main()


def _unbatched_hardware(host, get_fact):
    """What HostHardware returns, built from one round trip per section fact."""
    from deepseek_infra.facts.host import HARDWARE_SECTIONS, UNAVAILABLE_KEY
    from deepseek_infra.hardware import Hardware

    result: dict = {}
    unavailable: dict[str, str] = {}
    for name, fact_cls in HARDWARE_SECTIONS.items():
        value = get_fact(host, fact_cls)
        result[name] = value
        if value == fact_cls().default():
            unavailable[name] = "empty or tool missing"
    result[UNAVAILABLE_KEY] = unavailable
    return Hardware.from_sections(result)


# --- the benchmark driver ----------------------------------------------------------------

def run_pyinfra(variant: str, deploy: str) -> dict:
    """One pyinfra run in a child; wall time, CPU and counted commands."""
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        json_out = Path(tmp) / "out.json"
        command = [sys.executable, __file__, CHILD, str(stats_path), variant, "--",
                   "-y", "--json", "inventories/lab.py", deploy]
        started = time.monotonic()
        with open(json_out, "w") as stdout:
            child = subprocess.Popen(command, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE, text=True)
            _, stderr = child.communicate()
        wall = time.monotonic() - started
        if child.returncode != 0:
            raise SystemExit(f"pyinfra ({variant}) exited {child.returncode}:\n{stderr[-3000:]}")
        stats = json.loads(stats_path.read_text())
        text = json_out.read_text()
        results = json.loads(text[text.index("{"):])["results"]
    changed = sum(len(op["success"]) for op in results["operations"])
    return {"wall_s": wall, "pyinfra_cpu_s": stats["cpu_s"], "calls": stats["calls"],
            "facts": stats["facts"], "changed": changed, "errors": results["totals"]["error"]}


def summarise_run(run: dict, nodes: int, total_cpu_s: float) -> dict:
    shell = sum(c.get("shell", 0) for c in run["calls"].values())
    files = sum(c.get("put", 0) + c.get("get", 0) for c in run["calls"].values())
    fact_calls = sum(sum(f.values()) for f in run["facts"].values())
    return {
        "wall_s": round(run["wall_s"], 2),
        "pyinfra_cpu_s_per_host": round(run["pyinfra_cpu_s"] / nodes, 3),
        "total_cpu_s_per_host": round(total_cpu_s / nodes, 3),
        "commands_per_host": round((shell + files) / nodes, 1),
        "shell_per_host": round(shell / nodes, 1),
        "file_transfers_per_host": round(files / nodes, 1),
        "facts_per_host": round(fact_calls / nodes, 1),
        "facts_by_class_per_host": {
            name: round(sum(f.get(name, 0) for f in run["facts"].values()) / nodes, 1)
            for name in sorted({n for f in run["facts"].values() for n in f})
        },
        "changed": run["changed"],
        "errors": run["errors"],
    }


def measured(variant: str, nodes: int) -> dict:
    before = os.times()
    run = run_pyinfra(variant, "deploy/full.py")
    after = os.times()
    total_cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return summarise_run(run, nodes, total_cpu)


def lab(*args: str) -> str:
    result = subprocess.run([str(BIN / "python"), "-m", "lab", *args], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def bench(sizes: list[int], variants: list[str], log) -> dict:
    results: dict = {"fleet": FLEET, "cpus": os.cpu_count(), "sizes": {}}
    for nodes in sizes:
        entry: dict = {}
        try:
            for variant in variants:
                started = time.monotonic()
                lab("up", str(nodes), "--recreate")  # fresh nodes: the first deploy does everything
                up_s = time.monotonic() - started
                first = measured(variant, nodes)
                noop = measured(variant, nodes)
                entry[variant] = {"lab_up_s": round(up_s, 1), "first": first, "noop": noop}
                log(f"N={nodes:<3} {variant:<9} up {up_s:5.1f}s  first {first['wall_s']:6.1f}s "
                    f"{first['commands_per_host']:5.1f} cmd/host  noop {noop['wall_s']:5.1f}s "
                    f"{noop['commands_per_host']:5.1f} cmd/host changed={noop['changed']}")
        except SystemExit as error:  # a fleet this size did not come up or deploy: stop growing
            log(f"N={nodes}: {error}")
            results.setdefault("failed", {})[str(nodes)] = str(error)[-2000:]
            break
        results["sizes"][str(nodes)] = entry
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def render(results: dict, variants: list[str]) -> str:
    base, other = variants[0], variants[-1]
    rows = [("N", "run", "variant", "wall s", "pyinfra cpu s/host", "total cpu s/host",
             "cmds/host", "facts/host", "changed")]
    for nodes, entry in results["sizes"].items():
        for phase in ("first", "noop"):
            for variant in variants:
                r = entry[variant][phase]
                rows.append((nodes, phase, variant, f"{r['wall_s']:.1f}", f"{r['pyinfra_cpu_s_per_host']:.3f}",
                             f"{r['total_cpu_s_per_host']:.3f}", f"{r['commands_per_host']:.1f}",
                             f"{r['facts_per_host']:.1f}", str(r["changed"])))
            if len(variants) > 1:
                a, b = entry[other][phase], entry[base][phase]
                rows.append((nodes, phase, f"{other}/{base}", ratio(a["wall_s"], b["wall_s"]),
                             ratio(a["pyinfra_cpu_s_per_host"], b["pyinfra_cpu_s_per_host"]),
                             ratio(a["total_cpu_s_per_host"], b["total_cpu_s_per_host"]),
                             ratio(a["commands_per_host"], b["commands_per_host"]), "", ""))
    return table(rows)


def table(rows: list[tuple]) -> str:
    rows = [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)


def _cell(entry: dict | None, variant: str, phase: str, key: str) -> float | None:
    try:
        return entry[variant][phase][key]
    except (KeyError, TypeError):
        return None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_baseline(results: dict, baseline: dict, variants: list[str]) -> str:
    """Commands and facts per host, an earlier run (``baseline``) beside this one."""
    base, other = variants[0], variants[-1]
    rows = [("N", "run", "variant", "cmds/host before", "cmds/host now", "now/before",
             "facts/host before", "facts/host now", "changed now")]
    for nodes, entry in results["sizes"].items():
        earlier = baseline.get("sizes", {}).get(nodes)
        for phase in ("first", "noop"):
            for variant in variants:
                was, now = _cell(earlier, variant, phase, "commands_per_host"), entry[variant][phase]["commands_per_host"]
                rows.append((nodes, phase, variant, _num(was), _num(now), ratio(now, was) if was else "-",
                             _num(_cell(earlier, variant, phase, "facts_per_host")),
                             _num(entry[variant][phase]["facts_per_host"]), entry[variant][phase]["changed"]))
            if len(variants) > 1:
                was_ratio = "-"
                if _cell(earlier, base, phase, "commands_per_host") and _cell(earlier, other, phase, "commands_per_host"):
                    was_ratio = ratio(earlier[other][phase]["commands_per_host"], earlier[base][phase]["commands_per_host"])
                now_ratio = ratio(entry[other][phase]["commands_per_host"], entry[base][phase]["commands_per_host"])
                rows.append((nodes, phase, f"{other}/{base}", was_ratio, now_ratio, "", "", "", ""))
    return table(rows)


def render_fact_classes(results: dict, baseline: dict | None, variant: str, phase: str = "noop") -> str:
    """Facts asked per host by class in one phase (the no-op re-run by default), before -> now."""
    out = []
    for nodes, entry in results["sizes"].items():
        now = entry[variant][phase]["facts_by_class_per_host"]
        was = ((baseline or {}).get("sizes", {}).get(nodes) or {}).get(variant, {}).get(phase, {}).get(
            "facts_by_class_per_host", {})
        names = sorted(set(now) | set(was), key=lambda name: (-max(now.get(name, 0), was.get(name, 0)), name))
        rows = [("fact class", "per host before", "per host now")] if baseline else [("fact class", "per host")]
        for name in names:
            rows.append((name, _num(was.get(name, 0.0)), _num(now.get(name, 0.0))) if baseline else
                        (name, _num(now.get(name, 0.0))))
        out.append(f"N={nodes} {variant} {phase}: facts asked per host, by class\n{table(rows)}")
    return "\n\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        stats_path, variant, _, *pyinfra_args = sys.argv[2:]
        _child(stats_path, variant == "unbatched", pyinfra_args)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8", help="fleet sizes, comma-separated (default 1,4,8)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="batched,unbatched (first is the reference)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="leave the bench fleet running")
    parser.add_argument("--baseline", metavar="PATH", help="an earlier run's --json, shown beside this one")
    parser.add_argument("--results", metavar="PATH", help="print a saved --json instead of running (no fleet)")
    args = parser.parse_args()
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    sizes = [int(size) for size in args.sizes.split(",")]
    variants = args.variants.split(",")
    if args.results:
        results = json.loads(Path(args.results).read_text())
    else:
        try:
            results = bench(sizes, variants, log=lambda line: print(line, file=sys.stderr, flush=True))
        finally:
            if not args.keep:
                lab("down")
    print(render(results, variants))
    if baseline:
        print()
        print(render_baseline(results, baseline, variants))
    print()
    print(render_fact_classes(results, baseline, variants[0]))
    text = json.dumps(results, indent=2)
    if args.results:
        return 0
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
