"""NVIDIA data-centre and workstation GPUs a DeepSeek deployment may meet.

Pure module (no pyinfra).  ``lookup_gpu()`` resolves what nvidia-smi prints
(``name`` column, possibly truncated to ``"NVIDIA RTX 6000 Ada Gene..."`` in
the default table) or a PCI device id to a ``GpuModel``.

Sources:

* ``smi_name``: the product name nvidia-smi prints (``--query-gpu=name``).
* ``pci_device_ids``: NVIDIA (vendor 10de) device ids from the PCI ID
  database (pci.ids, pciutils/pciids, version 2026.05.24); the comment on
  each row gives that database's label when it differs from the product.
* ``compute_capability``: NVIDIA "CUDA GPUs" compute capability list.
* ``memory_mib``: ``memory.total`` as nvidia-smi reports it.  Only values seen
  in real captures (tests/fixtures/hw/smi/) are filled in; elsewhere it is
  None and ``memory_gb`` (the nominal size) is the figure to plan with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["GPUS", "GpuModel", "lookup_gpu", "normalize_pci_device_id"]

FormFactor = Literal["sxm", "pcie", "superchip"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuModel:
    """One GPU product as the collection sees it."""

    key: str  # stable short id used in inventories, e.g. "h100-sxm5-80gb"
    smi_name: str  # product name as nvidia-smi prints it
    pci_device_ids: tuple[str, ...]  # "10de:xxxx", lower case
    compute_capability: tuple[int, int]
    memory_gb: int  # nominal memory size
    memory_mib: int | None  # nvidia-smi memory.total where a capture confirms it
    form_factor: FormFactor
    nvlink: bool  # NVLink (SXM fabric, NVL bridge or C2C) available

    @property
    def bf16(self) -> bool:
        """bfloat16 tensor cores: Ampere (compute capability 8.0) and newer."""
        return self.compute_capability >= (8, 0)

    @property
    def fp8(self) -> bool:
        """FP8 tensor cores: Ada (8.9), Hopper (9.0) and newer."""
        return self.compute_capability >= (8, 9)


def _gpu(key: str, smi_name: str, pci: tuple[str, ...], cc: tuple[int, int],
         memory_gb: int, memory_mib: int | None, form_factor: FormFactor,
         nvlink: bool) -> GpuModel:
    return GpuModel(
        key=key, smi_name=smi_name,
        pci_device_ids=tuple(f"10de:{device}" for device in pci),
        compute_capability=cc, memory_gb=memory_gb, memory_mib=memory_mib,
        form_factor=form_factor, nvlink=nvlink,
    )


GPUS: Final[tuple[GpuModel, ...]] = (
    # Ampere GA100, compute capability 8.0.
    _gpu("a100-sxm4-40gb", "NVIDIA A100-SXM4-40GB", ("20b0",), (8, 0), 40, None, "sxm", True),
    _gpu("a100-sxm4-80gb", "NVIDIA A100-SXM4-80GB", ("20b2",), (8, 0), 80, 81920, "sxm", True),
    # pci.ids lists two "A100 PCIe 40GB" ids.
    _gpu("a100-pcie-40gb", "NVIDIA A100-PCIE-40GB", ("20b1", "20f1"), (8, 0), 40, None, "pcie", True),
    _gpu("a100-pcie-80gb", "NVIDIA A100 80GB PCIe", ("20b5",), (8, 0), 80, None, "pcie", True),
    _gpu("a800-sxm4-80gb", "NVIDIA A800-SXM4-80GB", ("20f3",), (8, 0), 80, None, "sxm", True),
    _gpu("a800-pcie-80gb", "NVIDIA A800 80GB PCIe", ("20f5",), (8, 0), 80, None, "pcie", True),
    # Hopper GH100, compute capability 9.0.
    _gpu("h100-sxm5-80gb", "NVIDIA H100 80GB HBM3", ("2330",), (9, 0), 80, 81559, "sxm", True),
    _gpu("h100-pcie-80gb", "NVIDIA H100 PCIe", ("2331",), (9, 0), 80, 81559, "pcie", True),
    # pci.ids: 2321 "GH100 [H100L 94GB]" is the H100 NVL.
    _gpu("h100-nvl-94gb", "NVIDIA H100 NVL", ("2321",), (9, 0), 94, 95830, "pcie", True),
    _gpu("h800-sxm5-80gb", "NVIDIA H800", ("2324",), (9, 0), 80, None, "sxm", True),
    _gpu("h800-pcie-80gb", "NVIDIA H800 PCIe", ("2322",), (9, 0), 80, None, "pcie", True),
    _gpu("h200-sxm-141gb", "NVIDIA H200", ("2335",), (9, 0), 141, 143771, "sxm", True),
    _gpu("h200-nvl-141gb", "NVIDIA H200 NVL", ("233b",), (9, 0), 141, None, "pcie", True),
    # pci.ids: 2342 "GH100 [GH200 120GB / 480GB]"; the 480GB is LPDDR5X+HBM3,
    # nvidia-smi shows the 96GB HBM3 part.
    _gpu("gh200-480gb", "NVIDIA GH200 480GB", ("2342",), (9, 0), 96, 97871, "superchip", True),
    _gpu("gh200-144gb-hbm3e", "NVIDIA GH200 144G HBM3e", ("2348",), (9, 0), 144, None, "superchip", True),
    # Blackwell GB100, compute capability 10.0; pci.ids: 2901 "B200",
    # 2909 "HGX B200 168GB"; memory_gb is NVIDIA's HGX B200 per-GPU figure.
    _gpu("b200", "NVIDIA B200", ("2901", "2909"), (10, 0), 180, 183359, "sxm", True),
    # Ada AD102/AD104, compute capability 8.9.
    _gpu("l40s", "NVIDIA L40S", ("26b9",), (8, 9), 48, 46068, "pcie", False),
    _gpu("l40", "NVIDIA L40", ("26b5",), (8, 9), 48, None, "pcie", False),
    _gpu("l4", "NVIDIA L4", ("27b8",), (8, 9), 24, None, "pcie", False),
    _gpu("rtx-6000-ada", "NVIDIA RTX 6000 Ada Generation", ("26b1",), (8, 9), 48, 49140, "pcie", False),
    _gpu("rtx-4090", "NVIDIA GeForce RTX 4090", ("2684",), (8, 9), 24, 24564, "pcie", False),
    # Ampere GA102, compute capability 8.6 (NVLink bridge).
    _gpu("rtx-a6000", "NVIDIA RTX A6000", ("2230",), (8, 6), 48, None, "pcie", True),
    # Turing TU102, compute capability 7.5; pci.ids 1e30 "Quadro RTX 6000/8000".
    _gpu("quadro-rtx-8000", "Quadro RTX 8000", ("1e30",), (7, 5), 48, 48601, "pcie", True),
    # Volta GV100, compute capability 7.0.
    _gpu("v100-sxm2-16gb", "Tesla V100-SXM2-16GB", ("1db1", "1df5"), (7, 0), 16, None, "sxm", True),
    _gpu("v100-sxm2-32gb", "Tesla V100-SXM2-32GB", ("1db5",), (7, 0), 32, None, "sxm", True),
    _gpu("v100-pcie-16gb", "Tesla V100-PCIE-16GB", ("1db4",), (7, 0), 16, None, "pcie", False),
    _gpu("v100-pcie-32gb", "Tesla V100-PCIE-32GB", ("1db6",), (7, 0), 32, None, "pcie", False),
)

_TRUNCATION = "..."


def normalize_pci_device_id(value: str) -> str | None:
    """Return ``"10de:xxxx"`` for an NVIDIA device id, else None.

    Accepts ``"10de:2330"``, ``"2330"``, ``"0x2330"`` and nvidia-smi's
    ``pci.device_id`` form ``"0x233010DE"`` (device in the high 16 bits).
    """
    text = value.strip().lower()
    if ":" in text:
        vendor, _, device = text.partition(":")
        vendor = vendor.removeprefix("0x")
    else:
        raw = text.removeprefix("0x")
        if len(raw) == 8:
            device, vendor = raw[:4], raw[4:]
        else:
            device, vendor = raw, "10de"
    device = device.removeprefix("0x")
    if vendor != "10de" or len(device) != 4:
        return None
    try:
        int(device, 16)
    except ValueError:
        return None
    return f"10de:{device}"


def _match_name(name: str) -> GpuModel | None:
    wanted = " ".join(name.split()).casefold()
    if not wanted:
        return None
    for gpu in GPUS:
        if gpu.smi_name.casefold() == wanted:
            return gpu
    if wanted.endswith(_TRUNCATION):
        prefix = wanted[: -len(_TRUNCATION)].rstrip()
        found = [gpu for gpu in GPUS if prefix and gpu.smi_name.casefold().startswith(prefix)]
        if len(found) == 1:  # an ambiguous prefix resolves to nothing
            return found[0]
    return None


def lookup_gpu(name: str | None = None, pci_device_id: str | None = None) -> GpuModel | None:
    """Find a GPU by nvidia-smi name or PCI device id; None when unknown.

    + name: nvidia-smi product name; exact, case-insensitive, or truncated
      with a trailing ``"..."`` (must match exactly one product).
    + pci_device_id: ``"10de:2330"``, ``"2330"`` or ``"0x233010DE"``.

    The PCI id is tried first (it is unambiguous), then the name.

    **Example:** ``lookup_gpu("NVIDIA RTX 6000 Ada Gene...").memory_mib == 49140``
    """
    if pci_device_id:
        pci = normalize_pci_device_id(pci_device_id)
        for gpu in GPUS:
            if pci is not None and pci in gpu.pci_device_ids:
                return gpu
    if name:
        return _match_name(name)
    return None


def gpu_keys(pci_gpus) -> tuple[str | None, ...]:
    """``GpuModel.key`` of each of lspci's NVIDIA GPUs (``hardware.pci_gpus``), None for a model
    not in the table (what forward compatibility is checked against)."""
    return tuple(getattr(lookup_gpu(pci_device_id=device.device_id or ""), "key", None) for device in pci_gpus)
