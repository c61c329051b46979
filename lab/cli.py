"""`python -m lab`: bring the local lab fleet up, down, or show it.

Run with the controller venv's python from the repository root (lab/ is not installed)::

    python -m lab up 2 [--profile hgx-h100-8x,workstation-rtx6000ada-2x] [--recreate] [--os debian13]
    python -m lab status
    python -m lab down
    python -m lab image          # build (or reuse) the node image only
    python -m lab profiles       # list shipped hardware profiles
    python -m lab hosts          # running nodes as testinfra --hosts
    python -m lab mirror build|up|down|status   # the fleet's NVIDIA package mirror (lab/mirror)
    python -m lab reboot NODE    # restart a node's container: what a reboot does to loaded modules
    python -m lab weights-mirror up|down|generate   # the fleet's HTTP weights mirror (lab/weights_mirror.py)
"""

from __future__ import annotations

import argparse
import sys

from lab.docker import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="The local lab fleet of simulated GPU nodes.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run exactly N nodes")
    up.add_argument("count", type=int, help="number of nodes")
    up.add_argument(
        "--profile", default=None,
        help="hardware profile(s), comma-separated, assigned round-robin (default: %(default)s)",
    )
    up.add_argument("--recreate", action="store_true", help="replace running nodes with fresh ones")
    up.add_argument("--os", default=None, choices=("debian12", "debian13"),
                    help="the nodes' distribution (default: $DEEPSEEK_LAB_OS, else debian12)")
    commands.add_parser("down", help="remove every node (and the lab's own dockerd)")
    commands.add_parser("status", help="show the nodes and their profiles")
    image = commands.add_parser("image", help="build the node image if its inputs changed")
    image.add_argument("--os", default=None, choices=("debian12", "debian13"),
                       help="the image's distribution (default: $DEEPSEEK_LAB_OS, else debian12)")
    commands.add_parser("profiles", help="list the shipped hardware profiles")
    commands.add_parser("hosts", help="the running nodes as testinfra hosts (docker://a,docker://b)")
    mirror = commands.add_parser("mirror", help="the fleet's simulated NVIDIA package mirror")
    mirror.add_argument("action", choices=("build", "up", "down", "status"))
    mirror.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    weights = commands.add_parser("weights-mirror", help="the fleet's HTTP weights mirror (<fleet>-weights)")
    weights.add_argument("action", choices=("up", "down", "generate"))
    weights.add_argument("directory", nargs="?", help="generate: where to write the checkpoint")
    weights.add_argument("--revision", action="append", help="revision(s) to publish (default lab-1)")
    weights.add_argument("--loadable-revision", action="append", default=[],
                         help="revision(s) to publish as the tiny V3-layout checkpoint the engines load")
    weights.add_argument("--model", default=None, help="repo id (default: the lab inventory's model)")
    weights.add_argument("--shard-mib", type=int, default=8, help="size of the big shard, MiB")
    weights.add_argument("--bench-gib", type=float, default=0, help="also publish revision 'bench' of this size")
    reboot = commands.add_parser("reboot", help="restart a node (kernel modules reload, /run is emptied)")
    reboot.add_argument("node", help="node name, e.g. ds-node-1")
    args = parser.parse_args(argv)

    from lab import fleet, hwsim, nodes
    from lab.constants import STATE_DIR

    try:
        if args.command == "up":
            profiles = tuple(args.profile.split(",")) if args.profile else fleet.DEFAULT_PROFILES
            fleet.up(args.count, profiles, recreate=args.recreate, os_name=args.os)
            print("\n".join(fleet.status()))
        elif args.command == "down":
            fleet.down()
        elif args.command == "status":
            print("\n".join(fleet.status()))
        elif args.command == "image":
            from lab.docker import ensure_daemon
            from lab.image import ensure_image

            ensure_daemon(STATE_DIR)
            print(ensure_image(os_name=args.os))
        elif args.command == "hosts":
            running = [node.name for node in nodes.list_nodes() if node.status == "running"]
            if not running:
                raise LabError("no lab node is running (python -m lab up N)")
            print(",".join(f"docker://{name}" for name in running))
        elif args.command == "mirror":
            from lab import mirror as lab_mirror

            if args.action == "build":
                lab_mirror.build(force=args.force)
            elif args.action == "up":
                lab_mirror.up()
            elif args.action == "down":
                lab_mirror.down()
            print(lab_mirror.status())
        elif args.command == "weights-mirror":
            from pathlib import Path

            from lab import weights_mirror

            model = args.model or weights_mirror.LAB_MODEL
            loadable = tuple(args.loadable_revision)
            revisions = tuple(args.revision or ([] if loadable else weights_mirror.LAB_REVISIONS))
            if args.action == "up":
                weights_mirror.up(revisions, model, args.shard_mib, args.bench_gib, loadable=loadable)
            elif args.action == "down":
                weights_mirror.down()
            elif not args.directory:
                raise LabError("weights-mirror generate needs a DIRECTORY")
            else:
                print(weights_mirror.generate_checkpoint(Path(args.directory), model, revisions[0], args.shard_mib))
        elif args.command == "reboot":
            fleet.reboot(args.node)
        elif args.command == "profiles":
            for name in hwsim.list_profiles():
                print(f"{name}\t{hwsim.profile_summary(name)}")
    except LabError as error:
        print(f"lab: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
