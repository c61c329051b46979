import pytest

from deepseek_infra.versions import (
    InvalidVersionError,
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
