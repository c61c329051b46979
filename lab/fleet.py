"""The lab fleet: N systemd containers standing in for GPU servers.

Each node gets a hardware profile (``lab/profiles/<name>``). The profile reaches the node
only the way real hardware does: simulated binaries on PATH (``lscpu``, ``numactl``,
``lspci``), driver-gated binaries staged for the simulated driver packages, and
``/proc/meminfo`` / ``/proc/cpuinfo`` bind-mounted read-only. Roles never read a lab file.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from lab import hwsim, mirror, tiny_model, weights_mirror
from lab.constants import DATA_VOLUME, FLEET, FLEET_DIR, LABEL_NODE, LABEL_PROFILE, NETWORK, STATE_DIR
from lab.docker import LabError, daemon_answers, docker, ensure_daemon, run, stop_private_daemon
from lab.image import ensure_image
from lab.nodes import list_nodes, node_name

DEFAULT_PROFILES = ("hgx-h100-8x", "workstation-rtx6000ada-2x")
# What systemd as PID 1 needs without --privileged (one capability is missing here).
SYSTEMD_RUN_ARGS = (
    "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
    # A server's /dev/shm is half its memory; Docker's 64 MiB is too small for vLLM's
    # shared-memory queues (160 MiB). A tmpfs uses only what is written.
    "--shm-size", "2g",
)


def _wait_for_systemd(name: str, timeout_s: float = 90) -> str:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        result = run(["docker", "exec", name, "systemctl", "is-system-running"], check=False)
        state = result.stdout.decode().strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.5)
    raise LabError(f"{name}: systemd did not finish booting within {timeout_s:.0f}s (state {state!r})")


_UNITS = {"TB": 10**12, "GB": 10**9, "TIB": 2**40, "GIB": 2**30}


def data_volume_bytes(profile: dict) -> int:
    """Size of the node's data filesystem: its NVMe drives beyond the first (the OS disk)."""
    sizes = []
    for disk in profile.get("nvme") or []:
        number, unit = str(disk["size"]).split()
        sizes.append(int(float(number) * _UNITS[unit.upper()]))
    return sum(sizes[1:]) if len(sizes) > 1 else sum(sizes)


def _start_node(name: str, profile: str, image: str) -> None:
    node_dir = FLEET_DIR / "nodes" / name
    shutil.rmtree(node_dir, ignore_errors=True)
    overlay, proc_dir = node_dir / "overlay", node_dir / "proc"
    overlay.mkdir(parents=True)
    proc_dir.mkdir(parents=True)
    hwsim.render_node_overlay(profile, overlay)
    binds: list[str] = []
    for target, source in hwsim.proc_overrides(profile, proc_dir).items():
        binds += ["-v", f"{Path(source).resolve()}:{target}:ro"]
    # The weights live on the node's NVMe volume: a tmpfs of that size stands in for it
    # (tmpfs only uses memory for what is written, and the lab's weights are small).
    volume = data_volume_bytes(hwsim.load_profile(profile))
    if volume:
        binds += ["--mount", f"type=tmpfs,destination={DATA_VOLUME},tmpfs-size={volume}"]
    docker(
        "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
        "--stop-signal", "SIGRTMIN+3",  # what systemd as PID 1 shuts down on
        "--label", f"{LABEL_NODE}={FLEET}", "--label", f"{LABEL_PROFILE}={profile}",
        *SYSTEMD_RUN_ARGS, *binds, image, "/sbin/init",
    )
    docker("cp", f"{overlay}/.", f"{name}:/")
    _wait_for_systemd(name)


def up(count: int, profiles: tuple[str, ...] = DEFAULT_PROFILES, recreate: bool = False, log=print,
       os_name: str | None = None) -> list[Node]:
    """Make the fleet exactly ``count`` running nodes; profiles are assigned round-robin;
    ``os_name`` (debian12, debian13; default ``$DEEPSEEK_LAB_OS``) picks the nodes' image.

    Nodes that already run with the same profile and image are kept unless ``recreate``.
    """
    if count < 1:
        raise LabError(f"node count must be at least 1, got {count}")
    known = hwsim.list_profiles()
    for profile in profiles:
        if profile not in known:
            raise LabError(f"unknown hardware profile {profile!r}; shipped profiles: {', '.join(known)}")
    ensure_daemon(STATE_DIR)
    FLEET_DIR.mkdir(parents=True, exist_ok=True)
    image = ensure_image(log=log, os_name=os_name)
    if run(["docker", "network", "inspect", NETWORK], check=False).returncode != 0:
        docker("network", "create", "--label", f"{LABEL_NODE}={FLEET}", NETWORK)

    wanted = {node_name(i + 1): profiles[i % len(profiles)] for i in range(count)}
    existing = {node.name: node for node in list_nodes()}
    for name, node in existing.items():
        image_now = docker("inspect", "--format", "{{.Config.Image}}", name).strip()
        if recreate or name not in wanted or node.profile != wanted[name] or image_now != image:
            why = "recreate" if recreate else "not wanted" if name not in wanted else "profile or image changed"
            log(f"{name}: removing ({why})")
            docker("rm", "-f", "-v", name)
        elif node.status != "running":
            docker("start", name)
            _wait_for_systemd(name)
    current = {node.name for node in list_nodes()}
    for name, profile in wanted.items():
        if name in current:
            log(f"{name}: running ({profile}), kept")
            continue
        log(f"{name}: starting with profile {profile}")
        _start_node(name, profile, image)
    (FLEET_DIR / "fleet.json").write_text(json.dumps(wanted, indent=2) + "\n")
    # What a full deploy reads besides the nodes: the NVIDIA package mirror, the weights
    # mirror, and the engine's tiny checkpoint (lab stand-ins for a site's internal services).
    mirror.up(log=log)
    weights_mirror.up(log=log)
    checkpoint = tiny_model.build(log=log)
    for name in wanted:
        tiny_model.place(name, checkpoint, log=log)
    return list_nodes()


def reboot(name: str, log=print) -> None:
    """Restart a node's container: /run is emptied and boot units run again, as on a reboot."""
    if name not in {node.name for node in list_nodes()}:
        raise LabError(f"{name}: not a node of fleet {FLEET!r}")
    log(f"{name}: rebooting (docker restart)")
    docker("restart", name)
    # Boot runs every enabled unit again; the engine's start waits for its model to load.
    _wait_for_systemd(name, timeout_s=300)


def down(log=print) -> None:
    """Remove the fleet's nodes and network; stop the lab's own dockerd once no fleet is left."""
    others = False
    if daemon_answers():
        for node in list_nodes():
            log(f"{node.name}: removing")
            docker("rm", "-f", "-v", node.name)
        mirror.down(log=log)
        weights_mirror.down(log=log)
        if run(["docker", "network", "inspect", NETWORK], check=False).returncode == 0:
            docker("network", "rm", NETWORK)
        others = bool(docker("ps", "-aq", "--filter", f"label={LABEL_NODE}").strip())
    shutil.rmtree(FLEET_DIR, ignore_errors=True)
    if not others and stop_private_daemon(STATE_DIR):
        log("stopped the lab's private dockerd")


def status() -> list[str]:
    if not daemon_answers():
        return ["no Docker daemon answers: the lab is down"]
    nodes = list_nodes()
    if not nodes:
        return ["no lab nodes (run `python -m lab up N`)"]
    lines = []
    for node in nodes:
        summary = hwsim.profile_summary(node.profile) if node.profile in hwsim.list_profiles() else "?"
        lines.append(f"{node.name}\t{node.status}\t{node.profile}\t{summary}")
    return lines
