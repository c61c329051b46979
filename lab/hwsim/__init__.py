"""LAB SIMULATION: hardware profiles and simulated hardware tools for lab nodes.

The lab runs Debian systemd containers without GPUs. Each node gets a hardware
profile (``lab/profiles/<name>/profile.yaml`` plus real command captures) and
the simulated binaries in ``lab/hwsim/bin/`` that print what the real tools
print on that hardware. Nothing here is used by the collection's roles: they
only ever run ``nvidia-smi``, ``lscpu``, ... and read ``/proc``.

Node layout written by :func:`render_node_overlay` (copied with
``docker cp dest_dir/. node:/``)::

    usr/lib/deepseek-lab/hw/profile.json        validated profile
    usr/lib/deepseek-lab/hw/captures/...        capture files it references
    usr/lib/deepseek-lab/hw/query-gpu-fields.txt
    usr/local/bin/{lscpu,numactl,lspci}         present before any driver
    usr/lib/deepseek-lab/sim-packages/nvidia-driver/usr/bin/nvidia-smi
    usr/lib/deepseek-lab/sim-packages/infiniband-diags/usr/sbin/ibstat
    usr/lib/deepseek-lab/sim-packages/perftest/usr/bin/ib_write_bw
    usr/lib/deepseek-lab/sim-packages/datacenter-gpu-manager/usr/bin/dcgmi
        (run by the lab mirror's DCGM packages' /usr/bin/dcgmi, lab/mirror/sim/dcgmi)
    opt/nccl-tests/build/all_reduce_perf        nccl-tests as a site ships it (roles/acceptance)
    usr/lib/deepseek-lab/sim-packages/activate  + etc/apt/apt.conf.d/99deepseek-lab-sim-packages
        (apt hook: once Debian's infiniband-diags / perftest is installed, /usr/local/sbin/ibstat
        and /usr/local/bin/ib_write_bw point at the simulated tools, ahead of the real ones on PATH)

The acceptance tools (dcgmi, all_reduce_perf, ib_write_bw) print figures derived from the
profile's fabric, or the profile's optional ``acceptance`` block (a degraded machine). A
profile may ``extends: <profile>``: it is that profile with its own top-level keys replacing
the parent's, and the parent's captures.

The simulated ``nvidia-smi`` also needs ``usr/lib/deepseek-lab/hw/driver-loaded``
(created by the simulated driver package) or it fails like a node without a
loaded NVIDIA kernel module.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = [
    "HW_DIR",
    "PROFILES_DIR",
    "ProfileError",
    "list_profiles",
    "load_profile",
    "meminfo_text",
    "cpuinfo_text",
    "parse_cpulist",
    "proc_overrides",
    "profile_summary",
    "render_node_overlay",
]

PROFILES_DIR: Final[Path] = Path(__file__).resolve().parent.parent / "profiles"
BIN_DIR: Final[Path] = Path(__file__).resolve().parent / "bin"
FIELDS_FILE: Final[Path] = Path(__file__).resolve().parent / "data" / "query-gpu-fields.txt"
# Where the overlay puts the profile on the node (the simulated tools read it).
HW_DIR: Final[str] = "usr/lib/deepseek-lab/hw"
SIM_PACKAGES_DIR: Final[str] = "usr/lib/deepseek-lab/sim-packages"
# Simulated tool -> path inside the overlay.
TOOL_PATHS: Final[dict[str, str]] = {
    "lscpu": "usr/local/bin/lscpu",
    "numactl": "usr/local/bin/numactl",
    "lspci": "usr/local/bin/lspci",
    "nvidia-smi": f"{SIM_PACKAGES_DIR}/nvidia-driver/usr/bin/nvidia-smi",
    "ibstat": f"{SIM_PACKAGES_DIR}/infiniband-diags/usr/sbin/ibstat",
    "ib_write_bw": f"{SIM_PACKAGES_DIR}/perftest/usr/bin/ib_write_bw",
    "dcgmi": f"{SIM_PACKAGES_DIR}/datacenter-gpu-manager/usr/bin/dcgmi",
    "all_reduce_perf": "opt/nccl-tests/build/all_reduce_perf",
}
# Optional ``acceptance`` keys of a profile (what the acceptance tools print) -> type.
ACCEPTANCE_KEYS: Final[dict[str, type | tuple[type, ...]]] = {
    "allreduce_busbw_gbps": (int, float),  # busbw at the largest size; default from the fabric
    "ib_write_bw_gbps": dict,  # CA name -> average Gb/s; default 0.97 x the port rate
    "dcgm_failures": dict,  # dcgm test name (DCGM 4: memory, pcie, ...) -> failing GPU indices
}
# apt hook exposing a simulated tool once its distribution package is installed
# (infiniband-diags -> ibstat): hook file -> path inside the overlay.
HOOKS_DIR: Final[Path] = Path(__file__).resolve().parent / "hooks"
SIM_HOOKS: Final[dict[str, str]] = {
    "activate-sim-packages": f"{SIM_PACKAGES_DIR}/activate",
    "99deepseek-lab-sim-packages": "etc/apt/apt.conf.d/99deepseek-lab-sim-packages",
}
# Outputs a profile can take from a capture file; all others are generated.
CAPTURE_VIEWS: Final[frozenset[str]] = frozenset(
    {"nvidia-smi", "nvidia-smi-q", "nvidia-smi-topo-m", "ibstat", "lscpu", "numactl-hardware"}
)
ALWAYS_GENERATED: Final[frozenset[str]] = frozenset(
    {"nvidia-smi-L", "nvidia-smi-query-gpu", "lspci", "meminfo", "cpuinfo"}
)
REQUIRED_CAPTURES: Final[frozenset[str]] = frozenset({"nvidia-smi-topo-m"})
_TOP_LEVEL: Final[dict[str, type | tuple[type, ...]]] = {
    "description": str,
    "captures": dict,
    "generated": list,
    "sources": list,
    "cpu": dict,
    "numa": dict,
    "memory_total_kb": int,
    "driver_version": str,
    "cuda_version": str,
    "nvswitch": bool,
    "gpus": list,
    "pci": list,
    "infiniband": list,
    "nvme": list,
    "nics": list,
}
_BUS_ID = re.compile(r"^[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]$")
_SLOT = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_HEX4 = re.compile(r"^[0-9a-f]{4}$")
_GUID = re.compile(r"^0x[0-9a-f]{16}$")


class ProfileError(ValueError):
    """A hardware profile is missing, malformed or inconsistent."""


def parse_cpulist(text: str) -> list[int]:
    """Expand a Linux cpulist ("0-47,96-143") into sorted CPU numbers."""
    cpus: set[int] = set()
    for part in str(text).split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad cpulist {text!r}")
        cpus.update(range(int(lo), int(hi if sep else lo) + 1))
    return sorted(cpus)


def query_fields() -> tuple[dict[str, str], dict[str, str]]:
    """Valid ``--query-gpu`` fields -> header text, and alias -> field."""
    headers: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for line in FIELDS_FILE.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if " = " in line:
            alias, field = line.split(" = ")
            aliases[alias] = field
        else:
            headers[line.split(" [")[0]] = line
    return headers, aliases


def list_profiles() -> list[str]:
    """Names of the shipped profiles (directories holding a profile.yaml)."""
    return sorted(p.parent.name for p in PROFILES_DIR.glob("*/profile.yaml"))


def load_profile(name: str, profiles_dir: Path | None = None) -> dict[str, Any]:
    """Read and validate ``<profiles_dir>/<name>/profile.yaml``.

    Returns the profile with ``name`` added and ``gpu_common`` merged into each
    entry of ``gpus`` (all GPU values as strings). Raises ProfileError naming
    the file and the field on bad input.
    """
    base = (profiles_dir or PROFILES_DIR) / name
    path = base / "profile.yaml"
    if not path.is_file():
        known = ", ".join(list_profiles()) if profiles_dir is None else str(profiles_dir)
        raise ProfileError(f"{path}: no such profile {name!r} (known: {known})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping at top level, found {type(data).__name__}")
    parent = data.pop("extends", None)
    captures_from = name
    if parent is not None:
        parent_path = (profiles_dir or PROFILES_DIR) / str(parent) / "profile.yaml"
        if not isinstance(parent, str) or parent == name or not parent_path.is_file():
            raise ProfileError(f"{path}: extends: expected another profile's name, found {parent!r}")
        parent_data = yaml.safe_load(parent_path.read_text())
        if "extends" in parent_data:
            raise ProfileError(f"{path}: extends: {parent} extends another profile itself (one level only)")
        data, base, captures_from = {**parent_data, **data}, parent_path.parent, parent
    _Validator(path, base).run(data)
    data["captures_from"] = captures_from
    common = {k: _gpu_value(v) for k, v in (data.pop("gpu_common", None) or {}).items()}
    data["gpus"] = [{**common, **{k: _gpu_value(v) for k, v in g.items()}} for g in data["gpus"]]
    data["name"] = name
    data.setdefault("hugepages", {"total": 0, "size_kb": 2048})
    return data


def _gpu_value(value: Any) -> str:
    return str(value)


class _Validator:
    def __init__(self, path: Path, base: Path) -> None:
        self.path = path
        self.base = base

    def fail(self, field: str, problem: str) -> None:
        raise ProfileError(f"{self.path}: {field}: {problem}")

    def need(self, obj: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        field = f"{where}.{key}" if where else key
        if key not in obj:
            self.fail(field, "missing")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(field, f"expected {names}, found {value!r}")
        return value

    def run(self, d: dict) -> None:
        for key, kind in _TOP_LEVEL.items():
            self.need(d, key, kind, "")
        self.captures(d)
        ncpu = self.cpu(d["cpu"])
        self.numa(d, ncpu)
        self.gpus(d)
        self.pci(d)
        self.infiniband(d)
        for i, disk in enumerate(d["nvme"]):
            for key in ("name", "model", "size"):
                self.need(disk, key, str, f"nvme[{i}]")
        for i, nic in enumerate(d["nics"]):
            for key in ("name", "speed"):
                self.need(nic, key, str, f"nics[{i}]")
        self.acceptance(d)

    def acceptance(self, d: dict) -> None:
        block = d.get("acceptance", {})
        if not isinstance(block, dict):
            self.fail("acceptance", f"expected a mapping, found {block!r}")
        for key, value in block.items():
            if key not in ACCEPTANCE_KEYS:
                self.fail(f"acceptance.{key}", f"unknown key; expected one of {sorted(ACCEPTANCE_KEYS)}")
            self.need(block, key, ACCEPTANCE_KEYS[key], "acceptance")
        cas = {ca["name"] for ca in d["infiniband"]}
        for ca in block.get("ib_write_bw_gbps", {}):
            if ca not in cas:
                self.fail(f"acceptance.ib_write_bw_gbps.{ca}", f"no such CA (profile has {sorted(cas)})")

    def captures(self, d: dict) -> None:
        caps = d["captures"]
        for view, rel in caps.items():
            if view not in CAPTURE_VIEWS:
                self.fail(f"captures.{view}", f"unknown view; expected one of {sorted(CAPTURE_VIEWS)}")
            if not isinstance(rel, str) or not (self.base / rel).is_file():
                self.fail(f"captures.{view}", f"file {rel!r} not found under {self.base}")
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                self.fail(f"captures.{view}", f"must be a relative path inside the profile, found {rel!r}")
        for view in REQUIRED_CAPTURES - caps.keys():
            self.fail(f"captures.{view}", "missing (this view is never generated)")
        expected = sorted((CAPTURE_VIEWS - caps.keys()) | ALWAYS_GENERATED)
        if sorted(d["generated"]) != expected:
            self.fail("generated", f"expected {expected}, found {sorted(d['generated'])}")
        cited = {s.get("file") for s in d["sources"] if isinstance(s, dict)}
        for i, src in enumerate(d["sources"]):
            self.need(src, "sources_row", str, f"sources[{i}]")
        for view, rel in caps.items():
            if rel not in cited:
                self.fail("sources", f"capture {rel!r} ({view}) has no sources entry")

    def cpu(self, cpu: dict) -> int:
        for key in ("vendor_id", "model_name", "flags", "bogomips", "address_sizes", "cache_size"):
            self.need(cpu, key, str, "cpu")
        for key in ("family", "model", "stepping", "sockets", "cores_per_socket", "threads_per_core"):
            if self.need(cpu, key, int, "cpu") < (0 if key in ("model", "stepping") else 1):
                self.fail(f"cpu.{key}", f"expected a positive number, found {cpu[key]!r}")
        caches = self.need(cpu, "caches", dict, "cpu")
        for key in ("L1d", "L1i", "L2", "L3"):
            self.need(caches, key, str, "cpu.caches")
        return cpu["sockets"] * cpu["cores_per_socket"] * cpu["threads_per_core"]

    def numa(self, d: dict, ncpu: int) -> None:
        nodes = self.need(d["numa"], "nodes", list, "numa")
        seen: list[int] = []
        for i, node in enumerate(nodes):
            where = f"numa.nodes[{i}]"
            if self.need(node, "id", int, where) != i:
                self.fail(f"{where}.id", f"expected {i}, found {node['id']!r}")
            self.need(node, "memory_mb", int, where)
            try:
                seen += parse_cpulist(self.need(node, "cpus", (str, int), where))
            except ValueError as exc:
                self.fail(f"{where}.cpus", str(exc))
        if sorted(seen) != list(range(ncpu)):
            self.fail("numa.nodes[].cpus", f"must cover CPUs 0-{ncpu - 1} once each (sockets x cores x threads), found {len(seen)} CPUs")
        dist = self.need(d["numa"], "distances", list, "numa")
        if len(dist) != len(nodes) or any(len(row) != len(nodes) for row in dist):
            self.fail("numa.distances", f"expected a {len(nodes)}x{len(nodes)} matrix, found {dist!r}")
        total_mb = sum(n["memory_mb"] for n in nodes)
        if not 0 <= d["memory_total_kb"] // 1024 - total_mb <= len(nodes):
            self.fail("memory_total_kb", f"expected about {total_mb * 1024} (sum of numa memory_mb), found {d['memory_total_kb']}")
        if "numactl-hardware" in d["captures"]:
            text = (self.base / d["captures"]["numactl-hardware"]).read_text()
            got = re.search(r"available: (\d+) nodes", text)
            if not got or int(got.group(1)) != len(nodes):
                self.fail("numa.nodes", f"capture {d['captures']['numactl-hardware']} disagrees on the node count")

    def gpus(self, d: dict) -> None:
        headers, aliases = query_fields()
        common = d.get("gpu_common") or {}
        if not isinstance(common, dict):
            self.fail("gpu_common", f"expected a mapping, found {common!r}")
        if not d["gpus"]:
            self.fail("gpus", "expected at least one GPU")
        for i, entry in enumerate(d["gpus"]):
            where = f"gpus[{i}]"
            if not isinstance(entry, dict):
                self.fail(where, f"expected a mapping, found {entry!r}")
            gpu = {**common, **entry}
            for key, value in gpu.items():
                if key not in headers:
                    self.fail(f"{where}.{key}", "not a valid nvidia-smi --query-gpu field")
                unit = headers[key].partition(" [")[2].rstrip("]")
                text = str(value)
                if unit and not (text.endswith(f" {unit}") or text.startswith("[")):
                    self.fail(f"{where}.{key}", f"expected a value ending in ' {unit}' as nvidia-smi prints it, found {text!r}")
            for key in ("name", "uuid", "pci.bus_id", "memory.total"):
                if key not in gpu:
                    self.fail(f"{where}.{key}", "missing")
            if gpu["index"] != i:
                self.fail(f"{where}.index", f"expected {i}, found {gpu['index']!r}")
            if not _BUS_ID.match(str(gpu["pci.bus_id"])):
                self.fail(f"{where}.pci.bus_id", f"expected 00000000:XX:XX.X (upper case), found {gpu['pci.bus_id']!r}")
            if not str(gpu["uuid"]).startswith("GPU-"):
                self.fail(f"{where}.uuid", f"expected GPU-<uuid>, found {gpu['uuid']!r}")
        topo = (self.base / d["captures"]["nvidia-smi-topo-m"]).read_text()
        rows = len(re.findall(r"(?m)^GPU\d+\s", topo))
        if rows != len(d["gpus"]):
            self.fail("gpus", f"capture {d['captures']['nvidia-smi-topo-m']} has {rows} GPU rows, profile declares {len(d['gpus'])}")
        if "nvidia-smi" in d["captures"]:
            table = (self.base / d["captures"]["nvidia-smi"]).read_text()
            for i, entry in enumerate(d["gpus"]):
                if str(entry["pci.bus_id"]) not in table:
                    self.fail(f"gpus[{i}].pci.bus_id", f"{entry['pci.bus_id']} not in capture {d['captures']['nvidia-smi']}")

    def pci(self, d: dict) -> None:
        slots: dict[str, str] = {}
        for i, dev in enumerate(d["pci"]):
            where = f"pci[{i}]"
            for key in ("class", "vendor", "device", "rev"):
                self.need(dev, key, str, where)
            for key in ("class_id", "vendor_id", "device_id"):
                if not (_HEX4.match(str(dev.get(key))) and len(str(dev.get(key))) == 4):
                    self.fail(f"{where}.{key}", f"expected 4 lower-case hex digits, found {dev.get(key)!r}")
            for slot in self.need(dev, "slots", list, where):
                if not _SLOT.match(str(slot)):
                    self.fail(f"{where}.slots", f"expected bb:dd.f (lower case), found {slot!r}")
                slots[slot] = dev["vendor_id"]
        for i, gpu in enumerate(d["gpus"]):
            slot = str(gpu["pci.bus_id"]).split(":", 1)[1].lower()
            if slots.get(slot) != "10de":
                self.fail(f"gpus[{i}].pci.bus_id", f"no NVIDIA device at slot {slot} in pci")
        has_switch = any("NVSwitch" in dev["device"] for dev in d["pci"])
        if d["nvswitch"] != has_switch:
            self.fail("nvswitch", f"is {d['nvswitch']} but pci {'lists' if has_switch else 'has no'} NVSwitch device")

    def infiniband(self, d: dict) -> None:
        for i, ca in enumerate(d["infiniband"]):
            where = f"infiniband[{i}]"
            for key in ("name", "ca_type", "firmware", "state", "physical_state", "node_guid"):
                self.need(ca, key, str, where)
            self.need(ca, "rate", int, where)
            if self.need(ca, "link_layer", str, where) not in ("InfiniBand", "Ethernet"):
                self.fail(f"{where}.link_layer", f"expected InfiniBand or Ethernet, found {ca['link_layer']!r}")
            for key in ("node_guid", "system_image_guid"):
                if key in ca and not _GUID.match(str(ca[key])):
                    self.fail(f"{where}.{key}", f"expected 0x + 16 hex digits, found {ca[key]!r}")
        if "ibstat" in d["captures"]:
            text = (self.base / d["captures"]["ibstat"]).read_text()
            captured = sorted(re.findall(r"(?m)^CA '([^']+)'", text))
            declared = sorted(ca["name"] for ca in d["infiniband"])
            if captured != declared:
                self.fail("infiniband", f"capture {d['captures']['ibstat']} lists {captured}, profile declares {declared}")


def render_node_overlay(name: str, dest_dir: Path) -> None:
    """Write the root-filesystem overlay for a node with profile ``name``."""
    profile = load_profile(name)
    dest_dir = Path(dest_dir)
    hw = dest_dir / HW_DIR
    hw.mkdir(parents=True, exist_ok=True)
    (hw / "profile.json").write_text(json.dumps(profile, indent=1, sort_keys=True) + "\n")
    shutil.copyfile(FIELDS_FILE, hw / "query-gpu-fields.txt")
    for rel in profile["captures"].values():
        (hw / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROFILES_DIR / profile["captures_from"] / rel, hw / rel)
    tools = {dest_dir / rel for rel in TOOL_PATHS.values()}
    for tool, rel in TOOL_PATHS.items():
        target = dest_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BIN_DIR / tool, target)
        target.chmod(0o755)
    for hook, rel in SIM_HOOKS.items():
        target = dest_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOOKS_DIR / hook, target)
    for path in [dest_dir, *dest_dir.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif path.parent.name not in ("bin", "sbin") and path not in tools:
            path.chmod(0o644)


def proc_overrides(name: str, dest_dir: Path) -> dict[str, Path]:
    """Write generated meminfo and cpuinfo for ``name`` into ``dest_dir``.

    Returns {"/proc/meminfo": path, "/proc/cpuinfo": path} for read-only bind mounts.
    """
    profile = load_profile(name)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = {"/proc/meminfo": dest_dir / "meminfo", "/proc/cpuinfo": dest_dir / "cpuinfo"}
    out["/proc/meminfo"].write_text(meminfo_text(profile))
    out["/proc/cpuinfo"].write_text(cpuinfo_text(profile))
    for path in out.values():
        path.chmod(0o444)
    return out


def meminfo_text(profile: dict[str, Any]) -> str:
    """A full /proc/meminfo (kernel 6.1 field set) for an idle node."""
    total = profile["memory_total_kb"]
    pages = profile["hugepages"]["total"]
    size_kb = profile["hugepages"]["size_kb"]
    hugetlb = pages * size_kb
    free = total * 94 // 100 - hugetlb
    rows: list[tuple[str, int]] = [
        ("MemTotal", total), ("MemFree", free), ("MemAvailable", free + total // 50),
        ("Buffers", total // 1000), ("Cached", total // 50), ("SwapCached", 0),
        ("Active", total // 100), ("Inactive", total // 60), ("Active(anon)", total // 400),
        ("Inactive(anon)", total // 800), ("Active(file)", total // 133), ("Inactive(file)", total // 69),
        ("Unevictable", 0), ("Mlocked", 0), ("SwapTotal", 0), ("SwapFree", 0),
        ("Zswap", 0), ("Zswapped", 0), ("Dirty", 128), ("Writeback", 0),
        ("AnonPages", total // 300), ("Mapped", total // 900), ("Shmem", total // 5000),
        ("KReclaimable", total // 400), ("Slab", total // 250), ("SReclaimable", total // 400),
        ("SUnreclaim", total // 667), ("KernelStack", 40960), ("PageTables", total // 5000),
        ("SecPageTables", 0), ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0),
        ("CommitLimit", (total - hugetlb) // 2), ("Committed_AS", total // 200),
        ("VmallocTotal", 34359738367), ("VmallocUsed", 524288), ("VmallocChunk", 0),
        ("Percpu", 98304),
    ]
    lines = [f"{key + ':':<16}{value:>8} kB" for key, value in rows]
    lines.append(f"HardwareCorrupted: {0:>5} kB")
    lines += [f"{key + ':':<16}{0:>8} kB" for key in ("AnonHugePages", "ShmemHugePages", "ShmemPmdMapped", "FileHugePages", "FilePmdMapped")]
    lines += [f"{key + ':':<19}{value:>5}" for key, value in (("HugePages_Total", pages), ("HugePages_Free", pages), ("HugePages_Rsvd", 0), ("HugePages_Surp", 0))]
    lines += [f"{'Hugepagesize:':<16}{size_kb:>8} kB", f"{'Hugetlb:':<16}{hugetlb:>8} kB"]
    gig = 1048576
    lines += [
        f"{'DirectMap4k:':<16}{1048576:>8} kB",
        f"{'DirectMap2M:':<16}{total // 16:>8} kB",
        f"{'DirectMap1G:':<16}{(total - total // 16) // gig * gig:>8} kB",
    ]
    return "\n".join(lines) + "\n"


def cpuinfo_text(profile: dict[str, Any]) -> str:
    """/proc/cpuinfo with one processor block per CPU of the profile.

    Linux numbering is assumed: CPUs 0..S*C-1 are the first thread of each
    core, socket by socket; the SMT siblings follow in the same order.
    """
    cpu = profile["cpu"]
    sockets, cores, threads = cpu["sockets"], cpu["cores_per_socket"], cpu["threads_per_core"]
    blocks = []
    for n in range(sockets * cores * threads):
        thread, rest = divmod(n, sockets * cores)
        socket, core = divmod(rest, cores)
        apicid = ((socket * cores + core) << (threads - 1)) + thread
        fields = [
            ("processor", n), ("vendor_id", cpu["vendor_id"]), ("cpu family", cpu["family"]),
            ("model", cpu["model"]), ("model name", cpu["model_name"]), ("stepping", cpu["stepping"]),
            ("cpu MHz", cpu.get("mhz", "2000.000")), ("cache size", cpu["cache_size"]),
            ("physical id", socket), ("siblings", cores * threads), ("core id", core),
            ("cpu cores", cores), ("apicid", apicid), ("initial apicid", apicid),
            ("fpu", "yes"), ("fpu_exception", "yes"), ("wp", "yes"), ("flags", cpu["flags"]),
            ("bogomips", cpu["bogomips"]), ("clflush size", 64), ("cache_alignment", 64),
            ("address sizes", cpu["address_sizes"]),
        ]
        lines = [f"{key}{chr(9) * (2 if len(key) < 8 else 1)}: {value}" for key, value in fields]
        lines.append("power management:")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + "\n"


def profile_summary(name: str) -> str:
    """One line describing profile ``name`` for ``python -m lab status``."""
    p = load_profile(name)
    gpu = p["gpus"][0]
    cpu = p["cpu"]
    ncpu = cpu["sockets"] * cpu["cores_per_socket"] * cpu["threads_per_core"]
    ib = sum(ca["link_layer"] == "InfiniBand" for ca in p["infiniband"])
    return (
        f"{name}: {len(p['gpus'])}x {gpu['name']} ({gpu['memory.total']})"
        f"{', NVSwitch' if p['nvswitch'] else ''}; {cpu['sockets']}x {cpu['model_name']}"
        f" ({ncpu} CPUs, {len(p['numa']['nodes'])} NUMA); {p['memory_total_kb'] // 1048576} GiB RAM;"
        f" {len(p['infiniband'])} HCAs ({ib} InfiniBand); driver {p['driver_version']} / CUDA {p['cuda_version']}"
    )
