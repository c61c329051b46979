"""Lab integration of the weights role: its own one-node fleet and HTTP mirror, real faults.

The order is a story: bad controller input refused before any change; an interrupted
download resumed without fetching finished files again; a second deploy that changes and
fetches nothing; the verify suite; corrupted data refused by placement with ``current``
unchanged; the re-hash timer's service catching a flipped byte; rollback; a full disk;
an encrypted release pushed from a controller directory (resumed), its key kept out of
the output, decrypted into tmpfs, and wrong keys refused with nothing written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest

from lab.testing import fleet_run

pytestmark = pytest.mark.lab

FLEET = "wlab"  # this file's own fleet: never collides with tests/lab/test_fleet.py
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODE = f"{FLEET}-node-1"
HOST = f"@docker/{NODE}"
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # inventories/lab_settings.py
SLUG = MODEL.replace("/", "--")
SHARD = "model-00001-of-00002.safetensors"
MODELS = "/var/lib/deepseek/models"
TOOL = "/opt/deepseek/weights/bin/deepseek-weights"
MIRROR_DATA = Path(os.environ.get("DEEPSEEK_LAB_STATE", REPO / ".lab")) / "fleets" / FLEET / "weights-mirror" / "data"


run = partial(fleet_run, FLEET, timeout=600, text=False)


def node(command: str, check: bool = True, input: bytes | None = None) -> str:
    return run("docker", "exec", "-i", NODE, "sh", "-c", command, check=check, input=input).stdout.decode()


def deploy(*data: str, verbose: bool = False) -> tuple[int, str, dict | None]:
    """Run deploy/weights.py; return exit status, all output and the JSON results (when --json)."""
    args = [str(BIN / "pyinfra"), "-y", "-vvv" if verbose else "--json", "inventories/lab.py", "deploy/weights.py"]
    for item in data:
        args += ["--data", item]
    result = run(*args, check=False)
    output = result.stdout.decode() + result.stderr.decode()
    report = None
    if not verbose and "{" in result.stdout.decode():
        text = result.stdout.decode()
        try:
            report = json.loads(text[text.index("{"):])
        except ValueError:
            report = None
    return result.returncode, output, report


def changed(report: dict) -> list[str]:
    return [op["name"] for op in report["results"]["operations"] if op["success"]]


def mirror_requests() -> list[dict]:
    lines = run("docker", "logs", f"{FLEET}-weights").stdout.decode().splitlines()
    return [doc for doc in (json.loads(line) for line in lines if line.startswith("{")) if "method" in doc]


def checkpoint(revision: str) -> Path:
    return MIRROR_DATA / MODEL / revision


def flip(path: Path, offset: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def current(models: str = MODELS) -> str:
    return node(f"readlink {models}/{SLUG}/current", check=False).strip()


def revision_data(revision: str) -> tuple[str, str]:
    return f"weights_revision={revision}", f"weights_manifest={checkpoint(revision) / 'MANIFEST.dsw.json'}"


@pytest.fixture(scope="module")
def fleet():
    run(str(BIN / "python"), "-m", "lab", "up", "1", "--profile", "workstation-rtx6000ada-2x", "--recreate")
    run(str(BIN / "python"), "-m", "lab", "weights-mirror", "up", "--revision", "lab-1", "--revision", "lab-2", "--revision", "lab-3")
    # What the base role provides and this role relies on: the service account's group.
    node("getent group deepseek >/dev/null || useradd --system --user-group --no-create-home deepseek")
    yield NODE
    run(str(BIN / "python"), "-m", "lab", "down")


def test_bad_controller_input_is_refused_before_any_change(fleet, tmp_path):
    tampered = tmp_path / "MANIFEST.dsw.json"
    doc = json.loads((checkpoint("lab-1") / "MANIFEST.dsw.json").read_text())
    doc["files"][0]["size"] += 1
    tampered.write_text(json.dumps(doc))
    cases = [
        ((f"weights_manifest={tampered}",), "weights_manifest:", "self-hash mismatch"),
        ((f"weights_manifest_sha384={'ab' * 48}",), "weights_manifest_sha384: expected abab", "found "),
        (revision_data("lab-2")[1:], "weights_manifest: expected revision 'lab-1'", "found 'lab-2'"),
        (("weights_encrypt=true", "weights_key=env:DSW_LAB_UNSET_KEY"), "weights_key:", "DSW_LAB_UNSET_KEY is not set"),
    ]
    for data, field, detail in cases:
        rc, output, _ = deploy(*data)
        assert rc != 0, f"{data}: accepted\n{output[-2000:]}"
        assert f"{HOST}: {field}" in output and detail in output, f"{data}:\n{output[-2000:]}"
        assert "no host was changed" in output
    assert node("test -e /opt/deepseek/weights && echo changed || echo untouched").strip() == "untouched"


def test_interrupted_download_resumes_without_fetching_finished_files(fleet):
    faults = MIRROR_DATA / ".faults.json"
    faults.write_text(json.dumps({f"{MODEL}/lab-1/{SHARD}": {"cut_after": 3 * 1024 * 1024, "times": 1}}))
    try:
        rc, output, _ = deploy("weights_fetch_retries=0")
    finally:
        faults.unlink()
    assert rc != 0 and "connection closed after 3145728" in output, output[-3000:]
    assert current() == "", "a release was published from an interrupted download"
    staged = f"{MODELS}/{SLUG}/.staging/lab-1/{SHARD}"
    assert node(f"stat -c %s {staged}").strip() == str(3 * 1024 * 1024)

    before = len(mirror_requests())
    rc, output, report = deploy("weights_fetch_retries=0")
    assert rc == 0, output[-3000:]
    again = mirror_requests()[before:]
    assert [(r["path"], r["range"], r["status"]) for r in again] == [
        (f"{MODEL}/lab-1/{SHARD}", "bytes=3145728-", 206)], again
    assert current() == "lab-1"


def test_second_deploy_changes_and_fetches_nothing(fleet):
    before = len(mirror_requests())
    rc, output, report = deploy()
    assert rc == 0 and report is not None, output[-3000:]
    assert changed(report) == [], f"second run changed: {changed(report)}"
    assert mirror_requests()[before:] == []


def test_verify_suite_passes(fleet):
    result = run(str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/verify/weights",
                 f"--hosts=docker://{NODE}", check=False)
    assert result.returncode == 0, result.stdout.decode()[-4000:]


def test_flipped_byte_on_the_mirror_is_refused_and_current_kept(fleet):
    shard = checkpoint("lab-2") / SHARD
    flip(shard)
    try:
        rc, output, _ = deploy(*revision_data("lab-2"))
    finally:
        flip(shard)
    assert rc != 0 and '"hash_mismatch": [{' in output and SHARD in output, output[-3000:]
    assert current() == "lab-1"
    rc, output, _ = deploy(*revision_data("lab-2"))
    assert rc == 0 and current() == "lab-2", output[-3000:]


def test_files_that_do_not_match_the_manifest_are_refused_by_placement(fleet, tmp_path):
    source = tmp_path / "lab-3"
    run("cp", "-r", str(checkpoint("lab-3")), str(source))
    flip(source / SHARD, offset=5_000_000)  # same size: only the hash can tell
    rc, output, _ = deploy(*revision_data("lab-3"), "weights_source=directory", f"weights_source_dir={source}")
    assert rc != 0 and f"sha384 of {SHARD}: expected" in output, output[-3000:]
    assert "current release unchanged (lab-2)" in output and current() == "lab-2"
    assert node(f"test -e {MODELS}/{SLUG}/lab-3 && echo yes || echo no").strip() == "no"


def test_rehash_timer_service_detects_a_flipped_byte(fleet):
    path = f"{MODELS}/{SLUG}/current/{SHARD}"
    flip_cmd = f"python3 -c \"f=open('{path}','r+b'); f.seek(99); b=f.read(1); f.seek(99); f.write(bytes([b[0]^1]))\""
    node(flip_cmd)
    failed = node("systemctl start deepseek-weights-verify.service; echo rc=$?").strip()
    journal = node("journalctl -u deepseek-weights-verify.service -o cat --no-pager | grep '^{' | tail -1")
    node(flip_cmd)
    assert failed.endswith("rc=1") or "rc=" in failed and not failed.endswith("rc=0"), failed
    line = json.loads(journal)
    assert line["ok"] is False and any(SHARD in p for p in line["problems"]), line
    assert node("systemctl start deepseek-weights-verify.service; echo rc=$?").strip().endswith("rc=0")


def test_rollback_to_the_previous_release_and_forward_again(fleet):
    rc, output, _ = deploy("weights_action=rollback")
    assert rc == 0 and current() == "lab-1", output[-3000:]
    rc, output, _ = deploy("weights_action=rollback")
    assert rc != 0 and f"{HOST}: weights_action: rollback needs a release placed before the current one (lab-1)" in output
    before = len(mirror_requests())
    rc, output, _ = deploy(*revision_data("lab-2"))
    assert rc == 0 and current() == "lab-2" and mirror_requests()[before:] == [], output[-3000:]


def test_a_full_disk_is_refused_before_transfer(fleet):
    node("mkdir -p /srv/tiny && (mountpoint -q /srv/tiny || mount -t tmpfs -o size=4m tmpfs /srv/tiny)")
    rc, output, _ = deploy("weights_models_dir=/srv/tiny")
    assert rc != 0, output[-3000:]
    assert f"{HOST}: weights_models_dir: /srv/tiny (/srv/tiny): expected " in output and "free for" in output
    assert "found 0.00 GiB" in output or "found " in output
    assert node("find /srv/tiny -type f | wc -l").strip() == "0"
    assert current() == "lab-2" and node(f"{TOOL} check --model {SLUG} >/dev/null; echo $?").strip() == "0"


def test_encrypted_release_pushed_resumed_decrypted_and_wrong_keys_refused(fleet, tmp_path):
    models = "/var/lib/deepseek/enc-models"
    key_file, other_key = tmp_path / "lab.key", tmp_path / "other.key"
    for path in (key_file, other_key):
        path.write_text(os.urandom(32).hex() + "\n")
        path.chmod(0o600)
    secret = key_file.read_text().strip()
    source = checkpoint("lab-1")
    staging = f"{models}/{SLUG}/.staging/lab-1"
    node(f"mkdir -p {staging} && cat > {staging}/{SHARD}", input=(source / SHARD).read_bytes()[: 3 * 1024 * 1024])
    data = (*revision_data("lab-1"), "weights_source=directory", f"weights_source_dir={source}",
            "weights_encrypt=true", f"weights_models_dir={models}", "weights_push_batch_mib=1", "weights_push_chunk_mib=2")
    rc, output, _ = deploy(*data, f"weights_key=file:{key_file}", verbose=True)
    assert rc == 0, output[-4000:]
    assert f"resumed: {SHARD} from byte 3145728" in output
    assert secret not in output and secret not in node("journalctl --no-pager -o cat"), "the key leaked into output or logs"
    key_path = f"/etc/deepseek/keys/{SLUG}.key"
    assert node(f"stat -c '%U:%G %a' {key_path}").strip() == "root:root 400"
    names = node(f"cd {models}/{SLUG}/current && find . -type f | sort").split()
    assert names and all(n.endswith(".dsenc") or "MANIFEST" in n or n == "./.release.json" for n in names), names

    rc, _, report = deploy(*data, f"weights_key=file:{key_file}")
    assert rc == 0 and changed(report) == [], changed(report)

    unit = f"deepseek-weights-decrypt@{SLUG}.service"
    node(f"systemctl start {unit}")
    mounted = f"/run/deepseek/models/{SLUG}"
    assert node(f"findmnt -n -o FSTYPE {mounted}").strip() == "tmpfs"
    assert node(f"sha384sum {mounted}/{SHARD}").split()[0] == hashlib.sha384((source / SHARD).read_bytes()).hexdigest()
    assert node(f"{TOOL} check --models-dir {models} --model {SLUG} --decrypted {mounted} >/dev/null; echo $?").strip() == "0"

    key_sha = node(f"sha256sum {key_path}")
    rc, output, _ = deploy(*data, f"weights_key=file:{other_key}")
    assert rc != 0 and f"{HOST}: weights_key: expected the key of release lab-1 (fingerprint" in output, output[-3000:]
    assert node(f"sha256sum {key_path}") == key_sha, "a refused key replaced the key file"

    node(f"systemctl stop {unit}")
    node(f"chmod 600 {key_path} && cat > {key_path} && chmod 400 {key_path}", input=other_key.read_bytes())
    failed = node(f"systemctl start {unit}; echo rc=$?").strip()
    log = node(f"journalctl -u {unit} -o cat --no-pager | tail -5")
    node(f"chmod 600 {key_path} && cat > {key_path} && chmod 400 {key_path}", input=key_file.read_bytes())
    assert not failed.endswith("rc=0") and "wrong key" in log, log
    assert node(f"findmnt {mounted} >/dev/null; echo $?").strip() != "0", "a tmpfs stayed mounted after a wrong key"
