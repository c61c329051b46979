"""Render a saved capacity and cost report again, with other prices; reads no host.

    python -m roles.report report/report.json
    python -m roles.report report/report.json --set report_cloud_price_per_million_tokens=2.5 \\
        --set report_throughput_tokens_per_s=1800 --output-dir report-what-if

The input is a report.json written by deploy/report.py, or a hand-written file of the same
``inputs`` shape (one entry per replica: name, model, engine, the GPUs of each host:
``{"host", "count", "name", "memory_mib", "power_limits_w"}``, and ``costs``). Each
``--set report_<name>=<value>`` (a JSON value: 2.5, null, "EUR") replaces that setting for
every replica and is validated like host data: a negative price is refused, naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepseek_infra.config import HostDataError, validate_host_data
from deepseek_infra.cost_report import COST_FIELDS, Costs, render_table, report_from_json, write_report
from roles.report.defaults import ReportDefaults


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare word: a string ("EUR")


def _settings(source: str, data: dict[str, Any]) -> ReportDefaults:
    parsed, problems = validate_host_data(source, data, [ReportDefaults])
    if problems:
        raise HostDataError(problems)
    return parsed[ReportDefaults]


def what_if(saved: dict[str, Any], overrides: dict[str, Any], source: str = "report"):
    """The saved report rebuilt with ``overrides`` (``report_*`` settings) on every replica's prices."""
    prefix = ReportDefaults.prefix
    report_wide = _settings(f"{source} --set", {f"{prefix}currency": saved.get("currency", "USD"),
                                                 f"{prefix}months": saved.get("months", 36), **overrides})
    costs: dict[str, Costs] = {}
    for item in saved.get("inputs") or ():
        stored = {f"{prefix}{key}": value for key, value in (item.get("costs") or {}).items() if key in COST_FIELDS}
        costs[str(item.get("name"))] = _settings(f"{source}: replica {item.get('name')}", {**stored, **overrides}).costs()
    return report_from_json(saved, costs, currency=report_wide.report_currency, months=report_wide.report_months)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roles.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("saved", type=Path, help="report.json of deploy/report.py, or inputs of that shape")
    parser.add_argument("--set", action="append", default=[], metavar="report_KEY=VALUE",
                        help="replace a report_* setting for every replica (JSON value)")
    parser.add_argument("--output-dir", type=Path, help="write report.txt, report.json, report.html here")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected report_KEY=VALUE")
        overrides[key] = _value(value)
    try:
        saved = json.loads(args.saved.read_text())
        report = what_if(saved, overrides, str(args.saved))
    except HostDataError as error:  # one line per refused setting: "<file> --set: <key>: <why>"
        print("\n".join(f"{where}: {key}: {message}" for where, key, message in error.problems), file=sys.stderr)
        return 2
    except (OSError, json.JSONDecodeError, ValueError) as error:
        print(f"{args.saved}: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(render_table(report))
    if args.output_dir:
        for path in write_report(report, args.output_dir).values():
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
