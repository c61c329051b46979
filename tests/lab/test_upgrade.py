"""Lab integration of the rolling upgrade (deploy/upgrade.py) on a six-node fleet of its own.

Only the roles a serving node needs run on it (base, weights, serve, gateway: no NVIDIA
stack), all six nodes at once (pyinfra's parallelism). The engines load what the weights
role placed, as in production (``DEEPSEEK_LAB_WEIGHTS=role``): the lab mirror publishes the
tiny DeepSeek-V3-layout checkpoint as releases lab-1, lab-2 and lab-3, and a synthetic
release lab-broken (a config.json and random shards, nothing a model loads from). A client
keeps sending real chat completions through the gateways (TLS, a lab API key) of the hosts
a load balancer has admitted; the load balancer is lab/lb_backends.py, driven by the
upgrade's own hooks (``--lb-drain``/``--lb-admit``): a host leaves the client's backend set
before its gateway drains and comes back after it is re-admitted.

1. A weights-only rollout, lab-1 -> lab-2 (``weights_revision`` and its manifest, nothing
   else): canary 1, then batches of 50% (3, then 2). Zero failed requests; requests served
   while each batch was out; every engine was restarted and reports (``/v1/models``' root,
   the engine's own word, not the symlink) that it serves lab-2; the report.
2. Rollout to lab-3 with a fault on one host of the second batch (its release is
   lab-broken): the apply step fails in seconds (the health wait sees the engine process
   die), the rollout stops at max_fail=0, that host is rolled back and its engine serves
   lab-2 again through its gateway; the hosts of the last batch are untouched (same
   release, same unit file, same engine process).

The fleet is DEEPSEEK_LAB_UPGRADE_FLEET (default ``uplab``); a fleet that already runs is
reused and left running (redeployed to the starting release first), one started here is
brought down.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import httpx
import pytest

from lab import gateway_lab, tiny_model
from lab.lb_backends import Backends
from lab.testing import fleet_run
from deepseek_infra import engine

pytestmark = pytest.mark.lab

FLEET = os.environ.get("DEEPSEEK_LAB_UPGRADE_FLEET", "uplab")  # never collides with the other lab tests
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODES = [f"{FLEET}-node-{index}" for index in range(1, 7)]
HOSTS = [f"@docker/{name}" for name in NODES]
NAME_OF = dict(zip(HOSTS, NODES))
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # inventories/lab_settings.py deepseek_model
SLUG = MODEL.replace("/", "--")
MODELS = "/var/lib/deepseek/models"
MIRROR_DATA = Path(os.environ.get("DEEPSEEK_LAB_STATE", REPO / ".lab")) / "fleets" / FLEET / "weights-mirror" / "data"
# What a serving node needs, and what a release upgrade touches.
SETUP = ("deploy/base.py", "deploy/weights.py", "deploy/serve.py", "deploy/gateway.py")
ROLES = ("deploy/weights.py", "deploy/serve.py")
# The engines load the weights role's release of weights_revision (inventories/lab_settings.py).
LAB_ENV = {"DEEPSEEK_LAB_WEIGHTS": "role"}
LOADABLE = ("lab-1", "lab-2", "lab-3")  # the tiny V3-layout checkpoint, published three times
BROKEN = "lab-broken"  # synthetic: a config.json and random shards
BATCHES = [HOSTS[:1], HOSTS[1:4], HOSTS[4:]]  # --canary 1 --batch-size 50%
FAULTY = HOSTS[2]  # in the second batch


run = partial(fleet_run, FLEET, timeout=1200, env=LAB_ENV)


def node(name: str, command: str, check: bool = True) -> str:
    return run("docker", "exec", name, "sh", "-c", command, check=check, timeout=120).stdout


def current(name: str) -> str:
    return node(name, f"readlink {MODELS}/{SLUG}/current", check=False).strip().rsplit("/", 1)[-1]


def engine_process(name: str) -> dict[str, str]:
    """The running engine as its unit shows it: pid, start time, unit file hash."""
    return {
        "pid": node(name, f"systemctl show -p MainPID --value {engine.UNIT}").strip(),
        "started": node(name, f"systemctl show -p ExecMainStartTimestampMonotonic --value {engine.UNIT}").strip(),
        "unit": hashlib.sha256(node(name, f"cat /etc/systemd/system/{engine.UNIT}").encode()).hexdigest(),
    }


def served_release(name: str) -> str:
    """The release the engine itself says it loaded: the last part of /v1/models' root."""
    body = node(name, "python3 -c \"import urllib.request; "
                      "print(urllib.request.urlopen('http://127.0.0.1:8000/v1/models', timeout=20).read().decode())\"",
                check=False)
    try:
        cards = json.loads(body)["data"]
    except (ValueError, KeyError, TypeError):
        return f"no answer: {body[:200]!r}"
    root = next((card.get("root", "") for card in cards if card.get("id") == tiny_model.REPO_ID), "")
    assert root.startswith(f"{MODELS}/{SLUG}/"), f"{name}: the engine serves {root!r}, not a release of {SLUG}"
    return root.rstrip("/").rsplit("/", 1)[-1]


def release_data(revision: str, flag: str = "--set") -> list[str]:
    manifest = MIRROR_DATA / MODEL / revision / "MANIFEST.dsw.json"
    return [flag, f"weights_revision={revision}", flag, f"weights_manifest={manifest}"]


def host_release(host: str, revision: str) -> list[str]:
    manifest = MIRROR_DATA / MODEL / revision / "MANIFEST.dsw.json"
    return ["--host-set", f"{host}:weights_revision={revision}", "--host-set", f"{host}:weights_manifest={manifest}"]


def upgrade(tmp_path: Path, name: str, lb: Backends, *args: str) -> tuple[subprocess.CompletedProcess, dict, float]:
    report = tmp_path / f"{name}.json"
    hook = f"{BIN / 'python'} -m lab.lb_backends {lb.path}"
    started = time.monotonic()
    result = run(str(BIN / "python"), "deploy/upgrade.py", "inventories/lab.py", *ROLES, *args,
                 "--canary", "1", "--batch-size", "50%", "--max-fail", "0", "--drain-wait", "30",
                 "--lb-drain", f"{hook} remove {{host}}", "--lb-admit", f"{hook} add {{host}}",
                 "--report", str(report), check=False)
    took = time.monotonic() - started
    assert report.exists(), f"no report\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    return result, json.loads(report.read_text()), took


class Client(threading.Thread):
    """Chat completions, one at a time, round robin over the load balancer's admitted hosts,
    each through that host's gateway (TLS checked against the node's own certificate)."""

    def __init__(self, lb: Backends, tmp_path: Path) -> None:
        super().__init__(daemon=True)
        self.lb, self.stop, self.requests = lb, threading.Event(), []
        key = gateway_lab.lab_key("lab-reader")
        self.clients: dict[str, httpx.Client] = {}
        for host, name in NAME_OF.items():
            ca = tmp_path / f"{name}.crt"
            ca.write_text(node(name, "cat /etc/deepseek/gateway/tls.crt"))
            address = run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                          name).stdout.strip()
            self.clients[host] = httpx.Client(
                base_url=f"https://{address}:8443", verify=ssl.create_default_context(cafile=str(ca)), timeout=60,
                headers={"Host": name, "Authorization": f"Bearer {key}"})

    def send(self, host: str) -> tuple[bool, str]:
        body = {"model": tiny_model.REPO_ID, "max_tokens": 4,
                "messages": [{"role": "user", "content": "Say something about rolling upgrades."}]}
        try:
            reply = self.clients[host].post("/v1/chat/completions", json=body,
                                            extensions={"sni_hostname": NAME_OF[host]})
        except httpx.HTTPError as error:
            return False, f"{type(error).__name__}: {error}"
        if reply.status_code != 200:
            return False, f"HTTP {reply.status_code}: {reply.text[:300]}"
        try:
            content = reply.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return False, f"not a chat completion: {reply.text[:300]}"
        return isinstance(content, str), "ok"

    def run(self) -> None:
        index = 0
        while not self.stop.is_set():
            with self.lb.pick(index) as host:  # the host stays admitted until the request is answered
                start = time.time()
                ok, detail = self.send(host) if host else (False, "no backend admitted")
            self.requests.append({"start": start, "end": time.time(), "host": host, "ok": ok, "detail": detail})
            index += 1
            time.sleep(0.1)

    def served_since(self, host: str, since: float) -> int:
        return sum(1 for r in list(self.requests) if r["host"] == host and r["ok"] and r["start"] >= since)

    def finish(self, hosts: list[str], since: dict[str, float], timeout: float = 90) -> None:
        """Keep sending until every host in ``hosts`` served a request after ``since[host]``, then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(self.served_since(h, since[h]) for h in hosts):
            time.sleep(0.5)
        self.stop.set()
        self.join(timeout=120)
        for client in self.clients.values():
            client.close()


def batch_windows(lb: Backends, batches: list[list[str]], since: float) -> list[tuple[float, float]]:
    """Per batch: from its first host leaving the load balancer to its last host coming back."""
    events = [event for event in lb.events() if event["time"] >= since]
    windows = []
    for batch in batches:
        removed = [e["time"] for e in events if e["host"] in batch and e["action"] == "remove"]
        added = [e["time"] for e in events if e["host"] in batch and e["action"] == "add"]
        assert len(removed) == len(batch) and len(added) == len(batch), f"hook events of {batch}: {events}"
        windows.append((min(removed), max(added)))
    return windows


def host_out_windows(lb: Backends, hosts: list[str], since: float) -> dict[str, tuple[float, float]]:
    """Per host: from its own removal from the load balancer to its own re-admission."""
    events = [event for event in lb.events() if event["time"] >= since]
    return {host: (min(e["time"] for e in events if e["host"] == host and e["action"] == "remove"),
                   max(e["time"] for e in events if e["host"] == host and e["action"] == "add"))
            for host in hosts}


@pytest.fixture(scope="module")
def fleet():
    started = time.monotonic()
    listing = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True)
    reused = listing.returncode == 0 and all(name in listing.stdout.split() for name in NODES)
    if not reused:
        run(str(BIN / "python"), "-m", "lab", "up", "6", "--profile", "workstation-rtx6000ada-2x", "--recreate")
    run(str(BIN / "python"), "-m", "lab", "weights-mirror", "up", "--revision", BROKEN,
        *(arg for revision in LOADABLE for arg in ("--loadable-revision", revision)))
    # The starting release (the inventory's data: lab-1, no extra engine environment), every node at once.
    run(str(BIN / "pyinfra"), "-y", "inventories/lab.py", *SETUP, timeout=1800)
    print(f"\nfleet of 6 ready in {time.monotonic() - started:.0f}s")
    yield NODES
    if not reused:
        run(str(BIN / "python"), "-m", "lab", "down")


@pytest.fixture(scope="module")
def lb(fleet, tmp_path_factory):
    backends = Backends(tmp_path_factory.mktemp("lb") / "backends")
    for host in HOSTS:
        backends.change("add", host)
    return backends


def test_refused_before_any_host_is_changed(fleet, tmp_path):
    result = run(str(BIN / "python"), "deploy/upgrade.py", "inventories/lab.py", "--max-fail", "lots",
                 "--report", str(tmp_path / "r.json"), check=False)
    assert result.returncode == 2 and "max_fail: expected a count" in result.stderr, result.stderr
    assert [current(name) for name in NODES] == ["lab-1"] * 6


def test_weights_only_rollout_keeps_serving_and_every_engine_serves_the_new_release(fleet, lb, tmp_path):
    assert [current(name) for name in NODES] == ["lab-1"] * 6
    assert [served_release(name) for name in NODES] == ["lab-1"] * 6
    engines = {name: engine_process(name) for name in NODES}
    client = Client(lb, tmp_path)
    since = time.time()
    client.start()
    try:
        result, report, took = upgrade(tmp_path, "up", lb, *release_data("lab-2"))
    finally:
        admitted = {e["host"]: e["time"] for e in lb.events() if e["action"] == "add" and e["time"] >= since}
        client.finish(HOSTS, {host: admitted.get(host, time.time()) for host in HOSTS})
    print(f"\nrollout of 6 hosts in {took:.0f}s; {len(client.requests)} requests")
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"

    failed = [r for r in client.requests if not r["ok"]]
    assert not failed, f"{len(failed)} of {len(client.requests)} requests failed during the rollout: {failed[:5]}"
    windows = batch_windows(lb, BATCHES, since)
    # A host's own hooks bound its time out: one batch's hosts leave and come back one by one,
    # so another host of the batch may still (or again) serve inside the batch's window.
    out = host_out_windows(lb, HOSTS, since)
    routed_while_out = [r for r in client.requests if r["host"] in out and out[r["host"]][0] < r["start"] < out[r["host"]][1]]
    assert not routed_while_out, f"requests routed to a host while it was out of the load balancer: {routed_while_out[:5]}"
    for batch, (start, end) in zip(BATCHES, windows):
        during = [r for r in client.requests if r["start"] >= start and r["end"] <= end]
        assert during, f"batch {batch}: no request served while it was out ({end - start:.0f}s)"
        print(f"batch {batch}: {len(during)} requests served during the batch, in {end - start:.0f}s")
    for host in HOSTS:
        assert client.served_since(host, admitted[host]), f"{host}: served no request after it was re-admitted"

    assert report["batches"] == BATCHES and report["ok"] and report["failed"] == [] and report["untouched"] == []
    assert report["canary"] is True and report["stopped"] is None
    for host, name in NAME_OF.items():
        outcome = report["hosts"][host]
        assert outcome["status"] == "upgraded" and outcome["batch"] == BATCHES.index(
            next(b for b in BATCHES if host in b)), f"{host}: expected upgraded in its batch, found {outcome}"
        assert outcome["before"][SLUG].rsplit("/", 1)[-1] == "lab-1", f"{host}: before: {outcome['before']}"
        assert outcome["after"][SLUG].rsplit("/", 1)[-1] == "lab-2", f"{host}: after: {outcome['after']}"
        assert set(outcome["seconds"]) >= {"drain", "apply", "health", "resume"}, f"{host}: {outcome['seconds']}"
        assert current(name) == "lab-2", f"{name}: current expected lab-2, found {current(name)}"
        assert served_release(name) == "lab-2", f"{name}: the engine serves {served_release(name)!r}, deployed is lab-2"
        assert engine_process(name)["pid"] != engines[name]["pid"], f"{name}: the engine was not restarted"
    # Rerun: the state file says every host is done; nothing is drained or applied again.
    again, _, _ = upgrade(tmp_path, "up", lb, *release_data("lab-2"))
    assert again.returncode == 0 and "resuming" in again.stdout and "drain ok" not in again.stdout, again.stdout


def test_fault_on_one_host_stops_at_max_fail_and_rolls_it_back(fleet, lb, tmp_path):
    assert [current(name) for name in NODES] == ["lab-2"] * 6
    untouched = {host: engine_process(NAME_OF[host]) for host in BATCHES[2]}
    client = Client(lb, tmp_path)
    since = time.time()
    client.start()
    try:
        result, report, took = upgrade(
            tmp_path, "fault", lb, *release_data("lab-3"), *host_release(FAULTY, BROKEN),
            # Rolling back: the previous release and engine settings (what the inventory says after rollout 1).
            *release_data("lab-2", "--rollback-set"))
    finally:
        readmitted = [e["time"] for e in lb.events() if e["host"] == FAULTY and e["action"] == "add" and e["time"] >= since]
        client.finish([FAULTY], {FAULTY: readmitted[-1] if readmitted else time.time()})
    print(f"\nfaulty rollout in {took:.0f}s; {len(client.requests)} requests")
    assert result.returncode == 1, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    failed = [r for r in client.requests if not r["ok"]]
    assert not failed, f"{len(failed)} of {len(client.requests)} requests failed: {failed[:5]}"

    outcome = report["hosts"][FAULTY]
    assert outcome["status"] == "rolled_back" and outcome["step"] == "apply", outcome
    assert f"{FAULTY}: {engine.UNIT} did not start" in outcome["error"], outcome["error"]
    assert "the engine process exited" in outcome["error"], outcome["error"]
    # TimeoutStartSec is 1800 s: the health wait saw the engine die and gave up at once.
    assert outcome["seconds"]["apply"] < 150, f"{FAULTY}: apply took {outcome['seconds']['apply']:.0f}s"
    assert outcome["rollback"] == "rolled back, healthy, re-admitted", outcome
    assert outcome["after"][SLUG].rsplit("/", 1)[-1] == "lab-2", outcome
    assert "max_fail=0: rollout stopped" in report["stopped"] and report["failed"] == [FAULTY]
    for host in (*BATCHES[0], *BATCHES[1]):
        if host != FAULTY:
            assert report["hosts"][host]["status"] == "upgraded", report["hosts"][host]
            assert current(NAME_OF[host]) == "lab-3" and served_release(NAME_OF[host]) == "lab-3"
    assert report["untouched"] == BATCHES[2]
    for host in BATCHES[2]:
        name = NAME_OF[host]
        assert report["hosts"][host]["status"] == "pending", report["hosts"][host]
        assert current(name) == "lab-2", f"{name}: current expected lab-2, found {current(name)}"
        assert served_release(name) == "lab-2", f"{name}: the engine serves {served_release(name)!r}"
        assert engine_process(name) == untouched[host], f"{name}: engine expected untouched {untouched[host]}"
        assert node(name, f"test -e {MODELS}/{SLUG}/lab-3 && echo touched || echo untouched").strip() == "untouched"

    name = NAME_OF[FAULTY]
    assert current(name) == "lab-2", f"{name}: current expected lab-2 after the rollback, found {current(name)}"
    assert served_release(name) == "lab-2", f"{name}: the engine serves {served_release(name)!r} after the rollback"
    assert node(name, f"systemctl is-active {engine.UNIT}").strip() == "active"
    assert client.served_since(FAULTY, readmitted[-1]), f"{FAULTY}: no request served through its gateway after the rollback"
