"""``files.sync`` / ``files.put`` / ``files.template`` that ask the host one question when
nothing differs.

Stock ``files.sync`` asks two facts per file (``File`` and ``Sha1File``) plus ``Link``,
``Directory``, ``FindFiles`` and ``FindLinks``: a 44-wheel wheelhouse costs about 92 round
trips per run even when it is already in place. ``directory_synced`` reads the whole
remote tree (type, mode, owner, group, SHA-1 of every file) in one ``RemoteTree`` fact.
Stock ``files.put`` and ``files.template`` ask ``File``, ``Directory`` (the parent) and
``Sha1File``: three round trips for a file already in place, six when a role reads the
operation's ``.changed`` (pyinfra runs the operation once to answer it, and again to
execute). ``file_synced`` and ``template_synced`` read one ``RemoteFile`` fact, remembered
for the run while the host cannot have changed (``deepseek_infra.facts.host.remembered_fact``).

When the host already is what the stock operation would leave, these do nothing;
otherwise they hand over to the stock operation unchanged, so any difference is repaired
exactly as before.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from fnmatch import fnmatch
from functools import lru_cache
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.util import get_file_sha1, get_template
from pyinfra.operations import files
from typing_extensions import override

from deepseek_infra.facts.host import remembered_fact

ENTRY, SHA = "entry", "sha"
REGULAR = "regular file"


class RemoteTree(FactBase[dict[str, Any]]):
    """Directory ``path`` and everything under it; ``{}`` when it is not a directory.

    .. code:: python

        {"/opt/x": {"type": "directory", "mode": 644, "user": "root", "group": "root"},
         "/opt/x/a.whl": {"type": "regular file", "mode": 644, "user": "root",
                          "group": "root", "sha1": "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"}}
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    @override
    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"[ -d {quoted} ] && [ ! -L {quoted} ] || exit 0; "
            f"find {quoted} -exec stat -c '{ENTRY} %F|%a|%U|%G|%n' {{}} + ; "
            f"find {quoted} -type f -exec sha1sum {{}} + | sed 's/^/{SHA} /'"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_remote_tree(output)


class RemoteFile(RemoteTree):
    """Regular file ``path`` (not a link): ``RemoteTree``'s fields for it; ``{}`` otherwise.

    .. code:: python

        {"type": "regular file", "mode": 644, "user": "root", "group": "root",
         "sha1": "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"}
    """

    @override
    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"[ -f {quoted} ] && [ ! -L {quoted} ] || exit 0; "
            f"stat -c '{ENTRY} %F|%a|%U|%G|%n' {quoted}; sha1sum {quoted} | sed 's/^/{SHA} /'"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        entries = list(super().process(output).values())
        return entries[0] if len(entries) == 1 else {}


def file_difference(sha1: str, remote: dict[str, Any], *, user: str | None = None, group: str | None = None,
                    mode: str | int | None = None) -> str | None:
    """What ``files.put`` would change on a file whose wanted content has ``sha1``; None when nothing.

    >>> have = {"type": "regular file", "mode": 644, "user": "root", "group": "root", "sha1": "aa"}
    >>> file_difference("aa", have, user="root", mode="0644") is None
    True
    >>> file_difference("aa", have, group="deepseek")
    'group root, wanted deepseek'
    """
    if remote.get("type") != REGULAR or "sha1" not in remote:
        return "missing"
    if remote["sha1"] != sha1:
        return "content differs"
    wanted_mode = _mode(mode)
    if wanted_mode is not None and remote["mode"] != wanted_mode:
        return f"mode {remote['mode']}, wanted {wanted_mode}"
    for field, wanted in (("user", user), ("group", group)):
        if wanted and remote[field] != wanted:
            return f"{field} {remote[field]}, wanted {wanted}"
    return None


def parse_remote_tree(lines: list[str]) -> dict[str, Any]:
    """Parse ``RemoteTree``'s output; lines it does not recognise are ignored.

    >>> tree = parse_remote_tree(["entry directory|755|root|root|/d", "entry regular file|644|root|root|/d/a b",
    ...                           "sha 0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33  /d/a b"])
    >>> tree["/d/a b"]["sha1"], tree["/d"]["mode"]
    ('0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33', 755)
    """
    tree: dict[str, Any] = {}
    for line in lines:
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == ENTRY:
            parts = rest.split("|", 4)
            if len(parts) == 5 and parts[1].isdigit():
                file_type, mode, user, group, path = parts
                file_type = REGULAR if file_type.startswith("regular") else file_type  # "regular empty file"
                tree.setdefault(path, {}).update(type=file_type, mode=int(mode), user=user, group=group)
        elif kind == SHA:
            digest, _, path = rest.partition("  ")
            if path:
                tree.setdefault(path, {})["sha1"] = digest
    return tree


@lru_cache(maxsize=4096)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha1()  # what files.put compares (Sha1File)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_files(src: str, exclude: tuple[str, ...] = (), exclude_dir: tuple[str, ...] = ()) -> dict[str, dict[str, Any]] | None:
    """Relative name -> ``{"sha1", "mode"}`` of the regular files directly in ``src``;
    None when ``src`` holds anything else (a subdirectory not excluded, a link): left to
    ``files.sync``."""
    result: dict[str, dict[str, Any]] = {}
    for entry in os.scandir(src):
        if exclude and any(fnmatch(entry.path, pattern) for pattern in exclude):
            continue  # files.sync matches ``exclude`` against the local path
        if entry.is_dir(follow_symlinks=False) and any(fnmatch(entry.name, pattern) for pattern in exclude_dir):
            continue  # and ``exclude_dir`` against the directory's path relative to ``src``
        if entry.is_symlink() or not entry.is_file():
            return None
        stat = entry.stat()
        result[entry.name] = {"sha1": _sha1(entry.path, stat.st_size, stat.st_mtime_ns),
                              "mode": int(oct(stat.st_mode)[-3:])}
    return result


def _mode(value: str | int | None) -> int | None:
    return None if value is None or value is False else int(str(value))


def sync_difference(
    local: dict[str, dict[str, Any]], remote: dict[str, Any], dest: str, *, user: str | None = None,
    group: str | None = None, mode: str | None = None, dir_mode: str | None = None, delete: bool = False,
    exclude: tuple[str, ...] = (),
) -> str | None:
    """The first thing ``files.sync`` would change, or None when it would change nothing.

    >>> local = {"a.whl": {"sha1": "aa", "mode": 644}}
    >>> remote = {"/w": {"type": "directory", "mode": 644, "user": "root", "group": "root"},
    ...           "/w/a.whl": {"type": "regular file", "mode": 644, "user": "root", "group": "root", "sha1": "aa"}}
    >>> sync_difference(local, remote, "/w", user="root", group="root", mode="0644") is None
    True
    >>> sync_difference({**local, "b.whl": {"sha1": "bb", "mode": 644}}, remote, "/w")
    '/w/b.whl: missing'
    """
    top = remote.get(dest)
    if not top or top.get("type") != "directory":
        return f"{dest}: not a directory"
    wanted_dir_mode = _mode(dir_mode or mode)
    if wanted_dir_mode is not None and top["mode"] != wanted_dir_mode:
        return f"{dest}: mode {top['mode']}, wanted {wanted_dir_mode}"
    for field, wanted in (("user", user), ("group", group)):
        if wanted is not None and top[field] != wanted:
            return f"{dest}: {field} {top[field]}, wanted {wanted}"
    for name, want in local.items():
        path = f"{dest.rstrip('/')}/{name}"
        difference = file_difference(want["sha1"], remote.get(path, {}), user=user, group=group,
                                     mode=mode if mode is not None else want["mode"])
        if difference:
            return f"{path}: {difference}"
    if delete:
        wanted_paths = {f"{dest.rstrip('/')}/{name}" for name in local}
        for path, have in remote.items():
            if path == dest or have.get("type") not in (REGULAR, "symbolic link"):
                continue
            if path not in wanted_paths and not any(fnmatch(path, pattern) for pattern in exclude):
                return f"{path}: not in the source"
    return None


@operation()
def directory_synced(
    src: str,
    dest: str,
    user: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    dir_mode: str | None = None,
    delete: bool = False,
    exclude: tuple[str, ...] = (),
    exclude_dir: tuple[str, ...] = (),
):
    """
    Make remote ``dest`` hold exactly the files of local directory ``src`` (``files.sync``).

    + src: local directory of regular files (a wheelhouse); anything else goes to ``files.sync`` as is
    + dest: remote directory
    + user: owner of the directory and files
    + group: group of the directory and files
    + mode: permissions of the files (and of the directory unless ``dir_mode``)
    + dir_mode: permissions of the directory
    + delete: remove remote files not in ``src`` (except those matching ``exclude``)
    + exclude: ``fnmatch`` patterns of files to leave out (and never delete)
    + exclude_dir: ``fnmatch`` patterns of subdirectories of ``src`` to leave out (``__pycache__``)

    One ``RemoteTree`` round trip decides; the tree is read before anything is yielded.

    **Example:**

    .. code:: python

        sync.directory_synced(src="wheels/", dest="/opt/deepseek/wheels", mode="0644", delete=True)
    """
    exclude, exclude_dir = tuple(exclude), tuple(exclude_dir)
    local = local_files(src, exclude, exclude_dir)
    if local is not None:
        difference = sync_difference(
            local, host.get_fact(RemoteTree, path=dest), dest, user=user, group=group, mode=mode,
            dir_mode=dir_mode, delete=delete, exclude=exclude,
        )
        if difference is None:
            host.noop(f"{dest} holds the {len(local)} file(s) of {Path(src).name or src}")
            return
    yield from files.sync._inner(
        src=src, dest=dest, user=user, group=group, mode=mode, dir_mode=dir_mode, delete=delete,
        exclude=list(exclude) or None, exclude_dir=list(exclude_dir) or None,
    )


def _absolute_or_io(src: Any) -> bool:
    return hasattr(src, "read") or (isinstance(src, str) and os.path.isabs(src) and os.path.isfile(src))


def _already_uploaded(content: Any, dest: str, user: str | None, group: str | None, mode: str | int | None) -> bool:
    """Does ``dest`` already hold ``content`` (a path or IO) as wanted? Notes the no-op if so."""
    remote = remembered_fact(host, RemoteFile, path=dest)
    if file_difference(get_file_sha1(content), remote, user=user, group=group, mode=mode) is not None:
        return False
    host.noop(f"file {dest} is already uploaded")
    return True


@operation()
def file_synced(
    src: str | Path | Any,
    dest: str,
    user: str | None = None,
    group: str | None = None,
    mode: str | int | None = None,
    **put_arguments: Any,
):
    """
    Upload ``src`` (a local path or a file-like object) to ``dest`` (``files.put``).

    + src: local file, or an IO object (``StringIO``/``BytesIO``)
    + dest: remote file (not a directory)
    + user: owner of the file
    + group: group of the file
    + mode: permissions of the file
    + put_arguments: any other ``files.put`` argument (``create_remote_dir``, ``force``...)

    One ``RemoteFile`` round trip decides (none when this run already read the file and
    nothing has run on the host since); anything to change goes to ``files.put``.

    **Example:**

    .. code:: python

        sync.file_synced(src=StringIO(text), dest="/etc/deepseek/engine.json", mode="0644")
    """
    src = str(src) if isinstance(src, Path) else src
    # The fast path covers what the roles pass; anything else (relative paths resolved
    # against the deploy directory, mode=True, force, times) is files.put's alone.
    if mode is not True and set(put_arguments) <= {"create_remote_dir"} and _absolute_or_io(src) \
            and _already_uploaded(src, dest, user, group, mode):
        return
    yield from files.put._inner(src=src, dest=dest, user=user, group=group, mode=mode, **put_arguments)


@operation()
def template_synced(
    src: str | Path | Any,
    dest: str,
    user: str | None = None,
    group: str | None = None,
    mode: str | int | None = None,
    create_remote_dir: bool = True,
    jinja_env_kwargs: dict[str, Any] | None = None,
    **data: Any,
):
    """
    Render the jinja2 template ``src`` with ``data`` and upload it to ``dest`` (``files.template``).

    + src: local template file, or an IO object
    + dest: remote file
    + user: owner of the file
    + group: group of the file
    + mode: permissions of the file
    + create_remote_dir: create the parent directory when missing
    + jinja_env_kwargs: keyword arguments of the jinja2 ``Environment``
    + data: the template's variables (``host``, ``state`` and ``inventory`` are added as
      ``files.template`` adds them)

    Rendered here once; one ``RemoteFile`` round trip decides, as for ``file_synced``.

    **Example:**

    .. code:: python

        sync.template_synced(src=template_path(__name__, "engine.service.j2"),
                             dest="/etc/systemd/system/deepseek-engine.service", mode="0644", settings=s)
    """
    src = str(src) if isinstance(src, Path) else src
    data.setdefault("host", host)
    data.setdefault("state", host.state)
    data.setdefault("inventory", host.state.inventory)
    rendered = None
    if mode is not True and _absolute_or_io(src):
        try:  # a copy: get_template pops the loader from the dict it is given
            rendered = get_template(src, dict(jinja_env_kwargs or {})).render(data)
        except Exception:  # noqa: BLE001  files.template reports template errors with their lines
            rendered = None
    if rendered is not None and _already_uploaded(StringIO(rendered), dest, user, group, mode):
        return
    yield from files.template._inner(src=src, dest=dest, user=user, group=group, mode=mode,
                                     create_remote_dir=create_remote_dir, jinja_env_kwargs=jinja_env_kwargs, **data)
