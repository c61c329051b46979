"""Lab integration of the gateway: a one-node fleet of its own, a fake engine behind it.

Deploys base + gateway, starts lab/fake_engine.py on the node (test only; the role knows
nothing of it), then from the controller sends a real request over TLS (certificate
checked against the one the node generated) with a key seeded from the lab's secret keys
file, checks the log line, drain, the verify suite, and that a second deploy changes
nothing. The fleet is DEEPSEEK_LAB_GATEWAY_FLEET (default "gw") so it never touches the
fleet of tests/lab/test_fleet.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import ssl
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import pytest

from lab import gateway_lab, tiny_model
from lab.testing import fleet_run
from roles.gateway.policy import derived_input_hash_key

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FLEET = os.environ.get("DEEPSEEK_LAB_GATEWAY_FLEET", "gw")
NODE = f"{FLEET}-node-1"
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # inventories/lab_settings.py
FAKE_LOGPROBS = (-0.1, -0.2, -0.3)  # lab/fake_engine.py


run = partial(fleet_run, FLEET, timeout=1800)


def on_node(command: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("docker", "exec", NODE, "bash", "-c", command, check=check)


def deploy(name: str) -> dict:
    result = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/lab.py", f"deploy/{name}.py")
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["results"]["totals"]["error"] == 0, json.dumps(report["results"], indent=1)[-4000:]
    return report


def changed(report: dict) -> list[str]:
    return [op["name"] for op in report["results"]["operations"] if op["success"]]


@pytest.fixture(scope="module")
def node():
    run(str(BIN / "python"), "-m", "lab", "up", "1", "--recreate")
    run("docker", "cp", str(gateway_lab.FAKE_ENGINE), f"{NODE}:/usr/local/lib/lab-fake-engine.py")
    on_node(f"systemd-run --unit=lab-fake-engine -p User=nobody python3 /usr/local/lib/lab-fake-engine.py --model {MODEL}")
    deploy("base")
    first = deploy("gateway")
    yield first
    run(str(BIN / "python"), "-m", "lab", "down")


@pytest.fixture(scope="module")
def gateway(node, tmp_path_factory):
    """An httpx client to the node's gateway that trusts exactly the node's certificate."""
    ca = tmp_path_factory.mktemp("gw") / "tls.crt"
    ca.write_text(on_node("cat /etc/deepseek/gateway/tls.crt").stdout)
    address = run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", NODE).stdout.strip()
    trust = ssl.create_default_context(cafile=str(ca))  # the node's certificate, and only it
    with httpx.Client(base_url=f"https://{address}:8443", verify=trust, timeout=30,
                      headers={"Host": NODE}) as client:
        for _ in range(50):
            try:
                client.get("/health", extensions={"sni_hostname": NODE})
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield client


def request(client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    return client.request(method, path, extensions={"sni_hostname": NODE}, **kwargs)


def test_first_deploy_installed_and_started_the_gateway(node):
    names = changed(node)
    assert any(name.startswith("gateway: install | Ensure /opt/deepseek/gateway/venv holds deepseek-node[gateway]")
               for name in names), names
    assert any("enabled and running" in name for name in names), names


def test_request_over_tls_with_a_seeded_key_is_logged(gateway):
    key = gateway_lab.lab_key("lab-reader")
    messages = [{"role": "user", "content": "hello from the lab"}]
    assert request(gateway, "GET", "/v1/models").status_code == 401
    listed = request(gateway, "GET", "/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
    # The lab grants its users the catalog model and the tiny checkpoint the lab engine serves.
    assert sorted(m["id"] for m in listed["data"]) == sorted([MODEL, tiny_model.REPO_ID])
    reply = request(gateway, "POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                    json={"model": MODEL, "messages": messages})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Hello!"
    assert reply.json()["choices"][0]["logprobs"] is None  # injected for the log, stripped again
    request_id = reply.headers["x-request-id"]

    lines = on_node("cat /var/log/deepseek/gateway/requests.jsonl").stdout.splitlines()
    (line,) = [json.loads(text) for text in lines if request_id in text]
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert (line["user"], line["model"], line["status"]) == ("lab-reader", MODEL, 200)
    # keyed by default: the site key derived from the keys file, so a log reader cannot hash guesses
    site_key = derived_input_hash_key(gateway_lab.keys_file()).encode()
    assert line["input_sha256"] is None
    assert line["input_hmac"] == hmac.new(site_key, canonical.encode(), hashlib.sha256).hexdigest()
    assert line["confidence"] == round(sum(math.exp(p) for p in FAKE_LOGPROBS) / 3, 6)
    assert (line["tokens_in"], line["tokens_out"]) == (5, 3)
    assert "hello from the lab" not in "\n".join(lines)
    journal = on_node(f"journalctl -u deepseek-gateway.service --no-pager -o cat | grep {request_id}", check=False)
    assert request_id in journal.stdout, "the log line is also in the service's journal"


def test_streaming_through_tls(gateway):
    key = gateway_lab.lab_key("lab-reader")
    with gateway.stream("POST", "/v1/chat/completions", extensions={"sni_hostname": NODE},
                        headers={"Authorization": f"Bearer {key}"},
                        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as reply:
        text = "".join(reply.iter_text())
    assert reply.status_code == 200 and text.rstrip().endswith("data: [DONE]")
    payloads = [json.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]
    assert "".join(p["choices"][0]["delta"]["content"] for p in payloads) == "Hello!"


def test_denials(gateway):
    reader, admin = gateway_lab.lab_key("lab-reader"), gateway_lab.lab_key("lab-admin")
    patch = request(gateway, "PATCH", f"/admin/models/{MODEL}", headers={"Authorization": f"Bearer {reader}"},
                    json={"max_tokens_limit": 64})
    assert patch.status_code == 403 and patch.json()["error"]["type"] == "permission_error"
    assert request(gateway, "GET", f"/admin/models/{MODEL}/access",
                   headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    assert request(gateway, "POST", "/reset_prefix_cache").status_code in (404, 405)


def test_drain_and_resume(gateway):
    on_node("deepseek-gateway drain --wait 30")
    assert request(gateway, "GET", "/health").status_code == 503
    on_node("deepseek-gateway drain --resume")
    assert request(gateway, "GET", "/health").status_code == 200


def test_verify_suite_passes(gateway):
    result = run(str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/verify/gateway", f"--hosts=docker://{NODE}",
                 check=False)
    assert result.returncode == 0, result.stdout[-6000:]


def test_second_deploy_changes_nothing(gateway):
    assert changed(deploy("base")) == []
    assert changed(deploy("gateway")) == []
