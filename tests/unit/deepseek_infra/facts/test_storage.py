"""lsblk JSON (new and old util-linux) and df parsing; PathSpace run against this machine."""

import json
import subprocess

from deepseek_infra.facts.storage import (
    LSBLK_COMMAND,
    BlockDevices,
    PathSpace,
    parse_df,
    parse_lsblk_json,
    parse_path_space,
)

# util-linux 2.37 on a GPU node: OS disk partitions, two NVMe drives in a RAID0 for weights.
LSBLK_NEW = """{
   "blockdevices": [
      {"name":"sda", "type":"disk", "size":480103981056, "model":"SAMSUNG MZ7L3480HCHQ-00A07", "rota":false, "tran":"sata", "mountpoint":null,
         "children": [
            {"name":"sda1", "type":"part", "size":536870912, "model":null, "rota":false, "tran":null, "mountpoint":"/boot/efi"},
            {"name":"sda2", "type":"part", "size":479565012992, "model":null, "rota":false, "tran":null, "mountpoint":"/"}
         ]
      },
      {"name":"nvme0n1", "type":"disk", "size":3840755982336, "model":"SAMSUNG MZQL23T8HCLS-00A07              ", "rota":false, "tran":"nvme", "mountpoint":null,
         "children": [
            {"name":"md0", "type":"raid0", "size":7681243840512, "model":null, "rota":false, "tran":null, "mountpoint":"/data"}
         ]
      },
      {"name":"nvme1n1", "type":"disk", "size":3840755982336, "model":"SAMSUNG MZQL23T8HCLS-00A07              ", "rota":false, "tran":"nvme", "mountpoint":null,
         "children": [
            {"name":"md0", "type":"raid0", "size":7681243840512, "model":null, "rota":false, "tran":null, "mountpoint":"/data"}
         ]
      }
   ]
}"""

# util-linux 2.31 (Ubuntu 18.04): every value is a string, ROTA is "0"/"1".
LSBLK_OLD = """{
   "blockdevices": [
      {"name": "sdb", "type": "disk", "size": "8001563222016", "model": "HGST HUH728080AL", "rota": "1", "tran": "sas", "mountpoint": null},
      {"name": "loop0", "type": "loop", "size": "91099136", "model": null, "rota": "0", "tran": null, "mountpoint": "/snap/core/6350"}
   ]
}"""


def test_parse_lsblk_new_format_flattens_children_under_parent():
    devices = parse_lsblk_json(LSBLK_NEW.splitlines())
    assert [(d["name"], d["parent"]) for d in devices] == [
        ("sda", None), ("sda1", "sda"), ("sda2", "sda"),
        ("nvme0n1", None), ("md0", "nvme0n1"), ("nvme1n1", None), ("md0", "nvme1n1"),
    ]
    assert devices[3] == {
        "name": "nvme0n1", "type": "disk", "size_bytes": 3840755982336,
        "model": "SAMSUNG MZQL23T8HCLS-00A07", "rotational": False, "transport": "nvme",
        "mountpoint": None, "parent": None,
    }
    assert devices[2]["mountpoint"] == "/"
    assert devices[4]["type"] == "raid0" and devices[4]["size_bytes"] == 7681243840512


def test_parse_lsblk_old_format_string_values():
    sdb, loop0 = parse_lsblk_json(LSBLK_OLD.splitlines())
    assert sdb["size_bytes"] == 8001563222016 and sdb["rotational"] is True
    assert sdb["transport"] == "sas" and sdb["model"] == "HGST HUH728080AL"
    assert loop0["rotational"] is False and loop0["mountpoint"] == "/snap/core/6350"


def test_parse_lsblk_empty_output():
    assert parse_lsblk_json([]) == []
    assert parse_lsblk_json(['{"blockdevices": []}']) == []


def test_block_devices_fact_wiring():
    fact = BlockDevices()
    assert fact.command() == LSBLK_COMMAND == "lsblk -J -b -o NAME,TYPE,SIZE,MODEL,ROTA,TRAN,MOUNTPOINT"
    assert fact.requires_command() == "lsblk"
    assert fact.default() == []


def test_block_devices_on_this_machine():
    output = subprocess.run(["sh", "-c", LSBLK_COMMAND], capture_output=True, text=True, check=True)
    devices = parse_lsblk_json(output.stdout.splitlines())
    assert len(devices) == len(json.loads(output.stdout)["blockdevices"]) >= 1
    assert all(isinstance(d["size_bytes"], int) for d in devices)


DF_OUTPUT = [
    "Filesystem            1-blocks          Used     Available Capacity Mounted on",
    "/dev/md0         7681243840512 1048576000000 6632888991744      14% /data",
    "//nas/models      107374182400   53687091200   53687091200      50% /mnt/shared models",
    "tmpfs                        0             0             0        - /run/empty",
]


def test_parse_df_rows_with_space_in_mountpoint_and_empty_fs():
    md0, nas, tmpfs = parse_df(DF_OUTPUT)
    assert md0 == {
        "device": "/dev/md0", "size_bytes": 7681243840512, "used_bytes": 1048576000000,
        "free_bytes": 6632888991744, "mountpoint": "/data",
    }
    assert nas["device"] == "//nas/models" and nas["mountpoint"] == "/mnt/shared models"
    assert tmpfs["size_bytes"] == 0 and tmpfs["mountpoint"] == "/run/empty"


def test_parse_path_space_uses_first_line_as_existing_ancestor():
    space = parse_path_space(["/data", *DF_OUTPUT[:2]])
    assert space == {"existing_path": "/data", **parse_df(DF_OUTPUT)[0]}
    assert parse_path_space([]) is None
    assert parse_path_space(["/data", "df: /data: Permission denied"]) is None


def test_path_space_command_quotes_path():
    command = PathSpace().command("/srv/it's; rm -rf /").get_raw_value()
    assert command.startswith("p='/srv/it'\"'\"'s; rm -rf /';")
    assert PathSpace().requires_command("/srv") == "df"


def test_path_space_on_missing_directory_measures_nearest_ancestor(tmp_path):
    missing = tmp_path / "models" / "deepseek-v3"
    command = PathSpace().command(str(missing)).get_raw_value()
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    space = PathSpace().process(output.stdout.splitlines())
    assert space["existing_path"] == str(tmp_path)
    assert space["size_bytes"] > 0 and 0 <= space["free_bytes"] <= space["size_bytes"]
