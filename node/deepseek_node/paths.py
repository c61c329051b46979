"""Where the collection puts things on a node (the contract users and the verify suite read)."""

from typing import Final

CONFIG_DIR: Final = "/etc/deepseek"  # configuration: node facts, engine and gateway settings
SOFTWARE_DIR: Final = "/opt/deepseek"  # software: virtual environments, helper scripts
DATA_DIR: Final = "/var/lib/deepseek"  # data: model releases, gateway database, state
LOG_DIR: Final = "/var/log/deepseek"  # structured request logs read by Filebeat
MODELS_DIR: Final = f"{DATA_DIR}/models"  # one directory per model, one per revision below it
STATE_DIR: Final = f"{DATA_DIR}/state"  # per-host state other runs read (reboot-required, ...)
RUN_MODELS_DIR: Final = "/run/deepseek/models"  # tmpfs mounts of decrypted (encrypted-at-rest) releases
NODE_FACTS_FILE: Final = f"{CONFIG_DIR}/node.json"  # discovered hardware, written by the base role
SERVICE_USER: Final = "deepseek"  # unprivileged account the engine and gateway run as
