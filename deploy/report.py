"""Capacity and cost report of the fleet: `pyinfra inventories/prod.py deploy/report.py`.

Reads every serving host's GPUs (the hardware fact the preflight uses), plans each replica
as the serve role does and prices it with the report_* variables; prints one table per
model and, with an output directory, writes report.txt, report.json and report.html (the
chart of cost over time, local against cloud). Changes no host; runs unchanged with --dry.

    pyinfra inventories/lab.py deploy/report.py --data report_output_dir=./report
    pyinfra inventories/prod.py deploy/report.py --data report_throughput_tokens_per_s=2000 \\
        --data report_cloud_price_per_million_tokens=3 --data report_output_dir=./report
"""

from pyinfra import host

from roles.report import tasks as report
from roles.settings import settings_for

settings_for(host)  # validates the whole inventory before any fact is read
report.report_once(host)
