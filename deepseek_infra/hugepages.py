"""HugeTLB pool sizing: how many pages, where they go, and how to ask the kernel (pure logic).

Rules:

- Give exactly one of ``count`` (pages) or ``share`` (fraction of MemTotal, rounded down
  to whole pages).
- **Reserve.** Hugepages leave the general page pool for good: the kernel, page cache,
  slab, the engine's own ordinary memory (Python heap, CUDA pinned staging buffers) and
  node agents must live in what is left. A pool set on the kernel command line is taken
  before userspace starts, so too large a pool is an OOM at boot, not an error message.
  The default reserve is ``max(8 GiB, 10 % of MemTotal)``: 8 GiB covers a minimal OS plus
  agents on small hosts, and 10 % tracks what grows with RAM (the kernel's per-page
  metadata is ~1.6 %, plus page tables and pinned driver memory). A request above
  ``MemTotal - reserve`` is rejected.
- **2M pages** are set at runtime: ``vm.nr_hugepages`` (persisted via sysctl.d), or with
  ``per_node`` the per-node sysfs files, which are not persistent, so the caller must
  re-apply them at boot (a oneshot unit).
- **1G pages** go on the kernel command line only: at runtime they need 1 GiB of
  physically contiguous free memory each, which a running host rarely has after page
  cache has fragmented RAM. ``default_hugepagesz=1G`` makes hugetlbfs mounts and
  ``MAP_HUGETLB`` default to them. ``per_node`` uses the ``hugepages=<node>:<n>,...``
  form (Linux >= 5.16).
- **Per node** pages are spread in proportion to each node's memory (largest remainder,
  so the counts add up to the total). Without ``per_node`` the kernel itself spreads the
  pool evenly over the nodes and ``pages_per_node`` is empty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

DEFAULT_RESERVE_MB: Final = 8192  # floor of the default reserve
DEFAULT_RESERVE_SHARE: Final = 0.10  # of MemTotal, when larger than the floor
PAGE_SIZES_KB: Final = {"2M": 2048, "1G": 1048576}
NODE_SYSFS: Final = "/sys/devices/system/node/node{node}/hugepages/hugepages-{size_kb}kB/nr_hugepages"


@dataclasses.dataclass(frozen=True, slots=True)
class HugepagePlan:
    page_size: str  # "2M" or "1G"
    page_size_kb: int
    total_pages: int
    pages_per_node: dict[int, int]  # empty unless per_node
    sysctl: dict[str, int]  # {"vm.nr_hugepages": n} for a global 2M pool
    cmdline: list[tuple[str, str]]  # kernel parameters, in order, for 1G pools
    sysfs_paths: dict[str, int]  # per-node runtime allocation (2M with per_node)
    reserve_mb: int

    @property
    def total_mb(self) -> int:
        return self.total_pages * self.page_size_kb // 1024

    def explain(self) -> str:
        lines = [f"{self.total_pages} x {self.page_size} hugepages = {self.total_mb} MB"]
        if self.pages_per_node:
            spread = ", ".join(f"node {n}: {p}" for n, p in self.pages_per_node.items())
            lines.append(f"per node: {spread}")
        if self.cmdline:
            params = " ".join(f"{key}={value}" for key, value in self.cmdline)
            lines.append(f"kernel command line (reboot needed): {params}")
        lines.extend(f"sysctl {key} = {value}" for key, value in self.sysctl.items())
        lines.extend(f"echo {value} > {path}" for path, value in self.sysfs_paths.items())
        lines.append(f"{self.reserve_mb} MB kept out of the pool for the OS and the engine")
        return "\n".join(lines)


def default_reserve_mb(mem_total_mb: int) -> int:
    """``max(DEFAULT_RESERVE_MB, 10 % of RAM)``; see the module docstring for why."""
    return max(DEFAULT_RESERVE_MB, int(mem_total_mb * DEFAULT_RESERVE_SHARE))


def _spread(total: int, weights: Mapping[int, int]) -> dict[int, int]:
    """Split ``total`` in proportion to ``weights``; leftovers go to the largest remainders."""
    weight_sum = sum(weights.values())
    exact = {node: total * weight / weight_sum for node, weight in weights.items()}
    shares = {node: int(value) for node, value in exact.items()}
    leftover = total - sum(shares.values())
    for node in sorted(exact, key=lambda n: (shares[n] - exact[n], n))[:leftover]:
        shares[node] += 1
    return dict(sorted(shares.items()))


def plan_hugepages(
    mem_total_kb: int,
    numa_nodes: Mapping[int, int | None],
    page_size: str = "2M",
    count: int | None = None,
    share: float | None = None,
    per_node: bool = False,
    reserve_mb: int | None = None,
) -> HugepagePlan:
    """Size a hugepage pool on a host with ``mem_total_kb`` (meminfo MemTotal).

    ``numa_nodes`` maps node -> memory MB (numactl "size"); nodes with no memory are
    skipped. ``reserve_mb`` None means ``default_reserve_mb``. Raises ValueError for an
    unknown page size, both or neither of count/share, or a pool that leaves less than
    the reserve.
    """
    size_kb = PAGE_SIZES_KB.get(page_size)
    if size_kb is None:
        raise ValueError(f"page_size: expected one of {sorted(PAGE_SIZES_KB)}, got {page_size!r}")
    if (count is None) == (share is None):
        raise ValueError("give exactly one of count (pages) or share (fraction of RAM)")
    if share is not None and not 0 < share <= 1:
        raise ValueError(f"share: expected a fraction in (0, 1], got {share}")
    if count is not None and count < 0:
        raise ValueError(f"count: expected >= 0 pages, got {count}")
    if mem_total_kb <= 0:
        raise ValueError(f"mem_total_kb: expected the host's MemTotal, got {mem_total_kb}")

    host_mb = mem_total_kb // 1024
    reserve = default_reserve_mb(host_mb) if reserve_mb is None else reserve_mb
    pages = count if count is not None else int(mem_total_kb * share // size_kb)
    requested_mb = pages * size_kb // 1024
    if requested_mb > host_mb - reserve:
        raise ValueError(
            f"{pages} x {page_size} hugepages ({requested_mb} MB) do not fit: the host has "
            f"{host_mb} MB and {reserve} MB are reserved for the OS and the engine, "
            f"leaving at most {max(host_mb - reserve, 0)} MB"
        )

    weights = {node: mb for node, mb in sorted(numa_nodes.items()) if mb}
    if per_node and not weights:
        raise ValueError("per_node: no NUMA node with memory to spread the pages over")
    pages_per_node = _spread(pages, weights) if per_node else {}

    sysctl: dict[str, int] = {}
    cmdline: list[tuple[str, str]] = []
    sysfs_paths: dict[str, int] = {}
    if page_size == "1G":
        amount = ",".join(f"{n}:{p}" for n, p in pages_per_node.items()) if per_node else str(pages)
        cmdline = [("default_hugepagesz", "1G"), ("hugepagesz", "1G"), ("hugepages", amount)]
    elif per_node:
        sysfs_paths = {
            NODE_SYSFS.format(node=node, size_kb=size_kb): n for node, n in pages_per_node.items()
        }
    else:
        sysctl = {"vm.nr_hugepages": pages}
    return HugepagePlan(
        page_size=page_size,
        page_size_kb=size_kb,
        total_pages=pages,
        pages_per_node=pages_per_node,
        sysctl=sysctl,
        cmdline=cmdline,
        sysfs_paths=sysfs_paths,
        reserve_mb=reserve,
    )
