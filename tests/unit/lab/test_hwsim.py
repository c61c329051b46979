"""LAB SIMULATION tests: hardware profiles and the simulated hardware tools.

The simulated tools run as subprocesses against a rendered overlay, with
DEEPSEEK_LAB_HW_DIR pointing at its usr/lib/deepseek-lab/hw. Captured views
must come out byte for byte; generated ones are checked against the declared
numbers and, where a real capture of the same layout exists, against it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.hwsim.derive import regroup_topology_two_sockets
import yaml

from lab import hwsim
from lab.hwsim import ProfileError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hw"
PROFILES = hwsim.list_profiles()
SHIPPED = ["hgx-h100-8x", "dgx-h200-8x", "workstation-rtx6000ada-2x"]
VIEW_ARGS = {
    "nvidia-smi": ("nvidia-smi", []),
    "nvidia-smi-q": ("nvidia-smi", ["-q"]),
    "nvidia-smi-topo-m": ("nvidia-smi", ["topo", "-m"]),
    "ibstat": ("ibstat", []),
    "lscpu": ("lscpu", []),
    "numactl-hardware": ("numactl", ["--hardware"]),
}


@pytest.fixture(scope="module")
def overlays(tmp_path_factory) -> dict[str, Path]:
    """Each shipped profile rendered once, with the simulated driver loaded."""
    root = tmp_path_factory.mktemp("overlays")
    out = {}
    for name in PROFILES:
        hwsim.render_node_overlay(name, root / name)
        (root / name / hwsim.HW_DIR / "driver-loaded").touch()
        out[name] = root / name
    return out


def run(overlay: Path, tool: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEEPSEEK_LAB_HW_DIR": str(overlay / hwsim.HW_DIR)}
    script = overlay / hwsim.TOOL_PATHS[tool]
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, env=env, check=False)


def edited_overlay(src: Path, dest: Path, edit) -> Path:
    """Copy an overlay and apply edit(profile_dict) to its profile.json."""
    shutil.copytree(src, dest)
    path = dest / hwsim.HW_DIR / "profile.json"
    profile = json.loads(path.read_text())
    edit(profile)
    path.write_text(json.dumps(profile))
    return dest


# Profile files derived from a real capture by lab/hwsim/derive.py: (capture, derivation).
DERIVED = {
    "captures/topo/hgx-h100-x8-12nic-2socket-derived.txt": (
        "topo/slurmv4-aihub0007-hgx-h100-x8-12nic.txt",
        lambda text: regroup_topology_two_sockets(text, 4, 6, ("0-47,96-143", "48-95,144-191")),
    ),
}


class _Derived:
    """Stands in for a fixture path: the bytes a derived profile file must have."""

    def __init__(self, source: str, derive):
        self.source, self.derive = source, derive

    def read_bytes(self) -> bytes:
        return self.derive((FIXTURES / self.source).read_text()).encode()


def fixture_for(rel: str):
    if rel in DERIVED:
        return _Derived(*DERIVED[rel])
    return FIXTURES / Path(rel).relative_to("captures")


# --- profiles -------------------------------------------------------------

def test_shipped_profiles_are_listed():
    assert set(SHIPPED) <= set(PROFILES), f"expected {SHIPPED} in {PROFILES}"


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_with_consistent_numbers(name):
    p = hwsim.load_profile(name)
    cpu = p["cpu"]
    ncpu = cpu["sockets"] * cpu["cores_per_socket"] * cpu["threads_per_core"]
    cpus = sorted(c for n in p["numa"]["nodes"] for c in hwsim.parse_cpulist(n["cpus"]))
    assert cpus == list(range(ncpu)), f"{name}: numa cpus {cpus[:4]}..., expected 0-{ncpu - 1}"
    assert [g["index"] for g in p["gpus"]] == [str(i) for i in range(len(p["gpus"]))]
    assert all(g["memory.total"].endswith(" MiB") for g in p["gpus"])
    assert set(p["captures"]) | set(p["generated"]) >= set(VIEW_ARGS)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_captures_are_byte_exact_copies(name):
    p = hwsim.load_profile(name)
    for view, rel in p["captures"].items():
        shipped = (hwsim.PROFILES_DIR / p["captures_from"] / rel).read_bytes()  # an `extends` profile: its parent's
        assert shipped == fixture_for(rel).read_bytes(), f"{name}: {view}: {rel} differs from tests/fixtures/hw"
        source = DERIVED[rel][0] if rel in DERIVED else rel.removeprefix("captures/")
        assert any(source in s["sources_row"] for s in p["sources"] if s.get("file") == rel)


def test_expected_machines():
    h100, h200, ws = (hwsim.load_profile(n) for n in SHIPPED)
    assert (len(h100["gpus"]), h100["nvswitch"], len(h100["numa"]["nodes"])) == (8, True, 2)
    assert h100["gpus"][0]["uuid"] == "GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1"
    assert sum(ca["link_layer"] == "InfiniBand" for ca in h100["infiniband"]) == 8
    assert (len(h200["gpus"]), h200["gpus"][0]["name"], h200["gpus"][0]["memory.total"]) == (8, "NVIDIA H200", "143771 MiB")
    assert (len(ws["gpus"]), ws["nvswitch"], ws["cpu"]["cores_per_socket"], len(ws["numa"]["nodes"])) == (2, False, 24, 1)


def _write_bad(tmp_path: Path, mutate) -> Path:
    src = hwsim.PROFILES_DIR / "hgx-h100-8x"
    shutil.copytree(src, tmp_path / "bad")
    path = tmp_path / "bad" / "profile.yaml"
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["cpu"].pop("sockets"), "cpu.sockets: missing"),
        (lambda d: d["cpu"].update(cores_per_socket="48"), "cpu.cores_per_socket: expected int"),
        (lambda d: d["gpus"][2].update({"memory.total": "81559"}), "gpus[2].memory.total: expected a value ending in ' MiB'"),
        (lambda d: d["gpus"][0].update({"memory.totl": "1 MiB"}), "gpus[0].memory.totl: not a valid nvidia-smi --query-gpu field"),
        (lambda d: d["gpus"].pop(), "gpus: capture captures/topo/hgx-h100-x8-12nic-2socket-derived.txt has 8 GPU rows"),
        (lambda d: d["numa"]["nodes"][1].update(cpus="48-95"), "numa.nodes[].cpus: must cover CPUs 0-191"),
        (lambda d: d.update(memory_total_kb=1024), "memory_total_kb: expected about"),
        (lambda d: d["captures"].update(lscpu="captures/lscpu/missing.txt"), "captures.lscpu: file 'captures/lscpu/missing.txt' not found"),
        (lambda d: d["infiniband"].pop(), "infiniband: capture captures/ib/gpud-h100-node-ibstat-12ca-some-down.txt lists"),
        (lambda d: d.update(nvswitch=False), "nvswitch: is False but pci lists NVSwitch device"),
        (lambda d: d["generated"].remove("lscpu"), "generated: expected"),
    ],
)
def test_bad_profile_names_file_and_field(tmp_path, mutate, field):
    path = _write_bad(tmp_path, mutate)
    with pytest.raises(ProfileError) as err:
        hwsim.load_profile("bad", profiles_dir=tmp_path)
    assert str(err.value).startswith(f"{path}: "), str(err.value)
    assert field in str(err.value), f"expected {field!r} in {err.value}"


def test_unknown_profile_lists_known(tmp_path):
    with pytest.raises(ProfileError, match="no such profile 'nope'.*hgx-h100-8x"):
        hwsim.load_profile("nope")


@pytest.mark.parametrize("name", PROFILES)
def test_profile_summary_is_one_line(name):
    line = hwsim.profile_summary(name)
    p = hwsim.load_profile(name)
    assert "\n" not in line and line.startswith(f"{name}: {len(p['gpus'])}x {p['gpus'][0]['name']}")
    assert p["driver_version"] in line


# --- overlay and /proc ----------------------------------------------------

def test_render_node_overlay_tree_and_modes(overlays):
    root = overlays["hgx-h100-8x"]
    for tool, rel in hwsim.TOOL_PATHS.items():
        path = root / rel
        assert path.is_file() and path.stat().st_mode & 0o777 == 0o755, f"{rel}: mode {oct(path.stat().st_mode)}"
        assert "LAB SIMULATION" in path.read_text().splitlines()[2], f"{rel}: header must say LAB SIMULATION"
    assert not (root / "usr/local/bin/nvidia-smi").exists() and not (root / "usr/bin").exists()
    hw = root / hwsim.HW_DIR
    profile = json.loads((hw / "profile.json").read_text())
    assert profile["name"] == "hgx-h100-8x" and len(profile["gpus"]) == 8
    for rel in profile["captures"].values():
        assert (hw / rel).read_bytes() == fixture_for(rel).read_bytes()
        assert (hw / rel).stat().st_mode & 0o777 == 0o644
    assert (hw / "query-gpu-fields.txt").is_file()


@pytest.mark.parametrize("name", PROFILES)
def test_proc_overrides(name, tmp_path):
    p = hwsim.load_profile(name)
    paths = hwsim.proc_overrides(name, tmp_path)
    assert set(paths) == {"/proc/meminfo", "/proc/cpuinfo"}
    meminfo = paths["/proc/meminfo"].read_text()
    assert re.search(r"^MemTotal:\s+(\d+) kB$", meminfo, re.M).group(1) == str(p["memory_total_kb"])
    assert re.search(r"^HugePages_Total:\s+(\d+)$", meminfo, re.M).group(1) == str(p["hugepages"]["total"])
    assert re.search(r"^Hugepagesize:\s+(\d+) kB$", meminfo, re.M).group(1) == str(p["hugepages"]["size_kb"])
    real = (FIXTURES / "proc/sonar-testdata-workstation-16gb-meminfo.txt").read_text().splitlines()
    ours = meminfo.splitlines()
    assert [l.split(":")[0] for l in ours] == [l.split(":")[0] for l in real], "meminfo keys/order differ from a real 6.x kernel"
    for line, ref in zip(ours, real):  # same columns wherever the numbers fit the kernel's field width
        width = 5 if line.startswith(("HugePages_", "HardwareCorrupted")) else 8
        if max(len(re.search(r"\d+", x.split(":")[1]).group(0)) for x in (line, ref)) <= width:
            assert len(line) == len(ref), (line, ref)
    cpuinfo = paths["/proc/cpuinfo"].read_text()
    cpu = p["cpu"]
    ncpu = cpu["sockets"] * cpu["cores_per_socket"] * cpu["threads_per_core"]
    assert re.findall(r"^processor\t: (\d+)$", cpuinfo, re.M) == [str(i) for i in range(ncpu)]
    assert len(set(re.findall(r"^physical id\t: (\d+)$", cpuinfo, re.M))) == cpu["sockets"]
    assert set(re.findall(r"^cpu cores\t: (\d+)$", cpuinfo, re.M)) == {str(cpu["cores_per_socket"])}
    assert set(re.findall(r"^model name\t: (.+)$", cpuinfo, re.M)) == {cpu["model_name"]}


# --- nvidia-smi -----------------------------------------------------------

def test_nvidia_smi_without_driver_exits_9(overlays, tmp_path):
    root = edited_overlay(overlays["hgx-h100-8x"], tmp_path / "o", lambda p: None)
    (root / hwsim.HW_DIR / "driver-loaded").unlink()
    for args in ([], ["-L"], ["--query-gpu=name", "--format=csv"]):
        res = run(root, "nvidia-smi", *args)
        assert res.returncode == 9, args
        assert res.stdout.decode() == (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.\n"
        )


@pytest.mark.parametrize("name", PROFILES)
def test_captured_views_print_capture_bytes(overlays, name):
    p = hwsim.load_profile(name)
    for view, rel in p["captures"].items():
        tool, args = VIEW_ARGS[view]
        res = run(overlays[name], tool, *args)
        assert res.returncode == 0, (view, res.stderr)
        assert res.stdout == fixture_for(rel).read_bytes(), f"{name}: {tool} {args} differs from {rel}"


@pytest.mark.parametrize("name", PROFILES)
def test_query_gpu_csv(overlays, name):
    p = hwsim.load_profile(name)
    res = run(overlays[name], "nvidia-smi", "--query-gpu=index,name,uuid,pci.bus_id,memory.total,power.limit,compute_cap,count",
              "--format=csv")
    assert res.returncode == 0, res.stdout
    lines = res.stdout.decode().splitlines()
    assert lines[0] == "index, name, uuid, pci.bus_id, memory.total [MiB], power.limit [W], compute_cap, count"
    assert len(lines) == 1 + len(p["gpus"])
    for line, gpu in zip(lines[1:], p["gpus"]):
        assert line.split(", ") == [gpu["index"], gpu["name"], gpu["uuid"], gpu["pci.bus_id"], gpu["memory.total"],
                                    gpu["power.limit"], gpu["compute_cap"], str(len(p["gpus"]))]
        assert re.fullmatch(r"\d+ MiB", line.split(", ")[4]) and re.fullmatch(r"\d+\.\d\d W", line.split(", ")[5])
    bare = run(overlays[name], "nvidia-smi", "--query-gpu=memory.total,gpu_name", "--format=csv,noheader,nounits", "-i", "0")
    assert bare.stdout.decode() == f"{p['gpus'][0]['memory.total'].split()[0]}, {p['gpus'][0]['name']}\n"


def test_query_gpu_reproduces_real_csv_capture(overlays):
    res = run(overlays["dgx-h200-8x"], "nvidia-smi", "--query-gpu=name,memory.total,pcie.link.gen.max,pcie.link.width.max",
              "--format=csv")
    assert res.stdout == (FIXTURES / "smi/distributedai-h200-x8-query-csv.txt").read_bytes()


def test_query_gpu_header_matches_real_wide_capture(overlays):
    header = (FIXTURES / "smi/nvgpuexp-h100-vm-x1-query-csv-wide.txt").read_text().splitlines()[0]
    fields = ",".join(h.split(" [")[0] for h in header.split(", "))
    res = run(overlays["hgx-h100-8x"], "nvidia-smi", f"--query-gpu={fields}", "--format=csv")
    lines = res.stdout.decode().splitlines()
    assert lines[0] == header and len(lines) == 9
    assert all(len(line.split(", ")) == 212 for line in lines[1:])


def test_query_gpu_invalid_field(overlays):
    res = run(overlays["hgx-h100-8x"], "nvidia-smi", "--query-gpu=name,bogus.field", "--format=csv")
    assert res.returncode == 2
    assert res.stdout.decode().splitlines()[0] == 'Field "bogus.field" is not a valid field to query.'


def test_list_gpus(overlays):
    p = hwsim.load_profile("hgx-h100-8x")
    lines = run(overlays["hgx-h100-8x"], "nvidia-smi", "-L").stdout.decode().splitlines()
    assert lines == [f"GPU {g['index']}: NVIDIA H100 80GB HBM3 (UUID: {g['uuid']})" for g in p["gpus"]]


def test_compute_apps_is_empty(overlays):
    res = run(overlays["dgx-h200-8x"], "nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv")
    assert res.stdout.decode() == "pid, process_name, used_gpu_memory [MiB]\n"


def test_q_with_id_keeps_one_captured_block(overlays):
    text = run(overlays["hgx-h100-8x"], "nvidia-smi", "-q", "-i", "1").stdout.decode()
    assert re.findall(r"(?m)^GPU (\S+)$", text) == ["00000000:2A:00.0"]
    assert "GPU-7c3cadbd-17e5-0913-f69b-c618122ea0cd" in text and "Attached GPUs                             : 8" in text


def test_generated_q_has_profile_values(overlays):
    p = hwsim.load_profile("dgx-h200-8x")
    text = run(overlays["dgx-h200-8x"], "nvidia-smi", "-q").stdout.decode()
    assert re.search(r"(?m)^Driver Version {28}: 550\.90\.12$", text)
    assert re.findall(r"(?m)^GPU (\S+)$", text) == [g["pci.bus_id"] for g in p["gpus"]]
    assert re.findall(r"(?m)^    GPU UUID\s+: (\S+)$", text) == [g["uuid"] for g in p["gpus"]]
    assert text.count("        Total                             : 143771 MiB\n") == 8


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        # the thamada table and -q were taken seconds apart: GPU3 read 30C in the table
        ("hgx-h100-8x", lambda p: p["gpus"][3].update({"temperature.gpu": "30"})),
        ("workstation-rtx6000ada-2x", lambda p: None),
    ],
)
def test_generated_table_reproduces_capture(overlays, tmp_path, name, fix):
    """With the capture dropped, the generated table equals it (minus the date line)."""
    def edit(p):
        fix(p)
        rel = p["captures"].pop("nvidia-smi")
        p["_rel"] = rel
    root = edited_overlay(overlays[name], tmp_path / name, edit)
    rel = json.loads((root / hwsim.HW_DIR / "profile.json").read_text())["_rel"]
    generated = run(root, "nvidia-smi").stdout.decode().split("\n", 1)
    captured = fixture_for(rel).read_text()
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", generated[0])
    if re.match(r"\w{3} \w{3} ", captured):  # puget capture keeps its date line
        captured = captured.split("\n", 1)[1]
    assert generated[1] == captured


# --- lscpu / numactl / lspci / ibstat -------------------------------------

@pytest.mark.parametrize("name", PROFILES)
def test_lscpu_extended_json_is_the_table_vllm_reads(overlays, name):
    """vLLM's CPU build runs ``lscpu --json --extended=CPU,CORE,NODE --online`` at start."""
    p = hwsim.load_profile(name)
    cpu = p["cpu"]
    result = run(overlays[name], "lscpu", "--json", "--extended=CPU,CORE,NODE", "--online")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["cpus"]
    cores = cpu["sockets"] * cpu["cores_per_socket"]
    assert [row["cpu"] for row in rows] == list(range(cores * cpu["threads_per_core"]))
    assert set(rows[0]) == {"cpu", "core", "node"}
    assert len({row["core"] for row in rows}) == cores  # siblings share a core
    for node in p["numa"]["nodes"]:
        listed = [row["cpu"] for row in rows if row["node"] == node["id"]]
        expected = [n for part in node["cpus"].split(",")
                    for n in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)]
        assert listed == expected, f"{name}: node {node['id']}"
    refused = run(overlays[name], "lscpu", "--caches")
    assert refused.returncode == 1 and b"LAB SIMULATION" in refused.stderr


@pytest.mark.parametrize("name", PROFILES)
def test_lscpu_declared_numbers(overlays, name):
    p = hwsim.load_profile(name)
    cpu = p["cpu"]
    text = run(overlays[name], "lscpu").stdout.decode()
    ncpu = cpu["sockets"] * cpu["cores_per_socket"] * cpu["threads_per_core"]
    get = lambda key: re.search(rf"(?m)^\s*{re.escape(key)}:\s+(.+)$", text).group(1)
    assert get("CPU(s)") == str(ncpu)
    assert get("Model name") == cpu["model_name"]
    assert (get("Thread(s) per core"), get("Core(s) per socket"), get("Socket(s)")) == tuple(
        str(cpu[k]) for k in ("threads_per_core", "cores_per_socket", "sockets"))
    assert get("NUMA node(s)") == str(len(p["numa"]["nodes"]))
    for node in p["numa"]["nodes"]:
        assert get(f"NUMA node{node['id']} CPU(s)") == node["cpus"]
    columns = {m.end() - m.start() for m in re.finditer(r"(?m)^ *\S[^:\n]*: +(?=\S)", text)}
    assert len(columns) == 1, f"{name}: lscpu values start at columns {columns}"


@pytest.mark.parametrize("name", PROFILES)
def test_numactl_hardware_declared_numbers(overlays, name):
    p = hwsim.load_profile(name)
    text = run(overlays[name], "numactl", "-H").stdout.decode()
    assert re.search(r"^available: (\d+) nodes", text).group(1) == str(len(p["numa"]["nodes"]))
    for node in p["numa"]["nodes"]:
        cpus = re.search(rf"(?m)^node {node['id']} cpus: (.*?) ?$", text).group(1).split()
        assert [int(c) for c in cpus] == hwsim.parse_cpulist(node["cpus"])
        assert re.search(rf"(?m)^node {node['id']} size: (\d+) MB", text).group(1) == str(node["memory_mb"])


def test_generated_numactl_matches_real_layout(overlays, tmp_path):
    def edit(p):
        p["captures"].pop("numactl-hardware")
        p["numa"]["nodes"][0]["free_mb"] = 1724
    root = edited_overlay(overlays["workstation-rtx6000ada-2x"], tmp_path / "ws", edit)
    assert run(root, "numactl", "--hardware").stdout == (
        FIXTURES / "numactl/puget-wrx90-tr7965wx-rtx6000ada-x2.txt").read_bytes()
    two = run(overlays["dgx-h200-8x"], "numactl", "-H").stdout.decode().splitlines()
    assert two[-3:] == ["node   0   1", "  0:  10  21", "  1:  21  10"]


def test_numactl_other_invocations_use_real_binary(overlays):
    if os.path.exists("/usr/bin/numactl"):
        pytest.skip("/usr/bin/numactl is installed here; the error path needs it absent")
    res = run(overlays["hgx-h100-8x"], "numactl", "--cpunodebind=0", "true")
    assert res.returncode == 1 and b"only --hardware/-H is simulated" in res.stderr


def test_lspci_nvidia_devices(overlays):
    root = overlays["hgx-h100-8x"]
    lines = run(root, "lspci", "-nn", "-d", "10de:").stdout.decode().splitlines()
    assert lines[4] == "18:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)"
    assert len(lines) == 12 and sum("[10de:22a3]" in l for l in lines) == 4
    gpus = run(root, "lspci", "-d", "10de:2330").stdout.decode().splitlines()
    assert [l.split()[0] for l in gpus] == [g["pci.bus_id"][9:].lower() for g in hwsim.load_profile("hgx-h100-8x")["gpus"]]
    assert gpus[0] == "18:00.0 3D controller: NVIDIA Corporation GH100 [H100 SXM5 80GB] (rev a1)"
    assert run(root, "lspci", "-n", "-d", "::0302").stdout.decode().splitlines()[0] == "18:00.0 0302: 10de:2330 (rev a1)"
    assert run(root, "lspci", "-Dnn").stdout.decode().splitlines()[0].startswith("0000:05:00.0 Bridge [0680]: ")
    ws = run(overlays["workstation-rtx6000ada-2x"], "lspci").stdout.decode().splitlines()
    assert ws[0] == "c1:00.0 VGA compatible controller: NVIDIA Corporation AD102GL [RTX 6000 Ada Generation] (rev a1)"


def test_ibstat_views(overlays):
    root = overlays["hgx-h100-8x"]
    names = run(root, "ibstat", "-l").stdout.decode().splitlines()
    assert names == sorted(ca["name"] for ca in hwsim.load_profile("hgx-h100-8x")["infiniband"])
    one = run(root, "ibstat", "mlx5_1").stdout.decode()
    assert one.startswith("CA 'mlx5_1'\n\tCA type: MT4125\n") and one.count("CA '") == 1
    missing = run(root, "ibstat", "mlx5_99")
    assert missing.returncode == 255 and b"mlx5_99" in missing.stderr


def test_generated_ibstat_matches_real_layout(overlays, tmp_path):
    """Generated from the declared CAs, ibstat equals the capture except LIDs and the final newline."""
    root = edited_overlay(overlays["hgx-h100-8x"], tmp_path / "h100", lambda p: p["captures"].pop("ibstat"))
    lids = re.compile(r"(Base lid|SM lid): \d+")
    generated = lids.sub(r"\1: N", run(root, "ibstat").stdout.decode())
    captured = lids.sub(r"\1: N", (FIXTURES / "ib/gpud-h100-node-ibstat-12ca-some-down.txt").read_text())
    assert generated == captured + "\n"
    h200 = run(overlays["dgx-h200-8x"], "ibstat").stdout.decode()
    assert h200.count("Link layer: InfiniBand") == 8 and h200.count("\t\tRate: 400\n") == 8
