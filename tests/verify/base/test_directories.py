"""The collection's directory tree exists with the owners and modes the base role sets."""

import pytest

from roles.base.tasks import DIRECTORIES


@pytest.mark.parametrize(("path", "owner", "group", "mode"), DIRECTORIES, ids=[d[0] for d in DIRECTORIES])
def test_directory(host, path, owner, group, mode):
    directory = host.file(path)
    where = f"{host.backend.hostname}: {path}"
    assert directory.is_directory, f"{where}: expected a directory, found none"
    assert (directory.user, directory.group) == (owner, group), (
        f"{where}: expected {owner}:{group}, found {directory.user}:{directory.group}"
    )
    assert directory.mode == int(mode, 8), f"{where}: expected mode {mode}, found {directory.mode:04o}"
