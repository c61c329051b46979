"""The node's health gates: GPU visibility and driver, completions through engine and gateway."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from deepseek_node import engine_health
from deepseek_node.engine_health import completion_gate, count_pci_gpus, gpu_gate

LSPCI = """\
17:00.0 0302: 10de:2330 (rev a1)
3d:00.0 0302: 10de:2330 (rev a1)
05:00.0 0680: 10de:22a3 (rev a1)
"""


def test_pci_gpus_counts_display_controllers_only():
    assert count_pci_gpus(LSPCI) == 2  # the 0680 NVSwitch bridge is not a GPU
    assert count_pci_gpus("") == 0


@pytest.mark.parametrize(("pci", "rc", "smi", "expected", "status", "detail"), [
    (0, 127, "", "550.90.12", "skip", "no NVIDIA GPU"),
    (2, 0, "550.90.12\n550.90.12\n", "550.90.12", "pass", "2 GPU(s), driver 550.90.12"),
    (2, 0, "550.90.12\n", "550.90.12", "fail", "expected 2 GPU(s) visible to the driver, found 1"),
    (2, 0, "550.54.15\n550.54.15\n", "550.90.12", "fail", "expected driver 550.90.12, found 550.54.15"),
    (2, 9, "", None, "fail", "nvidia-smi failed (rc 9)"),
])
def test_gpu_gate(pci, rc, smi, expected, status, detail):
    result = gpu_gate(pci, rc, smi, expected)
    assert (result.gate, result.status) == ("gpus", status)
    assert detail in result.detail


def answer(model="m", text=" Paris", tokens=1) -> str:
    return json.dumps({"model": model, "choices": [{"text": text}], "usage": {"completion_tokens": tokens}})


@pytest.mark.parametrize(("status", "body", "verdict", "detail"), [
    (200, answer(), "pass", "1 token(s)"),
    (200, answer(model="other"), "fail", "expected model 'm', found 'other'"),
    (200, answer(tokens=0), "fail", "expected generated tokens"),
    (200, "<html>", "fail", "not an OpenAI completion"),
    (502, "bad gateway", "fail", "HTTP 502"),
])
def test_completion_gate(status, body, verdict, detail):
    result = completion_gate("engine-completion", status, body, "m")
    assert result.status == verdict and detail in result.detail


class _Engine(BaseHTTPRequestHandler):
    """A stand-in engine: /health and a completion endpoint that records the bearer token."""

    tokens: list[str | None] = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    loaded = None  # the --model path the engine was started with (/v1/models root)

    def do_GET(self):
        if self.path == "/v1/models" and _Engine.loaded:
            # vLLM's shape: one card per served name, root the path it loaded.
            self._send(200, json.dumps({"object": "list", "data": [{
                "id": "m", "object": "model", "created": 1, "owned_by": "vllm", "root": _Engine.loaded,
                "parent": None, "max_model_len": 4096}]}))
            return
        self._send(200 if self.path == "/health" else 404, "{}")

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Engine.tokens.append(self.headers.get("Authorization"))
        self._send(200, answer(model=request["model"], tokens=request["max_tokens"]))


@pytest.fixture()
def fake_engine():
    server = HTTPServer(("127.0.0.1", 0), _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_check_runs_every_gate_and_uses_the_gateway_key(fake_engine, tmp_path, capsys):
    key = tmp_path / "key"
    key.write_text("sk-lab\n")
    rc = engine_health.main(["check", "--url", fake_engine, "--model", "m", "--skip-gpus", "CPU engine",
                             "--gateway-url", fake_engine, "--gateway-token-file", str(key), "--timeout", "5"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0, out
    assert [line.split()[2] for line in out] == ["gate=gpus", "gate=engine-health", "gate=engine-completion",
                                                 "gate=gateway-completion"]
    assert out[0].startswith("SKIP") and all(line.startswith("PASS") for line in out[1:])
    assert _Engine.tokens[-1] == "Bearer sk-lab"


def test_engine_weights_gate_asks_the_engine_which_release_it_loaded(fake_engine, tmp_path, capsys):
    models = tmp_path / "org--m"
    for revision in ("r1", "r2"):
        (models / revision).mkdir(parents=True)
    (models / "current").symlink_to("r2")
    check = ["check", "--url", fake_engine, "--model", "m", "--skip-gpus", "CPU engine", "--timeout", "5",
             "--expect-model-path", str(models / "r2")]
    _Engine.loaded = str(models / "r2")
    try:
        assert engine_health.main(check) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[2] for line in lines][:3] == ["gate=gpus", "gate=engine-health", "gate=engine-weights"]
        assert "serves release 'r2' (current)" in lines[2]
        # The weights switched to r2 but the engine still serves what it loaded before.
        _Engine.loaded = str(models / "r1")
        assert engine_health.main(check) == 1
        captured = capsys.readouterr()
        assert f"gate engine-weights failed: the engine serves {models / 'r1'}, deployed is {models / 'r2'}" in captured.err
        assert "engine-completion" not in captured.out  # stops at the first failure
        # The engine serves the deployed r2, but current was rolled back to r1 under it.
        _Engine.loaded = str(models / "r2")
        (models / "current").unlink()
        (models / "current").symlink_to("r1")
        assert engine_health.main(check) == 1
        assert "the engine serves release 'r2', the published current is 'r1'" in capsys.readouterr().err
    finally:
        _Engine.loaded = None


def test_served_root_reads_the_card_of_the_served_model():
    from deepseek_node.engine_health import served_root

    body = json.dumps({"data": [{"id": "other", "root": "/x"}, {"id": "m", "root": "/m/r1"}]})
    assert served_root(200, body, "m") == "/m/r1"
    assert served_root(200, body, "absent") is None
    assert served_root(500, body, "m") is None and served_root(200, "not json", "m") is None


def test_unreachable_engine_fails_naming_host_and_gate(capsys):
    rc = engine_health.main(["check", "--url", "http://127.0.0.1:9", "--model", "m", "--skip-gpus", "test",
                             "--timeout", "0"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "gate engine-health failed: unreachable" in captured.err
    assert captured.err.startswith(engine_health.socket.gethostname() + ": ")


def test_worker_runs_only_the_gpu_gate(capsys):
    rc = engine_health.main(["check", "--url", "http://127.0.0.1:9", "--model", "m", "--skip-gpus", "t", "--worker"])
    assert rc == 0 and "gate=engine-health" in capsys.readouterr().out


def _checkpoint(tmp_path):
    from deepseek_node.weights.manifest import MANIFEST_FILENAME, build_manifest, save_manifest

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"w" * 1000)
    save_manifest(build_manifest(tmp_path, "org/m", "r1"), tmp_path / MANIFEST_FILENAME)
    return tmp_path


def test_weights_check_passes_an_intact_checkpoint(tmp_path):
    status, message = engine_health.check_weights(str(_checkpoint(tmp_path)), require=True)
    assert status == 0, message


def test_weights_check_names_a_truncated_file(tmp_path):
    root = _checkpoint(tmp_path)
    (root / "model.safetensors").write_bytes(b"w" * 10)
    status, message = engine_health.check_weights(str(root), require=False)
    assert status == 1 and "size of model.safetensors: expected 1000, found 10" in message


def test_weights_check_names_a_missing_file(tmp_path):
    root = _checkpoint(tmp_path)
    (root / "config.json").unlink()
    status, message = engine_health.check_weights(str(root), require=False)
    assert status == 1 and "missing config.json" in message


def test_weights_check_refuses_an_edited_manifest(tmp_path):
    root = _checkpoint(tmp_path)
    path = root / engine_health.MANIFEST_FILENAME
    path.write_text(path.read_text().replace('"size": 1000', '"size": 10'))
    (root / "model.safetensors").write_bytes(b"w" * 10)
    status, message = engine_health.check_weights(str(root), require=False)
    assert status == 1 and "hash mismatch" in message


def test_weights_check_without_manifest_passes_unless_required(tmp_path):
    assert engine_health.check_weights(str(tmp_path), require=False)[0] == 0
    status, message = engine_health.check_weights(str(tmp_path), require=True)
    assert status == 1 and "no MANIFEST.dsw.json" in message


def test_weights_check_refuses_what_the_weights_tool_refuses(tmp_path):
    """One parser: a manifest whose own hash is right but that the weights tool would not
    accept (another format version) does not pass the engine's check either."""
    import hashlib
    import json

    root = _checkpoint(tmp_path)
    path = root / engine_health.MANIFEST_FILENAME
    document = json.loads(path.read_text())
    document.pop("manifest_sha384")
    document["format"] = 2
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    document["manifest_sha384"] = hashlib.sha384(canonical.encode("ascii")).hexdigest()
    path.write_text(json.dumps(document))
    status, message = engine_health.check_weights(str(root), require=False)
    assert status == 1 and "manifest format: expected 1, found 2" in message


# --- the start's health wait gives up once the engine's process has ended --------------------
UNIT = "deepseek-engine.service"
STARTING = {"ActiveState": "activating", "SubState": "start-post", "Result": "success", "MainPID": "4242",
            "ExecMainCode": "0", "ExecMainStatus": "0"}


def test_unit_properties_are_parsed_in_any_order():
    output = "MainPID=0\nResult=success\nExecMainCode=1\nExecMainStatus=1\nActiveState=activating\nSubState=start-post\n"
    assert engine_health.parse_unit_properties(output) == {
        "MainPID": "0", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "1",
        "ActiveState": "activating", "SubState": "start-post"}


@pytest.mark.parametrize(("props", "verdict"), [
    (STARTING, None),  # loading the model: keep waiting
    ({}, None),  # systemctl could not answer: keep polling /health as before
    ({**STARTING, "ActiveState": "active", "SubState": "running"}, None),
    ({**STARTING, "MainPID": "0", "ExecMainCode": "1", "ExecMainStatus": "1"},
     f"{UNIT}: the engine process exited with status 1 while starting"),
    ({**STARTING, "MainPID": "0", "ExecMainCode": "2", "ExecMainStatus": "9"},
     f"{UNIT}: the engine process was killed by signal 9 while starting"),
    ({**STARTING, "MainPID": "0", "ExecMainCode": "3", "ExecMainStatus": "11"},
     f"{UNIT}: the engine process dumped core (signal 11) while starting"),
    ({**STARTING, "ActiveState": "failed", "SubState": "failed", "Result": "exit-code", "MainPID": "0"},
     f"{UNIT} is failed (result exit-code)"),
    ({**STARTING, "ActiveState": "inactive", "SubState": "dead", "MainPID": "0"}, f"{UNIT} is inactive (result success)"),
    ({**STARTING, "ActiveState": "deactivating", "SubState": "stop-sigterm"}, f"{UNIT} is stopping (stop-sigterm)"),
    ({**STARTING, "SubState": "auto-restart", "MainPID": "0"},
     f"{UNIT}: the engine process ended; systemd waits to restart it"),
])
def test_unit_verdict(props, verdict):
    assert engine_health.unit_verdict(UNIT, props) == verdict


def test_wait_stops_at_the_first_poll_after_the_engine_died():
    states = iter([STARTING, STARTING, {**STARTING, "MainPID": "0", "ExecMainCode": "1", "ExecMainStatus": "1"}])
    polls = []

    def health(url):
        polls.append(url)
        raise ConnectionRefusedError(111, "Connection refused")

    result = engine_health.wait_for_health("http://e", timeout=3600, unit=UNIT, interval=0, health=health,
                                           properties=lambda unit: next(states))
    assert (result.gate, result.status) == ("engine-health", "fail")
    assert result.detail.startswith(f"{UNIT}: the engine process exited with status 1 while starting, after ")
    assert result.detail.endswith("not waiting for /health") and len(polls) == 3


def test_wait_passes_when_health_answers_and_times_out_without_a_unit():
    answers = iter(["fail", "fail", "pass"])
    result = engine_health.wait_for_health(
        "http://e", timeout=60, unit=UNIT, interval=0, properties=lambda unit: STARTING,
        health=lambda url: engine_health.GateResult("engine-health", next(answers), "/health HTTP 503"))
    assert result.status == "pass"
    asked = []
    result = engine_health.wait_for_health(
        "http://e", timeout=0, unit=None, interval=0, properties=lambda unit: asked.append(unit) or {},
        health=lambda url: engine_health.GateResult("engine-health", "fail", "/health HTTP 503"))
    assert result.status == "fail" and result.detail == "/health HTTP 503; gave up after 0s" and asked == []
