"""The fleet's node containers as Docker lists them (what the inventory and tools read)."""

from __future__ import annotations

from dataclasses import dataclass

from lab.constants import FLEET, LABEL_NODE, LABEL_PROFILE, NODE_PREFIX
from lab.docker import docker


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    profile: str
    status: str


def node_name(index: int) -> str:
    return f"{NODE_PREFIX}{index}"


def list_nodes() -> list[Node]:
    """Lab nodes that exist, running or not, in index order."""
    output = docker(
        "ps", "-a", "--filter", f"label={LABEL_NODE}={FLEET}",
        "--format", f'{{{{.Names}}}}\t{{{{.Label "{LABEL_PROFILE}"}}}}\t{{{{.State}}}}',
    )
    nodes = [Node(*line.split("\t")) for line in output.splitlines() if line.strip()]
    return sorted(nodes, key=lambda node: (len(node.name), node.name))


def node_addresses(names: list[str]) -> dict[str, str]:
    """Each running node's address on the fleet's network, in one `docker inspect`: the lab's
    cluster network (what a real inventory sets as serve_cluster_address)."""
    if not names:
        return {}
    output = docker("inspect", "-f", "{{.Name}}\t{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", *names)
    addresses = {}
    for line in output.splitlines():
        name, _, ips = line.partition("\t")
        if ips.split():
            addresses[name.lstrip("/")] = ips.split()[0]
    return addresses
