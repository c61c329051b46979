"""gateway: the access-controlled OpenAI-compatible front of the node's engine.

Installs ``deepseek-node[gateway]`` (the deepseek-node wheel built on the controller, whose
``deepseek-gateway`` console script runs ``node/deepseek_node/gateway``) and its lock
(node/locks/gateway.txt) into a venv under /opt/deepseek/gateway from a wheelhouse or an
internal index, writes /etc/deepseek/gateway.yaml, a TLS certificate (provided, or self-signed on
the node), the inventory's users/grants/key hashes (seed file, applied with
``deepseek-gateway seed``), logrotate for the request log, and a hardened systemd unit.
The service restarts only when its software, configuration, certificate or unit changed.

Gateways run on replica heads only (deepseek_infra/replicas.py): the head's engine has
the API, a worker of a multi-node replica has none, so a worker gets no gateway (one
installed earlier is stopped and disabled), never one that answers 502. Clients reach the
replicas through the site's front load balancer (HAProxy, F5, a cloud LB: any that health
checks ``https://<head>:8443/health``, which turns 503 while the gateway drains), which
spreads them over the heads; deploy/upgrade.py's ``--lb-drain``/``--lb-admit`` hooks take
a replica out of it during its upgrade. Why not a gateway that forwards to other nodes'
replicas: each gateway's health then says exactly whether its replica serves, and a request
crosses no second proxy hop.

Draining for rolling upgrades (the fleet-operations side): ``deepseek-gateway drain
--wait 120`` on the node (health turns 503, in-flight requests finish), then upgrade and
restart; or just ``systemctl restart deepseek-gateway``, whose SIGTERM drains for up to
``gateway_drain_timeout_s`` before the new process starts.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import OperationError, deploy
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, python, server, systemd

from deepseek_infra import nodewheel, remote
from deepseek_node.acceptance import RECORD_PATH as ACCEPTANCE_RECORD
from deepseek_infra.facts.host import hardware_part
from deepseek_infra.hardware import Hostname
from deepseek_infra.operations import sync, venv
from deepseek_node import paths
from deepseek_node.gateway.config import GatewayConfig
from roles import template_path
from roles.deployment import DeploymentDefaults
from roles.gateway.defaults import GatewayDefaults
from roles.gateway.policy import derived_input_hash_key, read_keys_file, seed_document, seed_warnings
from roles.settings import refuse, replica_for, served_grant_problems

SOFTWARE_DIR = f"{paths.SOFTWARE_DIR}/gateway"
VENV = f"{SOFTWARE_DIR}/venv"  # deepseek-node[gateway]
WHEELHOUSE_DIR = f"{SOFTWARE_DIR}/wheelhouse"
CLI = f"{VENV}/bin/deepseek-gateway"  # the wheel's console script
CLI_LINK = "/usr/local/bin/deepseek-gateway"
CONFIG_FILE = f"{paths.CONFIG_DIR}/gateway.yaml"
ETC_DIR = f"{paths.CONFIG_DIR}/gateway"
TLS_CERT = f"{ETC_DIR}/tls.crt"
TLS_KEY = f"{ETC_DIR}/tls.key"
SEED_FILE = f"{ETC_DIR}/seed.json"
DB_DIR = f"{paths.DATA_DIR}/gateway"
DB_FILE = f"{DB_DIR}/gateway.db"
LOG_DIR = f"{paths.LOG_DIR}/gateway"
REQUEST_LOG = f"{LOG_DIR}/requests.jsonl"
UNIT = "deepseek-gateway.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
LOGROTATE_FILE = "/etc/logrotate.d/deepseek-gateway"
PACKAGES = ("python3", "python3-venv", "logrotate")
EXTRA, POSTGRESQL_EXTRA = "gateway", "gateway-postgresql"  # of deepseek-node; locks in node/locks/

# (path, owner, group, mode): the service reads its config and key, owns its db and logs.
DIRECTORIES = (
    (SOFTWARE_DIR, "root", "root", "0755"),
    (ETC_DIR, "root", paths.SERVICE_USER, "0750"),
    (DB_DIR, paths.SERVICE_USER, paths.SERVICE_USER, "0750"),
    (LOG_DIR, paths.SERVICE_USER, paths.SERVICE_USER, "0750"),
)
# (path, owner, group, mode) of the files holding secrets or policy.
INPUT_HASH_KEY = f"{ETC_DIR}/input-hash.key"  # HMAC key of the logged input hash
ADMIN_TOKEN = f"{DB_DIR}/admin.token"  # written by the gateway at each start; drain sends it
SECRET_FILES = (
    (CONFIG_FILE, "root", paths.SERVICE_USER, "0640"),
    (TLS_KEY, "root", paths.SERVICE_USER, "0640"),
    (SEED_FILE, "root", paths.SERVICE_USER, "0640"),
)


def node_config(config: GatewayDefaults, deployment: DeploymentDefaults) -> GatewayConfig:
    """What /etc/deepseek/gateway.yaml says for these settings (checked by the app's own parser)."""
    return GatewayConfig.from_mapping({
        "host": config.gateway_listen_address, "port": config.gateway_port,
        "tls_cert": TLS_CERT, "tls_key": TLS_KEY, "database_path": DB_FILE, "database_dsn": config.gateway_db_dsn,
        "request_log": REQUEST_LOG, "log_to_stdout": True, "log_input_text": config.gateway_log_input_text,
        "confidence": config.gateway_confidence, "max_request_bytes": config.gateway_max_request_bytes,
        "upstream_timeout_s": config.gateway_upstream_timeout_s, "connect_timeout_s": config.gateway_connect_timeout_s,
        "drain_timeout_s": config.gateway_drain_timeout_s, "service_user": paths.SERVICE_USER,
        "upstreams": {deployment.deepseek_model: config.gateway_engine_url, **config.gateway_upstreams},
        "input_hash_key_file": INPUT_HASH_KEY if config.gateway_input_hash == "hmac" else None,
        "admin_token_file": ADMIN_TOKEN, "metrics_clients": list(config.gateway_metrics_clients),
        "metrics_user_ids": config.gateway_metrics_user_ids,
        "acceptance_record": ACCEPTANCE_RECORD, "acceptance_required": config.gateway_acceptance_required,
    })


@deploy("gateway: install")
def install(config: GatewayDefaults, deployment: DeploymentDefaults) -> None:
    refuse(host, served_grant_problems(deployment, config))  # grants for models this gateway does not route
    replica = replica_for(host)
    if replica is not None and not replica.is_head(host.name):
        _none_on_worker(replica.describe())
        return
    settings = node_config(config, deployment)
    apt.packages(name="Ensure the gateway's system packages are installed", packages=list(PACKAGES))
    for path, owner, group, mode in DIRECTORIES:
        files.directory(name=f"Ensure {path} exists ({owner}:{group} {mode})", path=path,
                        user=owner, group=group, mode=mode)
    software = _software(config)
    conf = sync.template_synced(
        name=f"Ensure {CONFIG_FILE} is current", src=template_path(__package__, CONFIG_FILE), dest=CONFIG_FILE,
        settings=settings, user="root", group=paths.SERVICE_USER, mode="0640",
    )
    tls = _certificate(config)
    hash_key = _input_hash_key(config)
    _seed(config, deployment, settings, software)
    sync.template_synced(
        name=f"Ensure {REQUEST_LOG} is rotated", src=template_path(__package__, LOGROTATE_FILE), dest=LOGROTATE_FILE,
        log_file=REQUEST_LOG, rotate=config.gateway_log_rotate_days, max_size=config.gateway_log_max_size,
        service_user=paths.SERVICE_USER, user="root", group="root", mode="0644",
    )
    unit = sync.template_synced(
        name=f"Ensure the {UNIT} unit is current", src=template_path(__package__, UNIT_FILE), dest=UNIT_FILE,
        service_user=paths.SERVICE_USER, venv=VENV, config_file=CONFIG_FILE,
        drain_timeout_s=config.gateway_drain_timeout_s, writable=(DB_DIR, LOG_DIR), user="root", group="root", mode="0644",
    )
    systemd.service(
        name=f"Ensure {UNIT} is enabled and running", service=UNIT, enabled=True, running=True,
        daemon_reload=unit.changed, restarted=software or conf.changed or tls or hash_key or unit.changed,
    )


def _input_hash_key(config: GatewayDefaults) -> bool:
    """Place the site's input-hash key; True when it changes (the gateway reads it at start)."""
    if config.gateway_input_hash != "hmac":
        return False
    if config.gateway_input_hash_key_file or config.gateway_keys_file:
        secret = (Path(config.gateway_input_hash_key_file).read_text().strip() if config.gateway_input_hash_key_file
                  else derived_input_hash_key(config.gateway_keys_file))
        return sync.file_synced(name=f"Ensure {INPUT_HASH_KEY} holds the site's input-hash key",
                                src=StringIO(secret + "\n"), dest=INPUT_HASH_KEY, user="root",
                                group=paths.SERVICE_USER, mode="0640").changed
    if host.get_fact(File, path=INPUT_HASH_KEY):
        return False
    # no site secret given: one per node, made once (hashes then correlate within a node only)
    server.shell(
        name=f"Ensure {INPUT_HASH_KEY} holds a per-node input-hash key",
        commands=[f"umask 027 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > {INPUT_HASH_KEY}.tmp && "
                  f"chgrp {paths.SERVICE_USER} {INPUT_HASH_KEY}.tmp && mv {INPUT_HASH_KEY}.tmp {INPUT_HASH_KEY}"],
    )
    return True


def _none_on_worker(replica: str) -> None:
    """A worker has no engine API to front: no gateway there, and one left from before is stopped."""
    if host.get_fact(File, path=UNIT_FILE):
        systemd.service(name=f"Ensure {UNIT} is stopped and disabled on {host.name}, a worker of {replica}",
                        service=UNIT, enabled=False, running=False)
    else:
        host.noop(f"{host.name} is a worker of {replica}: no gateway (the head's serves the replica)")


def software_requirements(config: GatewayDefaults) -> tuple[str, ...]:
    """The venv's pins: deepseek-node with the gateway's extras, then their locks."""
    extras = (EXTRA, POSTGRESQL_EXTRA) if config.gateway_db_dsn else (EXTRA,)
    return (nodewheel.load_project().requirement(*extras), *(line for extra in extras for line in nodewheel.lock(extra)))


def _software(config: GatewayDefaults) -> bool:
    """The venv holding the gateway (its marker: one round trip when current); True when it changed."""
    wheel = nodewheel.wheel_for_run(host.state)
    requirements = software_requirements(config)
    # The wheelhouse is pushed only when the venv is to be (re)installed.
    if config.gateway_wheelhouse and not venv.venv_current(VENV, requirements, [wheel]):
        sync.directory_synced(
            name=f"Ensure {WHEELHOUSE_DIR} holds the gateway's wheelhouse (venv to install)", src=config.gateway_wheelhouse,
            dest=WHEELHOUSE_DIR, user="root", group="root", mode="0644", dir_mode="0755", delete=True,
            exclude=("*/.complete",),  # the lab's controller-side marker
        )
    files.link(name=f"Ensure {CLI_LINK} points to the gateway CLI", path=CLI_LINK, target=CLI)
    return venv.pinned_venv(
        name=f"Ensure {VENV} holds {requirements[0]} and its pinned runtime", path=VENV, requirements=requirements,
        wheelhouse=WHEELHOUSE_DIR if config.gateway_wheelhouse else None,
        index_url=None if config.gateway_wheelhouse else config.gateway_index_url, wheels=[wheel],
    ).changed


def _certificate(config: GatewayDefaults) -> bool:
    """The provided certificate, else a self-signed one made on the node once; True if changed."""
    if config.gateway_tls_cert_file:
        cert = sync.file_synced(name=f"Ensure {TLS_CERT} is the provided certificate", src=config.gateway_tls_cert_file,
                                dest=TLS_CERT, user="root", group=paths.SERVICE_USER, mode="0644")
        key = sync.file_synced(name=f"Ensure {TLS_KEY} is the provided key", src=config.gateway_tls_key_file,
                               dest=TLS_KEY, user="root", group=paths.SERVICE_USER, mode="0640")
        return cert.changed or key.changed
    if host.get_fact(File, path=TLS_CERT) and host.get_fact(File, path=TLS_KEY):
        host.noop(f"{TLS_CERT} exists (self-signed or provided earlier)")
        return False
    names = dict.fromkeys([hardware_part(host, Hostname), "localhost", "127.0.0.1", *config.gateway_tls_hostnames])
    server.shell(
        name=f"Generate a self-signed certificate {TLS_CERT}",
        commands=[f"rm -f {TLS_CERT} {TLS_KEY}",
                  f"{CLI} --config {CONFIG_FILE} tls generate " + " ".join(f"--hostname {n}" for n in names if n)],
    )
    return True


def _seed(config: GatewayDefaults, deployment: DeploymentDefaults, settings: GatewayConfig, software: bool) -> None:
    keys = read_keys_file(config.gateway_keys_file) if config.gateway_keys_file else {}
    content = seed_document(config.gateway_users, keys, settings.upstreams)
    seed = sync.file_synced(name=f"Ensure {SEED_FILE} holds the inventory's users, grants and key hashes",
                            src=StringIO(content), dest=SEED_FILE, user="root", group=paths.SERVICE_USER, mode="0640")
    if seed.changed or software:
        python.call(name="Apply the inventory's users, grants and keys to the gateway's policy", function=_apply_seed)


def _apply_seed() -> None:
    # A failed seed removes the file, so the next run applies it again.
    ok, output = remote.run(  # with the host's sudo settings: a python.call gets none of its own
        host, f"{CLI} --config {CONFIG_FILE} seed {SEED_FILE} || {{ rm -f {SEED_FILE}; exit 1; }}")
    if not ok:
        raise OperationError(f"{host.name}: gateway seed failed: {output.stderr or output.stdout}")
    for warning in seed_warnings(host.name, output.stdout):
        logger.warning(warning)