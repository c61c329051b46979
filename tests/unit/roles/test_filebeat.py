"""The filebeat role: filebeat.yml ships the gateway's request log, and the ELK side
(Elasticsearch template, Logstash pipeline) knows every field of that log line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import yaml

from deepseek_node.gateway.requestlog import FIELDS
from roles import template_path
from roles.filebeat import tasks as filebeat
from roles.filebeat.defaults import FilebeatDefaults

FILES = Path(__file__).resolve().parents[3] / "roles" / "filebeat" / "files"


def _render(role_module, destination: str, **context) -> str:
    return jinja2.Template(Path(template_path(role_module, destination)).read_text()).render(**context)


def test_filebeat_yml_ships_the_request_log_to_every_logstash_host():
    config = FilebeatDefaults(filebeat_logstash_hosts=("ls-1.example.internal:5044", "[fd00::9]:5044"),
                              filebeat_logstash_ssl_ca="/etc/ssl/certs/site-ca.pem")
    document = yaml.safe_load(_render(filebeat.__package__, filebeat.CONFIG, **filebeat.render_context(config)))
    (request_input,) = document["filebeat.inputs"]
    assert request_input["type"] == "filestream" and request_input["paths"] == ["/var/log/deepseek/gateway/requests.jsonl"]
    assert request_input["parsers"] == [{"ndjson": {"target": "deepseek", "add_error_key": True}}]
    output = document["output.logstash"]
    assert output["hosts"] == ["ls-1.example.internal:5044", "[fd00::9]:5044"] and output["loadbalance"] is True
    assert output["ssl.certificate_authorities"] == ["/etc/ssl/certs/site-ca.pem"]
    plain = yaml.safe_load(_render(filebeat.__package__, filebeat.CONFIG, **filebeat.render_context(
        FilebeatDefaults(filebeat_logstash_hosts=("ls:5044",)))))
    assert "ssl.enabled" not in plain["output.logstash"] and plain["output.logstash"]["loadbalance"] is False


def test_elk_configuration_covers_every_field_of_the_gateway_log_line():
    """Every field the gateway logs has an Elasticsearch type; numbers are converted by Logstash."""
    files = FILES
    template = json.loads((files / "elasticsearch" / "deepseek-requests-template.json").read_text())
    mapped = template["template"]["mappings"]["properties"]["deepseek"]["properties"]
    assert set(mapped) == set(FIELDS), f"mapped {sorted(mapped)}, logged {sorted(FIELDS)}"
    pipeline = (files / "logstash" / "deepseek-requests.conf").read_text()
    converted = dict(re.findall(r'"\[deepseek\]\[(\w+)\]" => "(\w+)"', pipeline))
    numeric = {name for name, spec in mapped.items() if spec["type"] in ("short", "integer", "float")}
    assert set(converted) == numeric, f"Logstash converts {sorted(converted)}, numeric fields {sorted(numeric)}"
