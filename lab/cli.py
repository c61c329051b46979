"""`lab`: bring the local lab fleet up, down, or show it.

    lab up 2 [--profile hgx-h100-8x,workstation-rtx6000ada-2x] [--recreate]
    lab status
    lab down
    lab image          # build (or reuse) the node image only
    lab profiles       # list shipped hardware profiles
    lab hosts          # running nodes as testinfra --hosts
"""

from __future__ import annotations

import argparse
import sys

from lab.docker import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description="The local lab fleet of simulated GPU nodes.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run exactly N nodes")
    up.add_argument("count", type=int, help="number of nodes")
    up.add_argument(
        "--profile", default=None,
        help="hardware profile(s), comma-separated, assigned round-robin (default: %(default)s)",
    )
    up.add_argument("--recreate", action="store_true", help="replace running nodes with fresh ones")
    commands.add_parser("down", help="remove every node (and the lab's own dockerd)")
    commands.add_parser("status", help="show the nodes and their profiles")
    commands.add_parser("image", help="build the node image if its inputs changed")
    commands.add_parser("profiles", help="list the shipped hardware profiles")
    commands.add_parser("hosts", help="the running nodes as testinfra hosts (docker://a,docker://b)")
    args = parser.parse_args(argv)

    from lab import fleet, hwsim

    try:
        if args.command == "up":
            profiles = tuple(args.profile.split(",")) if args.profile else fleet.DEFAULT_PROFILES
            fleet.up(args.count, profiles, recreate=args.recreate)
            print("\n".join(fleet.status()))
        elif args.command == "down":
            fleet.down()
        elif args.command == "status":
            print("\n".join(fleet.status()))
        elif args.command == "image":
            from lab.docker import ensure_daemon
            from lab.image import ensure_image

            ensure_daemon(fleet.STATE_DIR)
            print(ensure_image())
        elif args.command == "hosts":
            running = [node.name for node in fleet.list_nodes() if node.status == "running"]
            if not running:
                raise LabError("no lab node is running (lab up N)")
            print(",".join(f"docker://{name}" for name in running))
        elif args.command == "profiles":
            for name in hwsim.list_profiles():
                print(f"{name}\t{hwsim.profile_summary(name)}")
    except LabError as error:
        print(f"lab: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
