"""``Preconditions``: what later roles assume of a node, asked in one command for preflight.

* the checkpoint directory an explicit ``serve_model_path`` names (the engine loads it as is;
  no role places it): does ``<path>/config.json`` exist?
* the weights source host:port (``weights_mirror_url`` / ``weights_hf_endpoint``): does a TCP
  connect from the node succeed? Bash's ``/dev/tcp`` under coreutils' ``timeout``, because
  preflight runs before the base role installs curl.

Only what is asked is probed; ``process()`` is pure, so each outcome is unit-tested from its
output lines.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand
from typing_extensions import override

CONNECT_TIMEOUT_S = 5
MISSING_TOOL_RC = 127  # the shell's "command not found"
TIMEOUT_RC = 124  # coreutils timeout(1): the command ran out of time

ModelPathState = Literal["checkpoint", "no-config", "not-a-directory", "missing"]
_STATES: frozenset[str] = frozenset({"checkpoint", "no-config", "not-a-directory", "missing"})


class ReachInfo(TypedDict):
    reachable: bool | None  # None: not tried (no bash or timeout on the node)
    error: str | None  # why not, in the node's words ("Connection refused")


class PreconditionsInfo(TypedDict, total=False):
    model_path: ModelPathState
    endpoint: ReachInfo
    release_present: bool  # the release directory the weights source would fill exists already


def _model_path_script(path: str) -> StringCommand:
    return StringCommand(
        "p=", QuoteString(path), "; ",
        'if [ -f "$p/config.json" ]; then s=checkpoint; elif [ -d "$p" ]; then s=no-config; '
        'elif [ -e "$p" ]; then s=not-a-directory; else s=missing; fi; '
        "printf 'model_path\\t%s\\n' \"$s\"",
        _separator="",
    )


def _release_script(path: str) -> StringCommand:
    return StringCommand("if [ -d ", QuoteString(path), " ]; then r=present; else r=absent; fi; ",
                         "printf 'release\\t%s\\n' \"$r\"", _separator="")


def _connect_script(host: str, port: int) -> StringCommand:
    # Host and port reach bash as arguments, never as code; stderr is kept for the reason.
    return StringCommand(
        "if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then ",
        f"err=$(timeout {CONNECT_TIMEOUT_S} bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' _ ",
        QuoteString(host), " ", QuoteString(str(port)), " 2>&1); rc=$?; ",
        f"else err=''; rc={MISSING_TOOL_RC}; fi; ",
        "printf 'endpoint\\t%s\\t%s\\n' \"$rc\" \"$(printf '%s' \"$err\" | head -n 1)\"",
        _separator="",
    )


def _reach(rc_text: str, message: str) -> ReachInfo:
    try:
        rc = int(rc_text)
    except ValueError:
        return {"reachable": None, "error": f"unreadable exit status {rc_text!r}"}
    if rc == 0:
        return {"reachable": True, "error": None}
    if rc == MISSING_TOOL_RC:
        return {"reachable": None, "error": "bash or timeout not found on the node"}
    if rc == TIMEOUT_RC:
        return {"reachable": False, "error": f"no answer within {CONNECT_TIMEOUT_S} s"}
    # bash prints "_: connect: Connection refused" or "_: line 1: mirror: Name or service not known"
    reason = message.rsplit(": ", 1)[-1].strip()
    return {"reachable": False, "error": reason or f"connect exited with {rc}"}


def parse_preconditions(lines: list[str]) -> PreconditionsInfo:
    """The ``Preconditions`` output: one tab-separated line per probe asked.

    >>> parse_preconditions(["model_path\\tcheckpoint", "endpoint\\t1\\t_: connect: Connection refused"])
    {'model_path': 'checkpoint', 'endpoint': {'reachable': False, 'error': 'Connection refused'}}
    """
    info: PreconditionsInfo = {}
    for line in lines:
        kind, _, rest = line.rstrip("\r\n").partition("\t")
        if kind == "model_path" and rest in _STATES:
            info["model_path"] = rest  # type: ignore[typeddict-item]  # checked against _STATES
        elif kind == "release" and rest in ("present", "absent"):
            info["release_present"] = rest == "present"
        elif kind == "endpoint":
            rc_text, _, message = rest.partition("\t")
            info["endpoint"] = _reach(rc_text, message)
    return info


class Preconditions(FactBase[PreconditionsInfo]):
    """The checkpoint at ``model_path`` and a TCP connect to ``connect_host:connect_port``,
    each only when given; keys absent from the result were not asked.

    .. code:: python

        {"model_path": "missing",
         "endpoint": {"reachable": False, "error": "no answer within 5 s"}}
    """

    default = dict

    @override
    def command(self, model_path: str | None = None, connect_host: str | None = None,
                connect_port: int | None = None, release_path: str | None = None) -> StringCommand:
        parts: list[StringCommand] = []
        if model_path:
            parts.append(_model_path_script(model_path))
        if release_path:
            parts.append(_release_script(release_path))
        if connect_host and connect_port:
            parts.append(_connect_script(connect_host, connect_port))
        return StringCommand(*parts, "true", _separator="; ") if parts else StringCommand("true")

    @override
    def process(self, output: list[str]) -> PreconditionsInfo:
        return parse_preconditions(output)
