"""Health gates of a serving node: the deepseek-node wheel's ``deepseek-engine-health``, installed
by the serve role in its own venv (/opt/deepseek/engine/tools).

    deepseek-engine-health wait --url http://127.0.0.1:8000 --timeout 1800 [--unit deepseek-engine.service]
    deepseek-engine-health check --url http://127.0.0.1:8000 --model NAME
        [--expect-driver 550.90.12 | --skip-gpus REASON] [--gateway-url URL --gateway-token-file F]
        [--expect-model-path /var/lib/deepseek/models/<slug>/<revision>]
    deepseek-engine-health weights --path /var/lib/deepseek/models/<slug>/current [--require]

``wait`` polls ``/health`` until it answers 200 (the unit's ExecStartPost: the start job
ends when the engine can serve). With ``--unit`` it also asks systemd, every poll, whether
the engine is still starting: once the engine's process has died (a checkpoint it cannot
load, a crash) or the unit failed or is stopping, it gives up at once, naming the host, the
unit and how the process ended, instead of waiting out TimeoutStartSec. ``check`` runs the gates in order and stops at the first
failure: ``gpus`` (every NVIDIA GPU on the PCI bus is visible to the driver, at the
expected driver version), ``engine-health`` (/health answers), ``engine-weights`` (with
``--expect-model-path``: the checkpoint the engine itself reports in ``/v1/models`` (its
``root``, the path it loaded) is the deployed release, and that release is the published
``current``; an engine still serving what it loaded before a weights switch fails here),
``engine-completion`` (a real greedy completion of the served model), ``gateway-completion`` (the same through the
gateway, when given). One line per gate on stdout; a failure also goes to stderr as
``<host>: gate <name> failed: <why>`` and the exit status is 1.

``weights`` is the unit's ExecStartPre for a checkpoint placed outside the weights role
(``serve_model_path``): when ``MANIFEST.dsw.json`` (deepseek_node.weights.manifest, whose parser
it uses) lies next to the weights, it checks the manifest's own hash and that every listed
file is present at its listed size, and exits 1 naming each bad file (in the journal) so the engine does not
start on a truncated checkpoint. No manifest: unchecked (exit 0), unless ``--require``.

Standard library only (deepseek-node without extras): its venv is apart from the engine's,
so it also judges a broken engine install. The pure parts are unit-tested.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from deepseek_node.weights.manifest import MANIFEST_FILENAME, Manifest, ManifestError

PROMPT = "The capital of France is"


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str
    status: str  # "pass", "fail", "skip"
    detail: str

    def line(self, hostname: str) -> str:
        return f"{self.status.upper()} host={hostname} gate={self.gate} {self.detail}"


def count_pci_gpus(lspci_n: str) -> int:
    """NVIDIA display controllers (class 03xx) in ``lspci -n -d 10de:`` output."""
    count = 0
    for line in lspci_n.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1].rstrip(":").startswith("03"):
            count += 1
    return count


def gpu_gate(pci_gpus: int, smi_rc: int, smi_output: str, expected_driver: str | None) -> GateResult:
    """Judge ``nvidia-smi --query-gpu=driver_version --format=csv,noheader`` against the bus."""
    if pci_gpus == 0:
        return GateResult("gpus", "skip", "no NVIDIA GPU on the PCI bus")
    if smi_rc != 0:
        return GateResult("gpus", "fail", f"{pci_gpus} GPU(s) on the PCI bus but nvidia-smi failed (rc {smi_rc})")
    versions = [line.strip() for line in smi_output.splitlines() if line.strip()]
    if len(versions) != pci_gpus:
        return GateResult("gpus", "fail", f"expected {pci_gpus} GPU(s) visible to the driver, found {len(versions)}")
    found = sorted(set(versions))
    if expected_driver and found != [expected_driver]:
        return GateResult("gpus", "fail", f"expected driver {expected_driver}, found {', '.join(found)}")
    return GateResult("gpus", "pass", f"{len(versions)} GPU(s), driver {', '.join(found)}")


def completion_gate(gate: str, status: int, body: str, model: str) -> GateResult:
    """Judge a /v1/completions answer: 200, the served model, at least one generated token."""
    if status != 200:
        return GateResult(gate, "fail", f"HTTP {status}: {body[:300]}")
    try:
        answer = json.loads(body)
        text = answer["choices"][0]["text"]
        tokens = answer["usage"]["completion_tokens"]
    except (ValueError, KeyError, IndexError, TypeError):
        return GateResult(gate, "fail", f"not an OpenAI completion: {body[:300]}")
    if answer.get("model") != model:
        return GateResult(gate, "fail", f"expected model {model!r}, found {answer.get('model')!r}")
    if not isinstance(text, str) or tokens < 1:
        return GateResult(gate, "fail", f"expected generated tokens, found {tokens} ({text!r})")
    return GateResult(gate, "pass", f"{tokens} token(s): {text[:60]!r}")


# systemctl show properties the health wait reads; ExecMainCode is the siginfo code of the
# engine's exit (1 exited, 2 killed, 3 dumped core), 0 while it runs.
UNIT_PROPERTIES = ("ActiveState", "SubState", "Result", "MainPID", "ExecMainCode", "ExecMainStatus")
_ENDED = {"1": "exited with status {}", "2": "was killed by signal {}", "3": "dumped core (signal {})"}


def parse_unit_properties(output: str) -> dict[str, str]:
    """``systemctl show -p A,B UNIT`` output (``Key=value`` lines, any order) as a dict."""
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def unit_verdict(unit: str, props: dict[str, str]) -> str | None:
    """Why waiting for the engine's /health is pointless now, or None to keep waiting.

    ``props``: the unit's ``systemctl show`` properties (empty when unknown: keep waiting).
    While its start job runs, the unit is ``activating``/``start-post`` with the engine as
    MainPID. No answer can come once the engine's process has ended (MainPID 0 and an exit
    recorded: systemd keeps the unit in start-post until this wait ends), the unit failed,
    is inactive or stopping, or waits to restart a crashed engine.

    >>> unit_verdict("e.service", {"ActiveState": "activating", "SubState": "start-post",
    ...                            "MainPID": "0", "ExecMainCode": "1", "ExecMainStatus": "1"})
    'e.service: the engine process exited with status 1 while starting'
    """
    active, sub = props.get("ActiveState", ""), props.get("SubState", "")
    if active in ("failed", "inactive"):
        return f"{unit} is {active} (result {props.get('Result') or 'unknown'})"
    if active == "deactivating":
        return f"{unit} is stopping ({sub or 'deactivating'})"
    code = props.get("ExecMainCode") or "0"
    if props.get("MainPID") == "0" and code != "0":
        how = _ENDED.get(code, "ended (code " + code + ", status {})").format(props.get("ExecMainStatus", "?"))
        return f"{unit}: the engine process {how} while starting"
    if sub == "auto-restart":
        return f"{unit}: the engine process ended; systemd waits to restart it"
    return None


def unit_properties(unit: str) -> dict[str, str]:
    """The unit's state from systemd (empty when systemctl cannot answer: keep waiting)."""
    rc, output = _run(["systemctl", "show", "-p", ",".join(UNIT_PROPERTIES), unit])
    return parse_unit_properties(output) if rc == 0 else {}


def wait_for_health(url: str, timeout: float, unit: str | None, interval: float = 1.0,
                    health: Callable[[str], GateResult] | None = None,
                    properties: Callable[[str], dict[str, str]] | None = None) -> GateResult:
    """Poll ``/health`` until it answers 200, ``timeout`` passes, or the unit says the engine
    cannot answer any more (``unit_verdict``)."""
    health = health or _health
    properties = properties or unit_properties
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            result = health(url)
        except (OSError, urllib.error.URLError) as error:
            result = GateResult("engine-health", "fail", f"unreachable: {getattr(error, 'reason', error)}")
        if result.status == "pass":
            return result
        verdict = unit_verdict(unit, properties(unit)) if unit else None
        if verdict:
            return GateResult("engine-health", "fail",
                              f"{verdict}, after {time.monotonic() - started:.0f}s; not waiting for /health")
        if time.monotonic() >= deadline:
            return GateResult("engine-health", "fail", f"{result.detail}; gave up after {timeout:.0f}s")
        time.sleep(interval)


def manifest_problems(manifest: Manifest, sizes: dict[str, int]) -> list[str]:
    """Fast check of a checkpoint against its (parsed, self-hash checked) manifest: every
    listed file present at its listed size (not a re-hash).

    ``sizes`` maps relative path -> size of the files found (absent: not there)."""
    problems = []
    for entry in manifest.files:
        found = sizes.get(entry.path)
        if found is None:
            problems.append(f"missing {entry.path}")
        elif found != entry.size:
            problems.append(f"size of {entry.path}: expected {entry.size}, found {found}")
    return problems


def _listed_sizes(root: str, manifest: Manifest) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for entry in manifest.files:  # paths are checked relative, without ".." (check_path)
        try:
            sizes[entry.path] = os.stat(os.path.join(root, entry.path)).st_size
        except OSError:
            pass
    return sizes


def check_weights(root: str, require: bool) -> tuple[int, str]:
    """The engine's ExecStartPre: (exit status, message) for the checkpoint at ``root``."""
    manifest = os.path.join(root, MANIFEST_FILENAME)
    try:
        with open(manifest, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        if require:
            return 1, f"weights {root}: no {MANIFEST_FILENAME}; cannot check the checkpoint (required)"
        return 0, f"weights {root}: no {MANIFEST_FILENAME}; not checked"
    except OSError as error:
        return 1, f"weights {root}: cannot read {MANIFEST_FILENAME}: {error.strerror}"
    try:
        parsed = Manifest.from_json(text)
    except ManifestError as error:
        return 1, f"weights {root}: corrupt checkpoint: {MANIFEST_FILENAME}: {error}"
    problems = manifest_problems(parsed, _listed_sizes(root, parsed))
    if problems:
        return 1, f"weights {root}: corrupt checkpoint: " + "; ".join(problems)
    return 0, f"weights {root}: every file of {MANIFEST_FILENAME} present at its size"


def _http(url: str, payload: dict | None = None, token: str | None = None, timeout: float = 30,
          cafile: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def _retry(probe: Callable[[], GateResult], timeout: float, interval: float = 2.0) -> GateResult:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except (OSError, urllib.error.URLError) as error:
            result = GateResult("?", "fail", f"unreachable: {getattr(error, 'reason', error)}")
        if result.status != "fail" or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def _run(command: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return 127, ""
    return done.returncode, done.stdout


def _health(url: str) -> GateResult:
    status, body = _http(f"{url}/health", timeout=10)
    return GateResult("engine-health", "pass" if status == 200 else "fail", f"/health HTTP {status}")


def weights_gate(reported: str | None, expected: str, published: str | None) -> GateResult:
    """The engine's own answer to "which checkpoint did you load" against the deployment:
    ``reported`` is /v1/models' root, ``expected`` the release directory the unit names,
    ``published`` what the model's ``current`` link points at (None: no link)."""
    gate = "engine-weights"
    if not reported:
        return GateResult(gate, "fail", "/v1/models names no checkpoint path (root)")
    if reported.rstrip("/") != expected.rstrip("/"):
        return GateResult(gate, "fail", f"the engine serves {reported}, deployed is {expected}: "
                                        "restart it onto the deployed release (deploy/serve.py)")
    release = os.path.basename(expected.rstrip("/"))
    if published is not None and published != release:
        return GateResult(gate, "fail", f"the engine serves release {release!r}, the published current is "
                                        f"{published!r}: deploy the engine for the published release")
    return GateResult(gate, "pass", f"serves release {release!r}" + (" (current)" if published else ""))


def served_root(status: int, body: str, model: str) -> str | None:
    """/v1/models' ``root`` of the served model (vLLM, SGLang and the transformers server
    report the --model path there)."""
    if status != 200:
        return None
    try:
        cards = json.loads(body).get("data") or []
    except (ValueError, AttributeError):
        return None
    return next((card.get("root") for card in cards if isinstance(card, dict) and card.get("id") == model), None)


def _engine_weights(url: str, model: str, expected: str) -> GateResult:
    status, body = _http(f"{url}/v1/models", timeout=30)
    link = os.path.join(os.path.dirname(expected.rstrip("/")), "current")
    try:
        published: str | None = os.readlink(link)
    except OSError:
        published = None
    return weights_gate(served_root(status, body, model), expected, published)


def _completion(gate: str, url: str, model: str, token: str | None = None, cafile: str | None = None) -> GateResult:
    payload = {"model": model, "prompt": PROMPT, "max_tokens": 4, "temperature": 0}
    status, body = _http(f"{url}/v1/completions", payload, token=token, timeout=120, cafile=cafile)
    return completion_gate(gate, status, body, model)


def run_gates(args: argparse.Namespace) -> list[GateResult]:
    results: list[GateResult] = []

    def named(gate: str, result: GateResult) -> GateResult:
        return GateResult(gate, result.status, result.detail)

    if args.skip_gpus:
        results.append(GateResult("gpus", "skip", args.skip_gpus))
    else:
        _, lspci = _run(["lspci", "-n", "-d", "10de:"])
        rc, smi = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        results.append(gpu_gate(count_pci_gpus(lspci), rc, smi, args.expect_driver))
    if results[-1].status == "fail":
        return results
    if args.worker:
        results.append(GateResult("engine-health", "skip", "worker node of a multi-node replica: no HTTP server"))
        return results
    results.append(named("engine-health", _retry(lambda: _health(args.url), args.timeout)))
    if results[-1].status == "fail":
        return results
    if args.expect_model_path:
        results.append(_engine_weights(args.url, args.model, args.expect_model_path))
        if results[-1].status == "fail":
            return results
    results.append(named("engine-completion", _retry(
        lambda: _completion("engine-completion", args.url, args.model), args.timeout)))
    if results[-1].status == "fail" or not args.gateway_url:
        return results
    token = None
    if args.gateway_token_file:
        with open(args.gateway_token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
    results.append(named("gateway-completion", _retry(
        lambda: _completion("gateway-completion", args.gateway_url.rstrip("/"), args.model, token, args.gateway_ca_file),
        args.timeout)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepseek-engine-health", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="poll /health until it answers 200")
    check = sub.add_parser("check", help="run the health gates")
    weights = sub.add_parser("weights", help="fast check of a checkpoint against its manifest (sizes)")
    weights.add_argument("--path", required=True, help="checkpoint directory (the engine's model path)")
    weights.add_argument("--require", action="store_true", help="fail when the checkpoint has no manifest")
    for command in (wait, check):
        command.add_argument("--url", required=True, help="engine base URL, e.g. http://127.0.0.1:8000")
        command.add_argument("--timeout", type=float, default=120, help="seconds to keep retrying a gate")
    wait.add_argument("--unit", default=None, help="the engine's systemd unit: stop waiting once its process has ended")
    check.add_argument("--model", required=True, help="served model name a completion must report")
    check.add_argument("--expect-driver", default=None, help="driver version every GPU must report")
    check.add_argument("--skip-gpus", default=None, metavar="REASON", help="skip the GPU gate, saying why")
    check.add_argument("--expect-model-path", default=None,
                       help="the release directory the engine must report having loaded (/v1/models root)")
    check.add_argument("--worker", action="store_true", help="a multi-node worker: only the GPU gate applies")
    check.add_argument("--gateway-url", default=None)
    check.add_argument("--gateway-token-file", default=None)
    check.add_argument("--gateway-ca-file", default=None)
    args = parser.parse_args(argv)
    hostname = socket.gethostname()
    if args.command == "weights":
        status, message = check_weights(args.path, args.require)
        print(f"{hostname}: {message}", file=sys.stderr if status else sys.stdout, flush=True)
        return status
    url = args.url.rstrip("/")

    if args.command == "wait":
        result = wait_for_health(url, args.timeout, args.unit)
        print(result.line(hostname), flush=True)
        if result.status != "pass":
            print(f"{hostname}: gate {result.gate} failed: {result.detail}", file=sys.stderr, flush=True)
        return 0 if result.status == "pass" else 1

    args.url = url
    results = run_gates(args)
    for result in results:
        print(result.line(hostname), flush=True)
    failed = [r for r in results if r.status == "fail"]
    for result in failed:
        print(f"{hostname}: gate {result.gate} failed: {result.detail}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
