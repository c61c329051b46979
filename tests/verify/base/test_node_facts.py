"""/etc/deepseek/node.json agrees with what the host presents now."""

from deepseek_node import paths
from deepseek_infra.facts.cpu import parse_lscpu
from deepseek_infra.nodeinfo import SCHEMA_VERSION


def test_node_facts_file_mode(host):
    facts_file = host.file(paths.NODE_FACTS_FILE)
    assert (facts_file.user, facts_file.group, facts_file.mode) == ("root", paths.SERVICE_USER, 0o640), (
        f"{host.backend.hostname}: {paths.NODE_FACTS_FILE}: found "
        f"{facts_file.user}:{facts_file.group} {facts_file.mode:04o}"
    )


def test_node_facts_identity(host, node_facts):
    assert node_facts["schema"] == SCHEMA_VERSION
    os_id = host.system_info.distribution
    assert node_facts["os"]["id"] == os_id, f"{host.backend.hostname}: os id {node_facts['os']['id']} != {os_id}"
    assert node_facts["kernel"] == host.check_output("uname -r")


def test_node_facts_cpu_matches_lscpu(host, node_facts):
    lscpu = parse_lscpu(host.check_output("lscpu").splitlines())
    assert node_facts["cpu"]["cpus"] == lscpu["cpus"], (
        f"{host.backend.hostname}: cpu.cpus: node.json {node_facts['cpu']['cpus']}, lscpu {lscpu['cpus']}"
    )
    assert node_facts["cpu"]["sockets"] == lscpu["sockets"]


def test_node_facts_memory_matches_meminfo(host, node_facts):
    mem_total_kb = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    assert node_facts["memory_mb"] == mem_total_kb // 1024, (
        f"{host.backend.hostname}: memory_mb: node.json {node_facts['memory_mb']}, /proc/meminfo {mem_total_kb // 1024}"
    )


def test_node_facts_gpus_match_the_host(host, node_facts):
    """GPUs listed by the driver when it is loaded, otherwise none (PCI devices still counted)."""
    smi = host.run("nvidia-smi -L")
    if smi.rc == 0:
        listed = [line for line in smi.stdout.splitlines() if line.startswith("GPU ")]
        assert len(node_facts["gpus"]) == len(listed), (
            f"{host.backend.hostname}: gpus: node.json has {len(node_facts['gpus'])}, nvidia-smi -L lists {len(listed)}"
        )
    else:
        assert node_facts["gpus"] == [], f"{host.backend.hostname}: gpus listed without a working driver"
    pci = host.run("lspci -n -d 10de:")
    if pci.rc == 0:
        devices = [line for line in pci.stdout.splitlines() if line.strip()]
        assert len(node_facts["nvidia_pci_devices"]) == len(devices), (
            f"{host.backend.hostname}: nvidia_pci_devices: node.json {len(node_facts['nvidia_pci_devices'])}, lspci {len(devices)}"
        )
