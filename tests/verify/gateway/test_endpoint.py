"""The gateway answers over TLS on its configured port and refuses requests without a key."""

import json


def curl(host, url: str, *options: str):
    return host.run("curl -sS -k --max-time 10 -o /dev/stderr -w '%{http_code}' " + " ".join(options) + f" {url}")


def test_listens_on_the_configured_port(host, gateway_config):
    socket = host.socket(f"tcp://{gateway_config.host}:{gateway_config.port}")
    assert socket.is_listening, f"{host.backend.hostname}: gateway: expected a listener on {gateway_config.host}:{gateway_config.port}, found none"


def test_tls_on_the_port(host, local_url):
    result = curl(host, f"{local_url}/health", "--tlsv1.2")
    assert result.rc == 0 and result.stdout == "200", (
        f"{host.backend.hostname}: {local_url}/health over TLS: expected 200, found rc={result.rc} "
        f"status={result.stdout!r} {result.stderr[-300:]!r}"
    )
    plain = curl(host, local_url.replace("https://", "http://") + "/health")
    assert plain.stdout != "200", f"{host.backend.hostname}: {local_url}: expected TLS only, found plain HTTP answered"


def test_running_gateway_is_this_checkouts_version(host, local_url):
    """The running process (not only the venv) is the deployed code: restarted after an upgrade."""
    import deepseek_node

    result = host.run(f"curl -sS -k --max-time 10 {local_url}/health")
    found = json.loads(result.stdout).get("version") if result.rc == 0 and result.stdout.startswith("{") else result.stderr
    assert found == deepseek_node.__version__, (
        f"{host.backend.hostname}: {local_url}/health version: expected {deepseek_node.__version__}, found {found!r}")


def test_tls_session_is_established(host, local_url):
    with host.sudo():
        result = host.run(f"curl -sS -v -k --max-time 10 -o /dev/null {local_url}/health")
    assert "SSL connection using TLS" in result.stderr, (
        f"{host.backend.hostname}: {local_url}: expected a TLS session, found {result.stderr[-300:]!r}"
    )


def test_request_without_key_is_401(host, local_url):
    result = host.run(f"curl -sS -k --max-time 10 -w '\\n%{{http_code}}' {local_url}/v1/models")
    body, _, status = result.stdout.rpartition("\n")
    assert status == "401", f"{host.backend.hostname}: GET /v1/models without a key: expected 401, found {status!r}"
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_api_key", f"{host.backend.hostname}: 401 body: expected an OpenAI-style error, found {body!r}"


def test_engine_control_paths_are_not_exposed(host, local_url):
    for path in ("/reset_prefix_cache", "/v1/load_lora_adapter", "/start_profile"):
        status = host.run(f"curl -sS -k --max-time 10 -o /dev/null -w '%{{http_code}}' -X POST {local_url}{path}").stdout
        assert status in ("404", "405"), f"{host.backend.hostname}: POST {path}: expected 404/405, found {status!r}"
