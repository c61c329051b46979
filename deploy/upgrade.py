"""Rolling upgrade of a fleet, batch by batch, through pyinfra's Python API.

    python deploy/upgrade.py inventories/lab.py --set weights_revision=lab-2 \\
        --set weights_manifest=/path/lab-2/MANIFEST.dsw.json \\
        --batch-size 1 --canary 1 --max-fail 0 --report upgrade.json

The unit is the replica (``deepseek_replica``; a host of its own by default): per batch
(canary replicas first, then ``--batch-size`` replicas at a time; a count or ``25%``), all
hosts of a replica together: drain each head's gateway (``deepseek-gateway drain --wait``, after ``--lb-drain CMD`` on
this controller), apply the deploy files (default ``deploy/full.py``; name per-role files
such as ``deploy/weights.py deploy/serve.py`` to apply only those roles) with the
``--set`` overrides, reboot hosts a role marked reboot-required (``deploy/reboot.py``;
containers are reported, never rebooted), after a driver change run the acceptance gate
(``deploy/acceptance.py``; ``--acceptance always|never|auto``, auto: the deploy files include
full.py, nvidia_driver.py or cuda.py), run the health gates (``deploy/health.py``),
then re-admit (``drain --resume``, then ``--lb-admit CMD``). A host that fails fails its
replica. Once more replicas failed than ``--max-fail`` (a count or a percentage) the rollout
stops and every host of the failed replicas is rolled back: the same deploy files with the inventory's own data (the previous revision and
engine settings) plus ``--rollback-set`` (e.g. ``weights_action=rollback``); hosts not
started stay untouched. ``--host-set HOST:KEY=VALUE`` overrides data for one host only.

The state file (``--state``, default ``<report>.state.json``) is written after every
step: rerun the same command after an interruption and the rollout continues with the
hosts it had not finished. Exit status: 0 every host upgraded, 1 a host failed (rolled
back or not), 2 refused before any host was changed.
"""

if __name__ != "__main__":
    raise SystemExit("deploy/upgrade.py is a program, not a deploy file: run `python deploy/upgrade.py INVENTORY ...`")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json

from fleet.audit import configure_logging, parse_data
from fleet.rollout import RolloutError, load_or_start, target_key
from fleet.upgrade import UpgradeSpec, execute, inventory_hosts, inventory_units, validate


def host_data(pairs: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for pair in pairs:
        host, sep, rest = pair.partition(":")
        if not sep or not host:
            raise RolloutError(f"--host-set {pair!r}: expected HOST:KEY=VALUE")
        found.setdefault(host, {}).update(parse_data([rest]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/upgrade.py", description=__doc__.splitlines()[0])
    parser.add_argument("inventory", help="pyinfra inventory file")
    parser.add_argument("deploy", nargs="*", default=["deploy/full.py"], help="deploy files to apply (default: deploy/full.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="host data of the upgrade (every host)")
    parser.add_argument("--host-set", action="append", default=[], metavar="HOST:KEY=VALUE", help="host data of the upgrade, one host")
    parser.add_argument("--rollback-set", action="append", default=[], metavar="KEY=VALUE", help="host data of the rollback run")
    parser.add_argument("--batch-size", default="1", help="replicas per batch: a count or a percentage (default 1)")
    parser.add_argument("--canary", default="1", help="replicas of the first, canary batch: count or percentage, 0 for none (default 1)")
    parser.add_argument("--max-fail", default="0", help="failed replicas tolerated before stopping: count or percentage (default 0)")
    parser.add_argument("--drain-wait", type=float, default=30, help="seconds the gateway waits for in-flight requests (default 30)")
    parser.add_argument("--lb-drain", help="controller command run per replica head before draining ({host} is replaced)")
    parser.add_argument("--lb-admit", help="controller command run per replica head after re-admitting ({host} is replaced)")
    parser.add_argument("--acceptance", choices=("auto", "always", "never"), default="auto",
                        help="run deploy/acceptance.py after the reboot step (auto: when the deploy files can change the driver)")
    parser.add_argument("--limit", action="append", default=[], metavar="HOST_OR_GROUP", help="upgrade only these hosts or groups")
    parser.add_argument("--report", default="upgrade-report.json", help="JSON report path (default upgrade-report.json)")
    parser.add_argument("--state", help="state file for resuming (default: REPORT.state.json)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log pyinfra's progress to stderr")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    report = Path(args.report)
    state_path = Path(args.state) if args.state else report.with_name(report.name + ".state.json")
    try:
        spec = UpgradeSpec(
            inventory=args.inventory, deploy_files=args.deploy, data=parse_data(args.set),
            host_data=host_data(args.host_set), rollback_data=parse_data(args.rollback_set),
            drain_wait_s=args.drain_wait, lb_drain=args.lb_drain, lb_admit=args.lb_admit, limit=args.limit,
            acceptance=args.acceptance,
        )
        hosts = inventory_hosts(spec)
        unknown = sorted(set(spec.host_data) - set(hosts))
        if unknown:
            raise RolloutError(f"--host-set: {', '.join(unknown)} not in this rollout's hosts {hosts}")
        validate(spec)
        key = target_key(args.deploy, spec.data, spec.host_data)
        units = inventory_units(spec, hosts)
        rollout = load_or_start(state_path, key, hosts, args.batch_size, args.canary, args.max_fail, units)
    except (RolloutError, SystemExit, Exception) as error:  # noqa: BLE001  refused before any host was changed
        print(f"upgrade refused, no host was changed: {error}", file=sys.stderr)
        return 2
    if rollout.runs > 1:
        done = [name for name, outcome in rollout.hosts.items() if outcome.status == "upgraded"]
        print(f"resuming from {state_path} (run {rollout.runs}): already upgraded: {', '.join(done) or 'none'}")
    rollout = execute(spec, rollout, state_path)
    doc = rollout.to_dict() | {"inventory": args.inventory, "deploy": args.deploy, "data": spec.data,
                               "host_data": spec.host_data, "state_file": str(state_path)}
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    for name, outcome in rollout.hosts.items():
        print(f"{name}: {outcome.status}" + (f" ({outcome.step}: {outcome.error})" if outcome.error else "")
              + (f"; {outcome.rollback}" if outcome.rollback else ""))
    print(f"report: {report}")
    return 0 if rollout.ok else 1


sys.exit(main())
