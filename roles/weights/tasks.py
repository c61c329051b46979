"""weights: model weights fetched, SHA-384 verified, (encrypted at rest,) switched atomically,
re-verified on a timer.

Installs the node tool (``deepseek-weights``: the deepseek-node wheel built from this
checkout, with its ``weights`` extra, in a venv of pinned ``cryptography``), the re-hash timer and the
decrypt-into-tmpfs unit, then places ``deepseek_model`` at ``weights_revision`` from the
configured source. Everything that can be wrong on the controller (manifest, its pinned
hash, model or revision mismatch, key source, wheelhouse) is refused while the run is
being prepared, before any host changes.

The decrypt tmpfs is mounted ``noswap`` where the running kernel has the option (Linux >= 6.4,
from the hardware fact's kernel release: deepseek_infra.host_memory.tmpfs_swap), so decrypted
weights never reach a swap device; on an older kernel it is mounted without it, and a host
with encryption on gets a warning naming it and its kernel (the serve role records the
decision in /etc/deepseek/engine.json).
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, systemd

from deepseek_infra import nodewheel
from deepseek_infra.facts.host import hardware
from deepseek_infra.host_memory import TmpfsSwap, tmpfs_swap
from deepseek_node import paths
from deepseek_node.weights.crypto import CryptoError, Key, load_key
from deepseek_node.weights.manifest import Manifest, ManifestError, build_manifest, load_manifest
from deepseek_infra.operations import sync, venv, weights
from deepseek_infra.operations.weights import ReleaseSpec
from deepseek_infra.runcache import cached, run_cache
from deepseek_node.weights.node import KEYS_DIR, RUN_MODELS_DIR
from deepseek_node.weights.plan import model_slug, url_prefix
from roles import template_path
from roles.deployment import DeploymentDefaults
from roles.weights.defaults import WeightsDefaults

TOOL_DIR = f"{paths.SOFTWARE_DIR}/weights"
VENV = f"{TOOL_DIR}/venv"  # deepseek-node[weights]
WHEELHOUSE = f"{TOOL_DIR}/wheelhouse"
TOOL = f"{TOOL_DIR}/bin/deepseek-weights"  # execs the venv's console script
EXTRA = "weights"  # of deepseek-node (node/pyproject.toml)
ENV_FILE = f"{paths.CONFIG_DIR}/weights.env"
UNITS = ("deepseek-weights-verify.service", "deepseek-weights-verify.timer", "deepseek-weights-decrypt@.service")
MIB = 1024 * 1024


@deploy("weights: install")
def install(config: WeightsDefaults, deployment: DeploymentDefaults) -> None:
    slug = model_slug(deployment.deepseek_model)
    spec, key = _prepare(config, deployment, slug)  # raises before any operation is added
    _tool(config)
    _units(config)
    files.directory(
        name=f"Ensure {config.weights_models_dir}/{slug} exists (root:{paths.SERVICE_USER} 0750)",
        path=f"{config.weights_models_dir}/{slug}", user="root", group=paths.SERVICE_USER, mode="0750",
    )
    if config.weights_action == "rollback":
        weights.rollback(name=f"Roll {slug} back to its previous release",
                         models_dir=config.weights_models_dir, slug=slug, keys_dir=KEYS_DIR)
        return
    if spec is None:
        return
    if key is not None:
        weights.key_file(name=f"Ensure {KEYS_DIR}/{slug}.key holds the weights key (0400 root)",
                         models_dir=config.weights_models_dir, slug=slug, keys_dir=KEYS_DIR, key=key)
    weights.release(name=f"Ensure {spec.model}@{spec.revision} is the verified current release", spec=spec)
    encrypted = config.weights_encrypt
    model_path = f"{RUN_MODELS_DIR}/{slug}" if encrypted else f"{config.weights_models_dir}/{slug}/current"
    weights.files_batch(
        name=f"Ensure {ENV_FILE} tells the engine where the weights are",
        directory=paths.CONFIG_DIR, mode="0640", group=paths.SERVICE_USER,
        files={Path(ENV_FILE).name: _render(ENV_FILE, model=deployment.deepseek_model, slug=slug, tool=TOOL,
                                            models_dir=config.weights_models_dir, encrypted=encrypted,
                                            model_path=model_path)},
    )


def _cached(kind: str, key: str, build):
    """One manifest build or key load per run, however many hosts share it (run cache
    ``weights.<kind>``: ``weights.key``, ``weights.manifest``, ``weights.built``)."""
    return cached(run_cache(host.state, f"weights.{kind}"), key, build)


def _prepare(config: WeightsDefaults, deployment: DeploymentDefaults, slug: str) -> tuple[ReleaseSpec | None, Key | None]:
    def refuse(field: str, message: str) -> DeployError:
        return DeployError(f"{host.name}: {field}: {message}; no host was changed")

    if config.weights_wheelhouse and not Path(config.weights_wheelhouse).is_dir():
        raise refuse("weights_wheelhouse", f"expected a directory of wheels on the controller, found none at "
                                           f"{config.weights_wheelhouse}")
    key = None
    if config.weights_encrypt and config.weights_action == "place":
        try:
            key = _cached("key", config.weights_key or "", lambda: load_key(config.weights_key or ""))
        except CryptoError as exc:
            raise refuse("weights_key", str(exc)) from None
    if config.weights_source == "none" or config.weights_action != "place":
        return None, key
    revision = config.weights_revision or ""
    model = deployment.deepseek_model
    if config.weights_source == "directory" and not Path(config.weights_source_dir or "").is_dir():
        raise refuse("weights_source_dir", f"expected a checkpoint directory, found none at {config.weights_source_dir}")
    try:
        if config.weights_manifest:
            manifest: Manifest = _cached("manifest", config.weights_manifest,
                                         lambda: load_manifest(config.weights_manifest or ""))
        else:  # directory source without a manifest: hash it here (once per run)
            manifest = _cached("built", f"{config.weights_source_dir}@{model}@{revision}",
                               lambda: build_manifest(config.weights_source_dir or "", model, revision))
    except ManifestError as exc:
        raise refuse("weights_manifest", str(exc)) from None
    if manifest.model != model:
        raise refuse("weights_manifest", f"expected model {model!r} (deepseek_model), found {manifest.model!r}")
    if manifest.revision != revision:
        raise refuse("weights_manifest", f"expected revision {revision!r} (weights_revision), found {manifest.revision!r}")
    pin = config.weights_manifest_sha384
    if pin and manifest.manifest_sha384 != pin:
        raise refuse("weights_manifest_sha384", f"expected {pin}, found {manifest.manifest_sha384}")
    base = config.weights_mirror_url if config.weights_source == "http" else config.weights_hf_endpoint
    spec = ReleaseSpec(
        model=model, slug=slug, revision=revision, manifest=manifest, manifest_json=manifest.to_json(),
        source=config.weights_source, models_dir=config.weights_models_dir, keys_dir=KEYS_DIR,
        source_dir=config.weights_source_dir,
        url_prefix=url_prefix(config.weights_source, base or "", model, revision) if base else None,
        keep=config.weights_keep_releases, encrypt=config.weights_encrypt, group=paths.SERVICE_USER,
        fetch_parallel=config.weights_fetch_parallel, fetch_retries=config.weights_fetch_retries,
        fetch_timeout_s=config.weights_fetch_timeout_s, batch_bytes=config.weights_push_batch_mib * MIB,
        chunk_bytes=config.weights_push_chunk_mib * MIB, min_free_bytes=int(config.weights_min_free_gib * 1024**3),
    )
    return spec, key


def _render(destination: str, **values: object) -> bytes:
    """A role template rendered on the controller (the batched file operation uploads bytes)."""
    source = Path(template_path(__package__, destination)).read_text()
    environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(source).render(**values).encode()


def _tool(config: WeightsDefaults) -> None:
    apt.packages(name="Ensure python3-venv is installed (the weights tool's venv)", packages=["python3-venv"],
                 update=True, cache_time=3600)
    weights.files_batch(name=f"Ensure {TOOL} runs the weights tool of {VENV}", directory=f"{TOOL_DIR}/bin",
                        exclusive=True, mode="0755", files={"deepseek-weights": _render(TOOL, venv=VENV)})
    wheel = nodewheel.wheel_for_run(host.state)
    requirement = nodewheel.load_project().requirement(EXTRA)
    requirements = (requirement, *config.weights_pip_requirements)
    wheelhouse = None
    if config.weights_wheelhouse and not config.weights_pip_index_url:
        wheelhouse = WHEELHOUSE
        # Pushed only when the venv is to be (re)installed: a current venv costs its marker read.
        if not venv.venv_current(VENV, requirements, [wheel]):
            sync.directory_synced(
                name=f"Ensure {WHEELHOUSE} holds the controller's wheelhouse (venv to install)",
                src=config.weights_wheelhouse, dest=WHEELHOUSE, user="root", group="root", mode="0644",
                dir_mode="0755", delete=True, exclude=("*/.complete",),  # the lab's controller-side marker
            )
    venv.pinned_venv(name=f"Ensure {VENV} holds {requirement} and its pinned runtime", path=VENV,
                     requirements=requirements, wheelhouse=wheelhouse, index_url=config.weights_pip_index_url,
                     wheels=[wheel])


def decrypt_swap(config: WeightsDefaults, kernel_release: str | None) -> TmpfsSwap:
    """noswap or not for this host's decrypt tmpfs; a mount without it, with encryption on, is a
    warning naming the host and its kernel."""
    swap = tmpfs_swap(kernel_release)
    if config.weights_encrypt and not swap.noswap:
        logger.warning(f"{host.name}: weights_encrypt: decrypt tmpfs: {swap.reason}")
    return swap


def unit_values(config: WeightsDefaults, swap: TmpfsSwap) -> dict[str, object]:
    """Template variables of the weights units (the decrypt unit's swap decision included)."""
    return dict(tool=TOOL, models_dir=config.weights_models_dir, rate_limit=config.weights_verify_rate_limit,
                on_calendar=config.weights_verify_on_calendar, keys_dir=KEYS_DIR, run_dir=RUN_MODELS_DIR,
                service_group=paths.SERVICE_USER, tmpfs_noswap=swap.noswap, tmpfs_swap_reason=swap.reason)


def _units(config: WeightsDefaults) -> None:
    values = unit_values(config, decrypt_swap(config, hardware(host).kernel_release))
    units = weights.files_batch(
        name="Ensure the weights re-hash and decrypt units are current", directory="/etc/systemd/system",
        files={unit: _render(f"/etc/systemd/system/{unit}", **values) for unit in UNITS},
    )
    systemd.service(name="Ensure the weights re-hash timer is enabled and running",
                    service="deepseek-weights-verify.timer", enabled=True, running=True,
                    daemon_reload=units.will_change)