"""LAB SIMULATION: derive a profile's capture from a real one when no exact capture exists.

Only one rule so far: a single-NUMA ``nvidia-smi topo -m`` capture regrouped onto two
sockets (an HGX board wired the same way in a 2-socket server). Links between devices on
the same socket stay as captured; NODE across sockets becomes SYS, as nvidia-smi prints
it for paths through the inter-socket link; affinity columns follow the sockets.
"""

from __future__ import annotations

import re

_ROW = re.compile(r"^(GPU|NIC)(\d+)\t")


def regroup_topology_two_sockets(text: str, gpus_per_socket: int, nics_per_socket: int,
                                 cpus_by_socket: tuple[str, str]) -> str:
    lines = text.split("\n")
    columns = lines[0].split("\t")[1:]

    def socket(name: str) -> int | None:
        match = re.match(r"^(GPU|NIC)(\d+)$", name)
        if not match:
            return None
        per_socket = gpus_per_socket if match[1] == "GPU" else nics_per_socket
        return int(match[2]) // per_socket

    out = [lines[0]]
    for line in lines[1:]:
        match = _ROW.match(line)
        if not match:
            out.append(line)
            continue
        cells = line.split("\t")
        row = cells[0]
        for index, column in enumerate(columns):
            if socket(column) is None:
                break
            if cells[index + 1].strip() == "NODE" and socket(row) != socket(column):
                cells[index + 1] = "SYS"
        if match[1] == "GPU":
            affinity = columns.index("CPU Affinity") + 1
            cells[affinity] = cpus_by_socket[socket(row)]
            cells[affinity + 1] = str(socket(row))
        out.append("\t".join(cells))
    return "\n".join(out)
