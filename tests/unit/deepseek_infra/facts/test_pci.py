"""lspci -nn parsing for NVIDIA devices."""

from deepseek_infra.facts.pci import LSPCI_NVIDIA_COMMAND, NvidiaPciDevices, parse_lspci_nn, parse_lspci_nvidia

# HGX H100 board before the driver is installed: 8 GPUs, 4 NVSwitches, plus a ConnectX-7
# line as a full `lspci -nn` would show it (filtered out by vendor).
LSPCI_HGX = """\
0000:18:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:2a:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:3a:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:5d:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:9a:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:ab:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:ba:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:db:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)
0000:05:00.0 Bridge [0680]: NVIDIA Corporation Device [10de:22a3] (rev a1)
0000:06:00.0 Bridge [0680]: NVIDIA Corporation Device [10de:22a3] (rev a1)
0000:07:00.0 Bridge [0680]: NVIDIA Corporation Device [10de:22a3] (rev a1)
0000:08:00.0 Bridge [0680]: NVIDIA Corporation Device [10de:22a3] (rev a1)
0000:19:00.0 Infiniband controller [0207]: Mellanox Technologies MT2910 Family [ConnectX-7] [15b3:1021]
""".splitlines()


def test_parse_lspci_nvidia_hgx_board():
    devices = parse_lspci_nvidia(LSPCI_HGX)
    gpus = [d for d in devices if d["class_id"] == "0302"]
    switches = [d for d in devices if d["class_id"] == "0680"]
    assert [g["slot"] for g in gpus] == [
        "0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
        "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0",
    ]
    assert {g["device_id"] for g in gpus} == {"2330"}
    assert gpus[0]["description"] == "NVIDIA Corporation GH100 [H100 SXM5 80GB]"
    assert len(switches) == 4 and switches[0]["device_id"] == "22a3"
    assert len(devices) == 12  # the Mellanox line is not NVIDIA


def test_parse_lspci_short_slot_and_no_revision():
    line = "18:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)"
    assert parse_lspci_nvidia([line]) == [{
        "slot": "18:00.0", "class_id": "0302", "class_name": "3D controller", "vendor_id": "10de",
        "device_id": "2330", "description": "NVIDIA Corporation GH100 [H100 SXM5 80GB]", "revision": "a1",
    }]
    vga = "0000:C1:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102GL [RTX 6000 Ada Generation] [10de:26b1]"
    (device,) = parse_lspci_nn([vga])
    assert device["slot"] == "0000:c1:00.0" and device["revision"] is None
    assert device["description"] == "NVIDIA Corporation AD102GL [RTX 6000 Ada Generation]"


def test_parse_lspci_skips_unparseable_lines():
    assert parse_lspci_nn(["pcilib: Cannot open /proc/bus/pci", ""]) == []


def test_nvidia_pci_fact_wiring():
    fact = NvidiaPciDevices()
    assert fact.command() == LSPCI_NVIDIA_COMMAND == "lspci -D -nn -d 10de:"
    assert fact.requires_command() == "lspci"
    assert fact.default() == []
