"""Variables of the reboot deploy (deploy/reboot.py): how many hosts go down at once."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from deepseek_infra.config import RoleDefaults


class RebootDefaults(RoleDefaults):
    prefix: ClassVar[str] = "reboot_"

    reboot_batch_size: int = Field(
        default=1, ge=1, description="Hosts rebooted at once; the next batch starts when every host of this one is back.",
    )
    reboot_delay_s: int = Field(
        default=30, ge=1, description="Seconds after `reboot` before the first reconnection attempt.",
    )
    reboot_timeout_s: int = Field(
        default=1200, ge=60, description="Seconds a host may take to come back (multi-TB RAM servers POST slowly) before it is failed.",
    )
