"""Variables of the network check (deploy/netcheck.py and its timer). Host-data keys.

The pass/fail threshold is the alert's: monitoring_network_min_bytes_per_s.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from deepseek_infra.config import RoleDefaults


class NetcheckDefaults(RoleDefaults):
    prefix: ClassVar[str] = "netcheck_"

    netcheck_mode: Literal["ring", "all"] = Field(
        default="ring", description="Pairs measured: each node to the next (ring) or to every other node (all).",
    )
    netcheck_port: int = Field(default=5201, ge=1, le=65535, description="TCP port of the iperf3 server (persistent with netcheck_timer, temporary for the run without).")
    netcheck_duration_s: int = Field(default=10, ge=1, le=300, description="Seconds each iperf3 measurement runs.")
    netcheck_streams: int = Field(default=4, ge=1, le=128, description="Parallel TCP streams per iperf3 measurement.")
    netcheck_ib: bool = Field(default=True, description="Also run ib_write_bw over InfiniBand where the node has an IB device.")
    netcheck_ib_device: str | None = Field(default=None, description="RDMA device for ib_write_bw; None: the first in /sys/class/infiniband.")
    netcheck_report: str | None = Field(default=None, description="Controller path of a JSON report of every pair (`--data netcheck_report=net.json`).")
    netcheck_timer: str | None = Field(
        default="hourly", description="systemd OnCalendar= of the node-side check (each node measures its peers, exports the figure); None: only deploy/netcheck.py measures.",
    )
    netcheck_timer_spread_s: int = Field(
        default=600, ge=0, le=86400, description="RandomizedDelaySec= of the timer: nodes measure at different moments.",
    )
    netcheck_busy_retries: int = Field(
        default=6, ge=0, le=100, description="Tries again while the peer's iperf3 server is busy with another client.",
    )

    @field_validator("netcheck_timer")
    @classmethod
    def _calendar(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "\n;'\"")):
            raise ValueError(f"{value!r} is not a systemd calendar expression such as hourly or *-*-* 02:00")
        return value
