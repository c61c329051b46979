"""Kernel command line on every real capture, plus the lookup helpers."""

from pathlib import Path

import pytest

from deepseek_infra.facts.kernel import (
    KernelCmdline,
    KernelRelease,
    cmdline_get,
    cmdline_values,
    parse_cmdline,
    parse_kernel_release,
)

PROC = Path(__file__).parents[3] / "fixtures" / "hw" / "proc"

CMDLINE_EXPECTED = {
    "tool_man-sys7048gr-4x2080ti-cmdline.txt": [
        ("BOOT_IMAGE", "/boot/vmlinuz-5.0.0-36-generic"),
        ("root", "UUID=451b6e69-2361-4370-96fe-1e581689e04e"),
        ("ro", None), ("quiet", None), ("splash", None), ("vt.handoff", "1"),
    ],
    "rccl-1129-mi100x2-cmdline.txt": [
        ("BOOT_IMAGE", "/vmlinuz-5.15.0-101-generic"),
        ("root", "/dev/mapper/ubuntu--vg-ubuntu--lv"), ("ro", None), ("iommu", "pt"),
    ],
    "l2fwd-nv-gpudirect-server-cmdline.txt": [
        ("BOOT_IMAGE", "/vmlinuz-5.4.0-53-lowlatency"),
        ("root", "/dev/mapper/ubuntu--vg-ubuntu--lv"), ("ro", None), ("maybe-ubiquity", None),
        ("default_hugepagesz", "1G"), ("hugepagesz", "1G"), ("hugepages", "16"),
        ("tsc", "reliable"), ("clocksource", "tsc"), ("intel_idle.max_cstate", "0"),
        ("mce", "ignore_ce"), ("processor.max_cstate", "0"), ("idle", "poll"),
        ("isolcpus", "2-21"), ("nohz_full", "2-21"), ("rcu_nocbs", "2-21"),
        ("nosoftlockup", None), ("iommu", "off"), ("intel_iommu", "off"),
    ],
}


def test_every_cmdline_capture_has_expectations():
    assert {path.name for path in PROC.glob("*cmdline*")} == set(CMDLINE_EXPECTED)


@pytest.mark.parametrize("name", sorted(CMDLINE_EXPECTED))
def test_parse_cmdline_capture(name):
    text = (PROC / name).read_text()
    parsed = parse_cmdline(text.splitlines())
    assert parsed["params"] == CMDLINE_EXPECTED[name]
    assert parsed["raw"] == text.strip()
    assert parsed["init_args"] == []


def test_l2fwd_cmdline_lookups():
    cmdline = parse_cmdline((PROC / "l2fwd-nv-gpudirect-server-cmdline.txt").read_text().splitlines())
    assert cmdline_get(cmdline, "hugepages") == "16"
    assert cmdline_get(cmdline, "default_hugepagesz") == "1G"
    assert cmdline_get(cmdline, "isolcpus") == "2-21"
    assert cmdline_get(cmdline, "intel-iommu") == "off"  # "-" and "_" are equivalent
    assert cmdline_get(cmdline, "nosoftlockup") == ""
    assert cmdline_get(cmdline, "iommu.passthrough") is None
    assert cmdline_get(cmdline, "iommu.passthrough", "absent") == "absent"


def test_repeated_params_keep_boot_order_and_last_wins():
    cmdline = parse_cmdline(["hugepagesz=1G hugepages=16 hugepagesz=2M hugepages=512"])
    assert cmdline_values(cmdline, "hugepagesz") == ["1G", "2M"]
    assert cmdline_values(cmdline, "hugepages") == ["16", "512"]
    assert cmdline_get(cmdline, "hugepages") == "512"


def test_quoted_values_keep_their_spaces():
    cmdline = parse_cmdline(['ro dyndbg="file drivers/pci/* +p" "quoted=yes" init=/sbin/init'])
    assert cmdline["params"] == [
        ("ro", None), ("dyndbg", "file drivers/pci/* +p"), ("quoted", "yes"), ("init", "/sbin/init"),
    ]


def test_words_after_double_dash_are_init_args_not_params():
    cmdline = parse_cmdline(["console=ttyS0 rdinit=/init -- --addr 0.0.0.0:2024 single"])
    assert cmdline["params"] == [("console", "ttyS0"), ("rdinit", "/init")]
    assert cmdline["init_args"] == ["--addr", "0.0.0.0:2024", "single"]
    assert cmdline_get(cmdline, "single") is None


def test_value_may_contain_equals_sign():
    assert parse_cmdline(["root=UUID=abc"])["params"] == [("root", "UUID=abc")]


def test_kernel_cmdline_fact_wiring():
    fact = KernelCmdline()
    assert fact.command() == "cat /proc/cmdline"
    assert fact.default() == {"raw": "", "params": [], "init_args": []}
    assert fact.process(["ro iommu=pt"])["params"] == [("ro", None), ("iommu", "pt")]


def test_kernel_release():
    assert KernelRelease().command() == "uname -r"
    assert KernelRelease().process(["5.4.0-53-lowlatency"]) == "5.4.0-53-lowlatency"
    assert parse_kernel_release(["", "  6.8.0-48-generic  "]) == "6.8.0-48-generic"
    assert parse_kernel_release([]) is None
