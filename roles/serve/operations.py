"""Operations of the serve role: the engine's Python environment, container image and start."""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation
from pyinfra.facts.files import FileContents
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files

from roles.serve.facts import DockerImageId

REQUIREMENTS_MARKER = "deepseek-requirements.txt"  # inside the venv: what was installed there last


@operation()
def python_environment(path: str, requirements: list[str], find_links: str | None = None,
                       index_url: str | None = None, python: str = "/usr/bin/python3"):
    """
    Ensure a virtual environment holds exactly these pinned requirements, installed offline.

    + path: the environment's directory
    + requirements: ``name==version`` pins
    + find_links: directory of wheels on the host (``--no-index --find-links``)
    + index_url: internal package index (``--index-url``), when no wheelhouse is given
    + python: interpreter the environment is created from

    The requirements installed last are recorded in ``<path>/deepseek-requirements.txt``
    after pip succeeds, so a failed install is retried by the next run and an unchanged
    list is a no-op (pip is not even started).

    **Example:**

    .. code:: python

        python_environment(path="/opt/deepseek/engine/venv", requirements=["vllm==0.33.0"],
                           find_links="/opt/deepseek/engine/wheelhouse")
    """
    wanted = "".join(f"{line}\n" for line in requirements)
    marker = f"{path}/{REQUIREMENTS_MARKER}"
    installed = host.get_fact(FileContents, path=marker)
    if installed is not None and "".join(f"{line}\n" for line in installed) == wanted:
        host.noop(f"{path} holds {len(requirements)} pinned requirement(s)")
        return
    if not find_links and not index_url:
        raise OperationValueError(f"{host.name}: serve_wheelhouse: {path} needs a wheelhouse or an index, found neither")
    yield StringCommand("test", "-x", QuoteString(f"{path}/bin/python"), "||",
                        QuoteString(python), "-m", "venv", QuoteString(path))
    source = ["--no-index", "--find-links", QuoteString(find_links)] if find_links else ["--index-url", QuoteString(index_url)]
    yield StringCommand(
        "PIP_CONFIG_FILE=/dev/null", QuoteString(f"{path}/bin/pip"), "install", "--quiet", "--no-input",
        "--disable-pip-version-check", "--no-cache-dir", *source, *(QuoteString(r) for r in requirements),
    )
    yield from files.put._inner(src=StringIO(wanted), dest=marker, mode="0644")


@operation()
def container_image(image: str, tarball: str | None = None, remote_dir: str = "/var/tmp"):
    """
    Ensure the engine image is present in the local Docker: loaded from a tarball or pulled
    from the site's registry.

    + image: image reference, as ``docker run`` will name it
    + tarball: controller path of a ``docker save`` archive of ``image`` (pushed, loaded, removed)
    + remote_dir: where the archive is staged on the host
    """
    if host.get_fact(DockerImageId, image=image):
        host.noop(f"image {image} is present")
        return
    if tarball:
        digest = hashlib.sha256(tarball.encode()).hexdigest()[:12]
        staged = f"{remote_dir}/deepseek-engine-image-{digest}.tar"
        yield from files.put._inner(src=tarball, dest=staged, mode="0600")
        yield StringCommand("docker", "load", "--input", QuoteString(staged))
        yield StringCommand("rm", "-f", QuoteString(staged))
        yield StringCommand("docker", "image", "inspect", QuoteString(image), ">/dev/null")
    else:
        yield StringCommand("docker", "pull", "--quiet", QuoteString(image))


@operation(is_idempotent=False)
def gate(failure: str = "", passed: str = "ok"):
    """
    Fail this host (and only it) with ``failure``; changes nothing either way.

    + failure: what is wrong, naming host and field; empty means pass (no command)
    + passed: what the noop says when it passes
    """
    if failure:
        yield StringCommand("echo", QuoteString(failure), ">&2", "&&", "exit", "1")
    else:
        host.noop(passed)



def start_command(host_name: str, unit: str, action: str, journal_lines: int = 30) -> StringCommand:
    """``systemctl start|restart UNIT``; when that fails: ``<host>: <unit> did not start`` and
    the unit's last journal lines on stderr, exit 1."""
    return StringCommand(
        "systemctl", action, QuoteString(unit), "||", "{", "rc=$?;",
        "printf", QuoteString("%s (systemctl %s exited %s); its last %s journal lines:\\n"),
        QuoteString(f"{host_name}: {unit} did not start"), action, '"$rc"', str(journal_lines), ">&2;",
        "journalctl", "--no-pager", "-o", "cat", "-n", str(journal_lines), "-u", QuoteString(unit), ">&2;",
        "exit", "1;", "}",
    )


@operation()
def engine_running(unit: str, restarted: bool = False, journal_lines: int = 30):
    """
    Ensure the engine's unit is running: started when it is not, restarted when asked (its
    unit or software changed). A start that fails fails the host with the unit's last journal
    lines on stderr, naming the host (the unit's health wait stops as soon as the engine dies).

    + unit: the engine's systemd unit
    + restarted: restart it when it runs already
    + journal_lines: how many journal lines to report when it does not start

    **Example:**

    .. code:: python

        engine_running(unit="deepseek-engine.service", restarted=unit_file.changed)
    """
    running = host.get_fact(SystemdStatus, services=unit).get(unit)
    if running and not restarted:
        host.noop(f"service {unit} is running")
        return
    yield start_command(host.name, unit, "restart" if running else "start", journal_lines)
