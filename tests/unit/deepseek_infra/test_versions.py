import pytest

import dataclasses

from deepseek_infra.versions import (
    CudaRelease,
    CudnnVersion,
    DriverVersion,
    InvalidVersionError,
    NcclVersion,
    PackageVersion,
    compare_versions,
    parse_version,
    version_at_least,
    versions_equal,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("550.54.14", (550, 54, 14)),
        ("535.161.08", (535, 161, 8)),
        ("570.26", (570, 26)),
        ("12.4", (12, 4)),
        ("12.4.1", (12, 4, 1)),
        ("9.1.0.70", (9, 1, 0, 70)),
        ("2.18.3", (2, 18, 3)),
        ("2.18.3-1+cuda12.2", (2, 18, 3)),
        ("550.54.15-0ubuntu1", (550, 54, 15)),
        ("1:550.54.15-1", (550, 54, 15)),
        ("V12.4.131", (12, 4, 131)),
        ("  575.57.08\n", (575, 57, 8)),
    ],
)
def test_parse_version_accepts_stack_formats(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "abc", "12.", ".4", "12..4", "12.4a", "12.4-", "latest", "N/A"]
)
def test_parse_version_rejects_garbage_naming_the_text(text):
    with pytest.raises(InvalidVersionError) as err:
        parse_version(text)
    assert repr(text) in str(err.value)


def test_parse_version_rejects_non_strings():
    with pytest.raises(InvalidVersionError):
        parse_version(550)  # type: ignore[arg-type]


def test_invalid_version_error_is_a_value_error():
    assert issubclass(InvalidVersionError, ValueError)


def test_compare_is_numeric_not_lexical():
    assert compare_versions("535.161.08", "535.54.03") == 1
    assert compare_versions("9.10.2", "9.9.0") == 1
    assert compare_versions("525.60.13", "550.54.14") == -1


def test_compare_pads_shorter_versions_with_zeros():
    assert compare_versions("570.26", "570.26.0") == 0
    assert compare_versions("570.26", "570.26.1") == -1
    assert versions_equal("570.26", "570.26.00")


def test_compare_ignores_deb_revision():
    assert versions_equal("2.18.3-1+cuda12.2", "2.18.3")
    assert version_at_least("550.54.15-0ubuntu1", "550.54.15")


def test_version_at_least_boundaries():
    assert version_at_least("550.54.14", "550.54.14")
    assert version_at_least("550.54.15", "550.54.14")
    assert not version_at_least("550.54.13", "550.54.14")


# --- Typed versions ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "parts", "written"), [
    ("12.4", (12, 4, None), "12.4"), ("12.4.1", (12, 4, 1), "12.4.1"), ("12.4.0", (12, 4, 0), "12.4.0"),
    ("V12.4.131", (12, 4, 131), "12.4.131"), (" 13.0.2\n", (13, 0, 2), "13.0.2"),
])
def test_cuda_release_parses_what_the_settings_accept(text, parts, written):
    release = CudaRelease.parse(text)
    assert (release.major, release.minor, release.update) == parts and str(release) == written
    assert release.short == f"{parts[0]}.{parts[1]}"


def test_cuda_release_ga_is_update_0_and_releases_order_numerically():
    ga, update = CudaRelease.parse("12.4"), CudaRelease.parse("12.4.1")
    assert ga == CudaRelease.parse("12.4.0") and hash(ga) == hash(CudaRelease.parse("12.4.0"))
    assert ga.full == "12.4.0" and update.full == "12.4.1"
    assert ga < update < CudaRelease.parse("12.10") < CudaRelease.parse("13.0")
    assert sorted([CudaRelease.parse(t) for t in ("13.0", "12.10", "12.9.1")]) == [
        CudaRelease(12, 9, 1), CudaRelease(12, 10), CudaRelease(13, 0)]


@pytest.mark.parametrize(("text", "message"), [
    ("twelve", "not a version: 'twelve' (a CUDA release looks like 12.4 or 12.4.1)"),
    ("12", "CUDA release must look like 12.4 or 12.4.1, got '12'"),
    ("12.4.1.1", "CUDA release must look like 12.4 or 12.4.1, got '12.4.1.1'"),
    (12.4, "a CUDA release must be a string such as 12.4 (quoted), got 12.4"),
])
def test_cuda_release_refusals_name_the_form(text, message):
    with pytest.raises(InvalidVersionError) as raised:
        CudaRelease.parse(text)
    assert str(raised.value) == message


def test_driver_version_keeps_nvidias_spelling_and_orders_numerically():
    driver = DriverVersion.parse("535.161.08")
    assert str(driver) == "535.161.08" and driver.branch == 535 and driver.parts == (535, 161, 8)
    assert DriverVersion.parse("570.26") == DriverVersion.parse("570.26.0")
    assert DriverVersion.parse("535.54.03") < driver < DriverVersion.parse("550.54.14")
    assert DriverVersion.of_package(PackageVersion.parse("1:550.54.15-0ubuntu1")) == DriverVersion("550.54.15")


@pytest.mark.parametrize(("text", "words"), [
    ("550.90.12-1", "no Debian revision"), ("1:550.90.12", "no Debian revision"), ("550", "like 550.90.12"),
    ("latest", "not a version: 'latest'"), (550, "must be a string"),
])
def test_driver_version_refusals(text, words):
    with pytest.raises(InvalidVersionError, match=words):
        DriverVersion.parse(text)


def test_package_version_is_kept_as_written_and_split_as_debian_does():
    version = PackageVersion.parse(" 1:2.21.5-1+cuda12.4 ")
    assert str(version) == "1:2.21.5-1+cuda12.4"
    assert (version.epoch, version.upstream, version.revision) == (1, "2.21.5", "1+cuda12.4")
    assert (version.release, version.parts, version.cuda) == ("2.21.5", (2, 21, 5), (12, 4))
    assert PackageVersion.parse("2.21.5").revision == "" and PackageVersion.parse("2.21.5").cuda is None


@pytest.mark.parametrize(("older", "newer"), [
    ("1.0-9", "1.0-10"), ("1.0~rc1-1", "1.0-1"), ("9.9", "1:0.1"), ("550.90.12-1", "565.57.01-1"),
    ("2.21.5-1+cuda12.4", "2.21.5-1+cuda12.8"), ("1.0", "1.0.1"), ("1.0a", "1.0b"), ("1.0", "1.0+b1"),
])
def test_package_versions_order_as_dpkg_does(older, newer):
    assert PackageVersion.parse(older) < PackageVersion.parse(newer)
    assert PackageVersion.parse(newer) > PackageVersion.parse(older)


def test_package_versions_equal_as_dpkg_says():
    assert PackageVersion.parse("1.0") == PackageVersion.parse("1.0-0") == PackageVersion.parse("0:1.0")
    assert hash(PackageVersion.parse("1.0")) == hash(PackageVersion.parse("0:1.0"))
    assert PackageVersion.parse("550.90.12-1") != PackageVersion.parse("550.90.12-2")
    # a setting's cuDNN / NCCL version equals the same version as dpkg reports it
    assert CudnnVersion.parse("9.1.0.70-1") == PackageVersion.parse("9.1.0.70-1")
    assert PackageVersion.parse("2.0a-1").parts == ()  # a Debian version outside the stack is still read


def test_cudnn_and_nccl_versions():
    assert CudnnVersion.parse("8.9.7.29-1+cuda12.2").major == 8
    assert CudnnVersion.parse("8.9.7.29-1+cuda12.2").cuda == (12, 2)
    assert NcclVersion.parse("2.21.5").major == 2 and NcclVersion.parse("2.21.5").cuda is None
    with pytest.raises(InvalidVersionError, match=r"not a version: '2\.0a-1' \(an NCCL version looks like"):
        NcclVersion.parse("2.0a-1")
    with pytest.raises(InvalidVersionError, match="a Debian package version looks like"):
        PackageVersion.parse("")


def test_versions_are_immutable_and_compare_within_their_kind_only():
    release = CudaRelease.parse("12.4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        release.minor = 8  # type: ignore[misc]
    assert release != "12.4" and DriverVersion("12.4") != release
    with pytest.raises(TypeError):
        release < DriverVersion("12.4")  # noqa: B015
