import re
from pathlib import Path

import pytest

from deepseek_infra.gpus import GPUS, lookup_gpu, normalize_pci_device_id

SMI = Path(__file__).resolve().parents[2] / "fixtures" / "hw" / "smi"
# "|   0  NVIDIA H100 80GB HBM3          On  |   00000000:18:00.0 Off |"
_TABLE_NAME = re.compile(r"^\|\s+\d+\s+(.+?)\s+(?:On|Off)\s+\|\s+[0-9A-Fa-f]{8}:")
# "| N/A   30C    P0    100W /  700W |       1MiB /  81559MiB |"
_TABLE_MEMORY = re.compile(r"\|\s+\d+MiB\s+/\s+(\d+)MiB\s+\|")


def _captured_gpus():
    """(file, name, memory MiB) for each distinct GPU in the nvidia-smi captures."""
    seen = set()
    for path in sorted(SMI.glob("*.txt")):
        lines = path.read_text().splitlines()
        if lines and lines[0].startswith("name, memory.total"):
            rows = [(row.split(", ")[0], int(row.split(", ")[1].split()[0])) for row in lines[1:] if row]
        elif lines and lines[0].startswith("timestamp,"):
            header = lines[0].split(", ")
            values = lines[1].split(", ")
            rows = [(values[header.index("name")],
                     int(values[header.index("memory.total [MiB]")].split()[0]))]
        else:
            names = [m.group(1) for line in lines if (m := _TABLE_NAME.match(line))]
            mems = [int(m.group(1)) for line in lines if (m := _TABLE_MEMORY.search(line))]
            rows = list(zip(names, mems))
        for name, mib in rows:
            if (name, mib) not in seen:
                seen.add((name, mib))
                yield pytest.param(name, mib, id=f"{path.stem}:{name}")


CAPTURED = list(_captured_gpus())


def test_captures_cover_the_expected_products():
    names = {p.values[0] for p in CAPTURED}
    assert {"NVIDIA H100 80GB HBM3", "NVIDIA RTX 6000 Ada Gene...", "NVIDIA B200",
            "Quadro RTX 8000", "NVIDIA A100-SXM4-80GB", "NVIDIA H200"} <= names
    assert len(CAPTURED) >= 11  # eleven distinct products in the captures


@pytest.mark.parametrize(("name", "memory_mib"), CAPTURED)
def test_captured_names_resolve_with_captured_memory(name, memory_mib):
    gpu = lookup_gpu(name=name)
    assert gpu is not None, f"{name!r}: expected a GpuModel, found None"
    assert gpu.memory_mib == memory_mib, (
        f"{name!r}: memory_mib expected {memory_mib}, found {gpu.memory_mib}"
    )


def test_truncated_and_case_insensitive_names():
    full = lookup_gpu(name="NVIDIA RTX 6000 Ada Generation")
    assert full is not None and full.key == "rtx-6000-ada"
    assert lookup_gpu(name="NVIDIA RTX 6000 Ada Gene...") is full
    assert lookup_gpu(name="nvidia rtx 6000 ada generation") is full
    assert lookup_gpu(name="  NVIDIA  H100 80GB HBM3 ").key == "h100-sxm5-80gb"


def test_ambiguous_or_unknown_names_resolve_to_none():
    assert lookup_gpu(name="NVIDIA A100-SXM4-...") is None  # 40GB or 80GB
    assert lookup_gpu(name="NVIDIA H200 NV") is None  # prefix without "..."
    assert lookup_gpu(name="AMD Instinct MI300X") is None
    assert lookup_gpu(name="...") is None
    assert lookup_gpu() is None


def test_h200_and_h200_nvl_are_distinct():
    assert lookup_gpu(name="NVIDIA H200").key == "h200-sxm-141gb"
    assert lookup_gpu(name="NVIDIA H200 NVL").key == "h200-nvl-141gb"


@pytest.mark.parametrize(
    ("pci", "key"),
    [("10de:2330", "h100-sxm5-80gb"), ("2331", "h100-pcie-80gb"), ("0x2335", "h200-sxm-141gb"),
     ("0x233010DE", "h100-sxm5-80gb"), ("10DE:20B2", "a100-sxm4-80gb"), ("10de:2901", "b200"),
     ("10de:26b9", "l40s"), ("10de:26b1", "rtx-6000-ada"), ("10de:2684", "rtx-4090"),
     ("10de:1e30", "quadro-rtx-8000"), ("10de:20f1", "a100-pcie-40gb")],
)
def test_lookup_by_pci_device_id(pci, key):
    assert lookup_gpu(pci_device_id=pci).key == key


def test_pci_id_wins_over_name_and_foreign_vendor_is_unknown():
    assert lookup_gpu(name="NVIDIA H200", pci_device_id="10de:2330").key == "h100-sxm5-80gb"
    assert lookup_gpu(name="NVIDIA H200", pci_device_id="10de:ffff").key == "h200-sxm-141gb"
    assert lookup_gpu(pci_device_id="1002:74a1") is None
    assert normalize_pci_device_id("0x74A11002") is None
    assert normalize_pci_device_id("zzzz") is None
    assert normalize_pci_device_id("10de:233") is None


def test_nvgpuexp_csv_device_id_matches_its_name():
    # The wide CSV capture reports pci.device_id 0x233010DE for "NVIDIA H100 80GB HBM3".
    assert lookup_gpu(pci_device_id="0x233010DE") is lookup_gpu(name="NVIDIA H100 80GB HBM3")


@pytest.mark.parametrize(
    ("key", "bf16", "fp8"),
    [("v100-sxm2-16gb", False, False), ("quadro-rtx-8000", False, False),
     ("a100-sxm4-80gb", True, False), ("rtx-a6000", True, False), ("l40s", True, True),
     ("rtx-4090", True, True), ("h100-sxm5-80gb", True, True), ("b200", True, True)],
)
def test_bf16_and_fp8_follow_compute_capability(key, bf16, fp8):
    gpu = next(g for g in GPUS if g.key == key)
    assert (gpu.bf16, gpu.fp8) == (bf16, fp8)


def test_table_is_consistent():
    keys = [g.key for g in GPUS]
    names = [g.smi_name.casefold() for g in GPUS]
    pcis = [p for g in GPUS for p in g.pci_device_ids]
    assert len(set(keys)) == len(keys)
    assert len(set(names)) == len(names)
    assert len(set(pcis)) == len(pcis)
    assert all(re.fullmatch(r"10de:[0-9a-f]{4}", p) for p in pcis)
    assert all(g.form_factor in ("sxm", "pcie", "superchip") for g in GPUS)
    assert all(g.nvlink for g in GPUS if g.form_factor == "sxm")
    for g in GPUS:
        if g.memory_mib is not None:  # nvidia-smi reports a little under the nominal GiB
            assert 0.9 * g.memory_gb * 1024 <= g.memory_mib <= 1.05 * g.memory_gb * 1024, g.key


def test_deepseek_relevant_products_present():
    keys = {g.key for g in GPUS}
    assert {"a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-80gb", "a800-sxm4-80gb",
            "h100-sxm5-80gb", "h100-pcie-80gb", "h100-nvl-94gb", "h800-sxm5-80gb",
            "h200-sxm-141gb", "h200-nvl-141gb", "gh200-480gb", "b200", "l40s", "l40", "l4",
            "rtx-6000-ada", "rtx-a6000", "rtx-4090", "quadro-rtx-8000",
            "v100-sxm2-32gb"} <= keys


def test_gpu_keys_are_read_from_lspci_ids():
    from deepseek_infra.hardware import PciDevice
    from deepseek_infra.gpus import gpu_keys

    devices = (PciDevice(slot="0000:18:00.0", class_id="0302", vendor_id="10de", device_id="2330"),
               PciDevice(slot="0000:2a:00.0", class_id="0300", vendor_id="10de", device_id="26b1"),
               PciDevice(slot="0000:3a:00.0", class_id="0302", vendor_id="10de", device_id="ffff"))
    assert gpu_keys(devices) == ("h100-sxm5-80gb", "rtx-6000-ada", None)
    assert gpu_keys(()) == ()
