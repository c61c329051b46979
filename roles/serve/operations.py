"""Operations of the serve role: the engine's container image and start (its venv: deepseek_infra.operations.venv)."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files

from roles.serve.facts import DockerImageId


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


@operation()
def present_when_started(path: str, failure: str):
    """
    Ensure ``path`` exists when the operations after this one run; changes nothing.

    Present now: nothing to run. Absent now: an earlier role of the same run may still place
    it (the weights role publishes a release the engine is to load), so the check runs on the
    host, in order, and fails the host with ``failure`` when it is still missing.

    + path: the file that must exist
    + failure: what is wrong, naming host and field
    """
    if host.get_fact(File, path=path):
        host.noop(f"{path} is present")
        return
    yield StringCommand("test", "-e", QuoteString(path), "||", "{", "echo", QuoteString(failure), ">&2;", "exit", "1;", "}")


# A Python traceback's last line ("ValueError: ...", "torch.OutOfMemoryError: ...").
EXCEPTION_LINE = r"^([A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z0-9_]*(Error|Exception)(: |$)"
EXCEPTION_SCAN_LINES = 2000


def start_command(host_name: str, unit: str, action: str, journal_lines: int = 30,
                  with_units: tuple[str, ...] = ()) -> StringCommand:
    """``systemctl start|restart [WITH_UNITS...] UNIT`` (one transaction); when that fails:
    ``<host>: <unit> did not start`` and the unit's last journal lines on stderr, exit 1."""
    return StringCommand(
        "systemctl", action, *(QuoteString(other) for other in with_units), QuoteString(unit), "||", "{", "rc=$?;",
        "printf", QuoteString("%s (systemctl %s exited %s); its last %s journal lines:\\n"),
        QuoteString(f"{host_name}: {unit} did not start"), action, '"$rc"', str(journal_lines), ">&2;",
        "journalctl", "--no-pager", "-o", "cat", "-n", str(journal_lines), "-u", QuoteString(unit), ">&2;",
        # The root cause is often far above the tail (vLLM's engine core logs its traceback,
        # then the API server its own): the exception lines of the recent journal too.
        "printf", QuoteString("%s: exceptions in its recent journal:\\n"), QuoteString(host_name), ">&2;",
        "journalctl", "--no-pager", "-o", "cat", "-n", str(EXCEPTION_SCAN_LINES), "-u", QuoteString(unit),
        "|", "grep", "-E", QuoteString(EXCEPTION_LINE), "|", "uniq", "|", "tail", "-n", "5", ">&2;",
        "exit", "1;", "}",
    )


@operation()
def engine_running(unit: str, restarted: bool = False, journal_lines: int = 30, restart_with: tuple[str, ...] = ()):
    """
    Ensure the engine's unit is running: started when it is not, restarted when asked (its
    unit or software changed). A start that fails fails the host with the unit's last journal
    lines on stderr, naming the host (the unit's health wait stops as soon as the engine dies).

    + unit: the engine's systemd unit
    + restarted: restart it when it runs already
    + journal_lines: how many journal lines to report when it does not start
    + restart_with: units restarted in the same transaction when it is restarted (the decrypt
      unit of an encrypted release: a new release must be decrypted before the engine loads it)

    **Example:**

    .. code:: python

        engine_running(unit="deepseek-engine.service", restarted=unit_file.changed)
    """
    running = host.get_fact(SystemdStatus, services=unit).get(unit)
    if running and not restarted:
        host.noop(f"service {unit} is running")
        return
    yield start_command(host.name, unit, "restart" if running or restarted else "start", journal_lines,
                        with_units=restart_with if restarted else ())
