"""Variables of the report role: the prices and throughput of the capacity and cost report.

All prices are the user's own. The defaults of the hardware price and the operations cost
are the design brief's documented example: its section 9 cost table (deployment-guide
section 9, 成本效益分析, local deployment of a 7B model: $120,000 of hardware, $8,000 of
operations per month; deepseek_infra/cost_report.py ``BRIEF_SECTION_9`` holds the whole
table). What the brief does not give (power price, throughput, cloud price) defaults to
unset, and the report says so instead of counting zero. Prices are per node: a replica of
N nodes costs N times them; set them in each hardware group's data when nodes differ.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from deepseek_infra.config import RoleDefaults
from deepseek_infra.cost_report import BRIEF_SECTION_9, COST_FIELDS, Costs

_LOCAL = BRIEF_SECTION_9["local"]


class ReportDefaults(RoleDefaults):
    prefix: ClassVar[str] = "report_"

    # Where the report goes.
    report_output_dir: str | None = Field(default=None, min_length=1, description="Controller directory to write report.txt, report.json and report.html to; None: print the table only.")
    report_currency: str = Field(default="USD", pattern=r"^\S{1,8}$", description="Currency of every price (a label; nothing is converted).")
    report_months: int = Field(default=36, ge=1, le=240, description="Horizon of the chart of cumulative cost, months.")

    # Prices (per node), default: the brief's section 9 local deployment.
    report_hardware_price: float | None = Field(default=float(_LOCAL["hardware"]), ge=0, allow_inf_nan=False, description="Purchase price of one node (brief section 9 example: 120000); None: not priced, no break-even.")
    report_operations_cost_per_month: float = Field(default=float(_LOCAL["operations_per_month"]), ge=0, allow_inf_nan=False, description="Operations cost of one node per month: staff, space, support (brief section 9 example: 8000).")
    report_amortization_months: int = Field(default=36, ge=1, le=240, description="Months the hardware price is spread over in the cost per million tokens.")
    report_power_price_per_kwh: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="Electricity price per kWh; None: energy not priced (the report says so).")
    report_pue: float = Field(default=1.0, ge=1, le=3, allow_inf_nan=False, description="Power usage effectiveness of the site (facility / IT power); 1.0 counts the servers only.")
    report_node_base_power_w: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="Power of one node outside its GPUs (CPUs, fans, NICs), W; added to the GPUs' power limits.")

    # Throughput and the cloud price it is compared with (per replica: its head host's values).
    report_throughput_tokens_per_s: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="Tokens per second one replica serves, measured or entered; None: the row says 'not measured'.")
    report_busy_fraction: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False, description="Share of the month a replica serves at that throughput.")
    report_cloud_price_per_million_tokens: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="Cloud price per million tokens to compare with; None: no break-even (ROI months).")

    @field_validator("report_months", "report_hardware_price", "report_operations_cost_per_month",
                     "report_amortization_months", "report_power_price_per_kwh", "report_pue",
                     "report_node_base_power_w", "report_throughput_tokens_per_s", "report_busy_fraction",
                     "report_cloud_price_per_million_tokens", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # pydantic would read True as 1
            raise ValueError(f"expected a number, found the boolean {value!r}")
        return value

    def costs(self) -> Costs:
        """The prices as the pure report reads them (the same names without ``report_``)."""
        return Costs(**{name: getattr(self, self.prefix + name) for name in COST_FIELDS})
