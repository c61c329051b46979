"""Drift audit of a fleet: would the deploy change anything? Runs nothing on any host.

    python deploy/audit.py inventories/prod.py                    # audits deploy/full.py
    python deploy/audit.py inventories/prod.py deploy/base.py --json
    python deploy/audit.py inventories/prod.py --limit gpu_nodes --data base_ntp_servers='["ntp1"]'

Exit status: 0 no drift, 1 drift on some host, 2 a host could not be audited (unreachable,
a fact that failed) or the inventory was refused. Pending cache refreshes (``apt-get
update`` past ``base_apt_cache_valid_s``) are listed but are not drift unless ``--strict``.
Run from the repository root (cron: ``cd /srv/deepseek-infra && .venv/bin/python deploy/audit.py
inventories/prod.py --json > /var/log/deepseek-audit.json``). Not a pyinfra deploy file:
``pyinfra inventory deploy/audit.py`` is refused.
"""

if __name__ != "__main__":
    raise SystemExit("deploy/audit.py is a program, not a deploy file: run `python deploy/audit.py INVENTORY [DEPLOY...]`")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.audit import audit, configure_logging, parse_data  # noqa: E402  (gevent patch first)

import argparse  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/audit.py", description=__doc__.splitlines()[0])
    parser.add_argument("inventory", help="pyinfra inventory (file, host list or @connector/host)")
    parser.add_argument("deploy", nargs="*", default=["deploy/full.py"], help="deploy files (default: deploy/full.py)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="override host data, as pyinfra --data")
    parser.add_argument("--limit", action="append", default=[], metavar="HOST_OR_GROUP", help="audit only these hosts or groups")
    parser.add_argument("--strict", action="store_true", help="count pending cache refreshes and guarded operations as drift")
    parser.add_argument("-v", "--verbose", action="store_true", help="log pyinfra's progress to stderr")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        summary = audit(args.inventory, args.deploy, parse_data(args.data), args.limit, args.strict)
    except Exception as error:  # inventory refused, deploy file raised, no host reachable
        print(f"audit failed before any host was evaluated: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(summary.to_json() if args.json else summary.render_table())
    return summary.exit_code


sys.exit(main())
