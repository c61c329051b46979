"""deepseek_infra.bootparams against the /proc/cmdline captures in tests/fixtures/hw/proc/ (SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_infra.bootparams import (
    iommu_params,
    merge_params,
    missing_from_running,
    render_grub_dropin,
)
from deepseek_infra.facts.kernel import parse_cmdline

PROC = Path(__file__).resolve().parents[2] / "fixtures" / "hw" / "proc"


def params(name: str) -> list[tuple[str, str | None]]:
    return parse_cmdline((PROC / name).read_text().split("\n"))["params"]


L2FWD = params("l2fwd-nv-gpudirect-server-cmdline.txt")  # 1G hugepages, isolcpus, iommu=off
RCCL = params("rccl-1129-mi100x2-cmdline.txt")  # AMD box, ... ro iommu=pt
TOOL_MAN = params("tool_man-sys7048gr-4x2080ti-cmdline.txt")  # ... ro quiet splash vt.handoff=1

HUGEPAGES_1G_16 = [("default_hugepagesz", "1G"), ("hugepagesz", "1G"), ("hugepages", "16")]


def replaced(current, **changes):
    """``current`` with the values of some keys changed, positions untouched."""
    return [(key, changes.get(key, value)) for key, value in current]


def test_iommu_pt_replaces_iommu_off_in_place():
    merged = merge_params(L2FWD, iommu_params("GenuineIntel"))
    assert merged == replaced(L2FWD, iommu="pt", intel_iommu="on")
    assert merged[-2:] == [("iommu", "pt"), ("intel_iommu", "on")]


def test_merge_is_idempotent_and_never_duplicates():
    wanted = {**iommu_params("GenuineIntel"), "hugepages": HUGEPAGES_1G_16, "isolcpus": "4-21"}
    once = merge_params(L2FWD, wanted)
    assert merge_params(once, wanted) == once
    keys = [key for key, _ in once]
    assert len(keys) == len(set(keys)) == len(L2FWD)


def test_hugepage_group_is_rewritten_where_it_was():
    group = [("default_hugepagesz", "1G"), ("hugepagesz", "1G"), ("hugepages", "32")]
    merged = merge_params(L2FWD, {"hugepages": group})
    assert merged == replaced(L2FWD, hugepages="32")


def test_group_with_two_page_sizes_repeats_keys_in_order():
    two_sizes = [("hugepagesz", "1G"), ("hugepages", "16"), ("hugepagesz", "2M"), ("hugepages", "512")]
    merged = merge_params(L2FWD, {"hugepages": two_sizes})
    start = merged.index(("hugepagesz", "1G"))
    assert merged[start - 1] == ("default_hugepagesz", "1G")  # not in the group: untouched
    assert merged[start : start + 4] == two_sizes
    assert [key for key, _ in merged].count("hugepagesz") == 2
    assert merged[start + 4 :] == L2FWD[L2FWD.index(("hugepages", "16")) + 1 :]


def test_new_keys_are_appended_in_wanted_order():
    merged = merge_params(TOOL_MAN, {"iommu": "pt", "nosoftlockup": None, "console": ["tty0", "ttyS0,115200"]})
    assert merged == TOOL_MAN + [
        ("iommu", "pt"), ("nosoftlockup", None), ("console", "tty0"), ("console", "ttyS0,115200")
    ]


def test_remove_and_dash_underscore_equivalence():
    merged = merge_params(
        replaced(L2FWD, intel_iommu="off"), {"intel-iommu": "on"}, remove={"isolcpus", "nohz-full", "rcu_nocbs"}
    )
    keys = [key for key, _ in merged]
    assert not {"isolcpus", "nohz_full", "rcu_nocbs"} & set(keys)
    assert merged[-1] == ("intel-iommu", "on") and "intel_iommu" not in keys
    assert merge_params(TOOL_MAN, {"quiet": []}) == [p for p in TOOL_MAN if p[0] != "quiet"]


def test_contradictory_requests_are_rejected():
    with pytest.raises(ValueError, match="both wanted and removed"):
        merge_params(L2FWD, {"iommu": "pt"}, remove={"iommu"})
    with pytest.raises(ValueError, match="'hugepages' is managed by both"):
        merge_params(L2FWD, {"hugepages": "16", "pools": [("hugepages", "8")]})


def test_grub_dropin_appends_to_the_distribution_value():
    text = render_grub_dropin([("intel_iommu", "on"), ("iommu", "pt"), *HUGEPAGES_1G_16, ("nosoftlockup", None)])
    assert text.splitlines()[-1] == (
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT intel_iommu=on iommu=pt '
        'default_hugepagesz=1G hugepagesz=1G hugepages=16 nosoftlockup"'
    )
    assert all(line.startswith("#") for line in text.splitlines()[:-1])
    assert text.endswith("\n")


def test_grub_dropin_round_trips_through_the_kernel_parser():
    ours = merge_params([], {"isolcpus": "managed_irq,domain,2-21", "hugepages": [("hugepages", "0:8,1:8")]})
    line = render_grub_dropin(ours).splitlines()[-1]
    value = line.split('"', 2)[1].removeprefix("$GRUB_CMDLINE_LINUX_DEFAULT ")
    assert parse_cmdline([value])["params"] == ours


@pytest.mark.parametrize("value", ["file foo.c +p", 'a"b', "$(reboot)", "a`b`", "a\\b", "a;b"])
def test_grub_dropin_rejects_values_that_need_quoting(value):
    with pytest.raises(ValueError, match="only"):
        render_grub_dropin([("dyndbg", value)])


def test_missing_from_running_reports_what_needs_a_reboot():
    assert missing_from_running(L2FWD, iommu_params("GenuineIntel")) == ["intel_iommu=on", "iommu=pt"]
    # The MI100 box already runs iommu=pt; only the AMD key is new.
    assert missing_from_running(RCCL, iommu_params("AuthenticAMD")) == ["amd_iommu=on"]
    assert missing_from_running(L2FWD, {"hugepages": HUGEPAGES_1G_16}) == []
    assert missing_from_running(L2FWD, {"hugepages": HUGEPAGES_1G_16[:2] + [("hugepages", "32")]}) == [
        "default_hugepagesz=1G hugepagesz=1G hugepages=32"
    ]
    assert missing_from_running(L2FWD, {"nosoftlockup": None}, remove=["isolcpus"]) == ["without isolcpus"]


def test_after_merge_and_reboot_nothing_is_missing():
    wanted = {**iommu_params("GenuineIntel"), "hugepages": HUGEPAGES_1G_16}
    assert missing_from_running(merge_params(L2FWD, wanted), wanted) == []


def test_conflicting_and_repeated_values():
    # The drop-in appends: iommu=off from /etc/default/grub still took effect.
    assert missing_from_running(RCCL[:-1] + [("iommu", "off"), ("iommu", "pt")], {"iommu": "pt"}) == ["iommu=pt"]
    # The same value in /etc/default/grub and in the drop-in: applied, no reboot loop.
    assert missing_from_running(RCCL + [("iommu", "pt")], {"iommu": "pt"}) == []


def test_iommu_params_by_vendor():
    assert iommu_params("GenuineIntel") == {"intel_iommu": "on", "iommu": "pt"}
    assert iommu_params("AuthenticAMD") == {"amd_iommu": "on", "iommu": "pt"}
    with pytest.raises(ValueError, match="'ARM'"):
        iommu_params("ARM")
