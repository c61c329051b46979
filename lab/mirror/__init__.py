"""LAB SIMULATION: the fleet's NVIDIA package mirror.

A signed apt repository of stand-in packages named and versioned as in NVIDIA's CUDA
repository for Debian 12 (``catalog.py``), served over HTTP by a container on the fleet's
network, so roles use the same "internal mirror URL + key" path as an air-gapped site::

    python -m lab mirror build    # build the repository (only when its inputs changed)
    python -m lab mirror up       # build if needed, run <fleet>-mirror
    python -m lab mirror down     # remove the mirror container

Layout under ``.lab/mirror/`` (shared by every fleet; the key is generated once)::

    gnupg/        the throwaway signing key
    keys/         deepseek-lab-mirror.gpg / .asc: what nodes are given
    www/compute/cuda/repos/debian12/x86_64/   the repository (Packages, InRelease, *.deb)
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from lab.constants import FLEET, LABEL_NODE, NETWORK, STATE_DIR
from lab.docker import LabError, docker, ensure_daemon, run
from lab.image import ensure_image
from lab.mirror import catalog

MIRROR_DIR = STATE_DIR / "mirror"
GNUPG_DIR = MIRROR_DIR / "gnupg"
KEYS_DIR = MIRROR_DIR / "keys"
WWW_DIR = MIRROR_DIR / "www"
BUILD_DIR = MIRROR_DIR / "build"
STAMP = MIRROR_DIR / "built.sha256"
KEY_FILE = KEYS_DIR / "deepseek-lab-mirror.asc"
# Same path as NVIDIA's repository, so the URL differs from production only in the host;
# one repository per distribution (catalog.SUITES), {distro} filled in per node.
REPO_PATH_TEMPLATE = "compute/cuda/repos/{distro}/x86_64"
REPO_PATH = REPO_PATH_TEMPLATE.format(distro="debian12")
PORT = 8080
CONTAINER = f"{FLEET}-mirror"
LABEL = "deepseek-lab.mirror"  # value: the fleet's name
BUILD_SCRIPT = Path(__file__).resolve().parent / "build.sh"


def repo_url(distro: str | None = "debian12") -> str:
    """The mirror's repository URL as nodes of this fleet reach it; ``distro=None`` keeps the
    ``{distro}`` placeholder the nvidia_repo role fills in per node (a mixed Debian 12/13 fleet)."""
    path = REPO_PATH_TEMPLATE if distro is None else REPO_PATH_TEMPLATE.format(distro=distro)
    return f"http://{CONTAINER}:{PORT}/{path}/"


def inputs_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([*catalog.SIM_DIR.iterdir(), *Path(catalog.__file__).parent.glob("*.py"), BUILD_SCRIPT]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _stage(pkgs_dir: Path, suite: str) -> None:
    for package in catalog.packages(suite):
        root = pkgs_dir / f"{package.name}_{package.version.replace(':', '%')}"
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(package.control())
        for script, text in package.scripts.items():
            path = root / "DEBIAN" / script
            path.write_text(text)
            path.chmod(0o755)
        for rel, (content, mode) in package.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if content.startswith("->"):
                path.symlink_to(content[2:])
            else:
                path.write_text(content)
                path.chmod(mode)
        for path in [root, *root.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)


def build(force: bool = False, log=print) -> Path:
    """Build (or reuse) the signed repository; return its directory."""
    repo = WWW_DIR / REPO_PATH
    digest = inputs_digest()
    repos = [WWW_DIR / REPO_PATH_TEMPLATE.format(distro=suite) for suite in catalog.SUITES]
    if (not force and STAMP.is_file() and STAMP.read_text().strip() == digest
            and all((path / "InRelease").is_file() for path in repos)):
        log(f"mirror: repositories up to date ({', '.join(catalog.SUITES)})")
        return repo
    ensure_daemon(STATE_DIR)
    image = ensure_image(log=log, os_name="debian12")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    for suite in catalog.SUITES:
        _stage(BUILD_DIR / suite, suite)
    shutil.copyfile(BUILD_SCRIPT, BUILD_DIR / "build.sh")
    for path in (GNUPG_DIR, KEYS_DIR, WWW_DIR):
        path.mkdir(parents=True, exist_ok=True)
    for suite in catalog.SUITES:
        output = docker(
            "run", "--rm", "-v", f"{BUILD_DIR}:/build:ro", "-v", f"{GNUPG_DIR}:/gnupg",
            "-v", f"{KEYS_DIR}:/keys", "-v", f"{WWW_DIR}:/www", image, "sh", "/build/build.sh",
            REPO_PATH_TEMPLATE.format(distro=suite), f"/build/{suite}",
        )
        log(f"mirror: {output.strip()}")
    STAMP.write_text(digest + "\n")
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    return repo


def running() -> bool:
    result = run(["docker", "inspect", "--format", "{{.State.Running}}", CONTAINER], check=False)
    return result.returncode == 0 and result.stdout.decode().strip() == "true"


def up(log=print) -> str:
    """Build if needed and run the mirror container on the fleet's network; return its URL."""
    build(log=log)
    if run(["docker", "network", "inspect", NETWORK], check=False).returncode != 0:
        docker("network", "create", "--label", f"{LABEL_NODE}={FLEET}", NETWORK)
    if running():
        log(f"{CONTAINER}: running, kept ({repo_url()})")
        return repo_url()
    docker("rm", "-f", CONTAINER, check=False)
    image = ensure_image(log=log, os_name="debian12")
    docker(
        "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER, "--network", NETWORK,
        "--label", f"{LABEL}={FLEET}", "-v", f"{WWW_DIR}:/srv/mirror:ro", image,
        "python3", "-m", "http.server", str(PORT), "--directory", "/srv/mirror",
    )
    log(f"{CONTAINER}: serving {repo_url()}")
    return repo_url()


def down(log=print) -> None:
    """Remove this fleet's mirror container (the built repository and key stay)."""
    if run(["docker", "inspect", CONTAINER], check=False).returncode == 0:
        log(f"{CONTAINER}: removing")
        docker("rm", "-f", CONTAINER)


def status() -> str:
    if not (WWW_DIR / REPO_PATH / "InRelease").is_file():
        return "mirror: not built (python -m lab mirror build)"
    return f"{CONTAINER}\t{'running' if running() else 'stopped'}\t{repo_url()}"


__all__ = ["KEY_FILE", "LabError", "build", "down", "repo_url", "status", "up"]
