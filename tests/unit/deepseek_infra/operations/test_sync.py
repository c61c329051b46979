"""directory_synced's decision: the remote tree (one real RemoteTree run here) against the source."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess

import pytest

from deepseek_infra.operations.sync import (
    RemoteTree,
    local_files,
    parse_remote_tree,
    sync_difference,
)

pytestmark = pytest.mark.skipif(not all(shutil.which(tool) for tool in ("find", "stat", "sha1sum", "sed")),
                                reason="needs find, stat, sha1sum and sed")


def remote_tree(path) -> dict:
    result = subprocess.run(["sh", "-c", RemoteTree().command(path=str(path))], capture_output=True, text=True, check=True)
    return parse_remote_tree(result.stdout.splitlines())


@pytest.fixture
def pair(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    for name, body in (("a-1.0-py3-none-any.whl", b"a"), ("b 2.whl", b"bb"), ("empty.whl", b"")):
        (src / name).write_bytes(body)
        (dest / name).write_bytes(body)
        os.chmod(src / name, 0o644)
        os.chmod(dest / name, 0o644)
    os.chmod(dest, 0o755)
    return src, dest


def owner(path) -> dict:
    stat = os.stat(path)
    return {"user": pwd.getpwuid(stat.st_uid).pw_name, "group": grp.getgrgid(stat.st_gid).gr_name}


def test_identical_trees_need_nothing(pair):
    src, dest = pair
    assert sync_difference(local_files(str(src)), remote_tree(dest), str(dest), mode="0644", dir_mode="0755",
                           delete=True, **owner(dest)) is None


def test_missing_directory_is_a_difference(tmp_path, pair):
    src, _ = pair
    assert remote_tree(tmp_path / "nowhere") == {}
    assert sync_difference(local_files(str(src)), {}, str(tmp_path / "nowhere")).endswith("not a directory")


def test_content_mode_owner_and_extra_files_are_differences(pair):
    src, dest = pair
    (dest / "b 2.whl").write_bytes(b"changed")
    assert sync_difference(local_files(str(src)), remote_tree(dest), str(dest)) == f"{dest}/b 2.whl: content differs"
    (dest / "b 2.whl").write_bytes(b"bb")
    os.chmod(dest / "empty.whl", 0o600)
    assert "empty.whl: mode 600, wanted 644" in sync_difference(local_files(str(src)), remote_tree(dest), str(dest), mode="0644", dir_mode="0755")
    os.chmod(dest / "empty.whl", 0o644)
    assert sync_difference(local_files(str(src)), remote_tree(dest), str(dest), user="nobody-here") == \
        f"{dest}: user {owner(dest)['user']}, wanted nobody-here"
    assert sync_difference(local_files(str(src)), remote_tree(dest), str(dest), dir_mode="0750").startswith(f"{dest}: mode 755")
    (dest / "old.whl").write_bytes(b"old")
    assert sync_difference(local_files(str(src)), remote_tree(dest), str(dest), delete=True) == f"{dest}/old.whl: not in the source"
    # Without delete, or when excluded (files.sync never deletes those), the extra file is left alone.
    assert sync_difference(local_files(str(src)), remote_tree(dest), str(dest)) is None
    assert sync_difference(local_files(str(src)), remote_tree(dest), str(dest), delete=True, exclude=("*/old.whl",)) is None


def test_local_subdirectories_and_links_are_left_to_files_sync(pair):
    src, _ = pair
    (src / "sub").mkdir()
    assert local_files(str(src)) is None
    (src / "sub").rmdir()
    (src / "link.whl").symlink_to(src / "empty.whl")
    assert local_files(str(src)) is None


def test_excluded_local_files_are_not_wanted(pair):
    src, dest = pair
    (src / ".lock").write_bytes(b"x")
    assert ".lock" in local_files(str(src))
    assert ".lock" not in local_files(str(src), ("*/.lock",))
    assert sync_difference(local_files(str(src), ("*/.lock",)), remote_tree(dest), str(dest), delete=True) is None


def test_local_digest_is_sha1_of_the_content(pair):
    src, _ = pair
    assert local_files(str(src))["a-1.0-py3-none-any.whl"]["sha1"] == "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"


def test_excluded_local_directories_are_not_wanted(pair):
    """The engine server package: its __pycache__ is left out, as files.sync's exclude_dir does."""
    src, dest = pair
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    assert local_files(str(src)) is None  # a subdirectory: left to files.sync
    assert set(local_files(str(src), exclude_dir=("__pycache__",))) == {"a-1.0-py3-none-any.whl", "b 2.whl", "empty.whl"}
    (dest / "__pycache__").mkdir()
    (dest / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"y")
    # The remote's compiled files match ``exclude``; files.sync would not delete them either.
    assert sync_difference(local_files(str(src), exclude_dir=("__pycache__",)), remote_tree(dest), str(dest),
                           delete=True, exclude=("*.pyc",)) is None
    assert sync_difference(local_files(str(src), exclude_dir=("__pycache__",)), remote_tree(dest), str(dest),
                           delete=True) == f"{dest}/__pycache__/app.cpython-311.pyc: not in the source"


def test_marker_exclude_keeps_wheels_under_a_hidden_controller_directory(tmp_path):
    """``exclude`` is matched against the whole local path (files.sync does the same): the
    lab's wheelhouses live under ``.lab/``, so only a pattern naming the marker is safe."""
    src = tmp_path / ".lab" / "wheelhouse"
    src.mkdir(parents=True)
    (src / "starlette-1.10.0-py3-none-any.whl").write_bytes(b"w")
    (src / ".complete").write_bytes(b"")
    assert set(local_files(str(src), ("*/.complete",))) == {"starlette-1.10.0-py3-none-any.whl"}
    assert local_files(str(src), ("*/.*",)) == {}  # a dot anywhere in the path: everything left out
