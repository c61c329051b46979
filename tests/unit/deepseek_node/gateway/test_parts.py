"""The gateway's parts on their own: config, keys, log writer, event stream, TLS, CLI."""

from __future__ import annotations

import json
import os
import stat

import pytest

from deepseek_node.gateway import keys as apikeys
from deepseek_node.gateway.cli import main
from deepseek_node.gateway.config import ConfigError, GatewayConfig
from deepseek_node.gateway.openai import CHAT, EventStream, prepare
from deepseek_node.gateway.requestlog import FIELDS, Confidence, RequestLog


# -- config ----------------------------------------------------------------------------------

def test_config_defaults_match_the_node_layout():
    config = GatewayConfig.from_mapping({})
    assert (config.port, config.database_path, config.request_log) == (
        8443, "/var/lib/deepseek/gateway/gateway.db", "/var/log/deepseek/gateway/requests.jsonl")


@pytest.mark.parametrize(("data", "message"), [
    ({"prot": 1}, "prot: unknown configuration key"),
    ({"port": "8443"}, "port: expected int"),
    ({"confidence": "yes"}, "confidence: expected bool"),
    ({"upstreams": {"m": "http://127.0.0.1:8000/v1/admin"}}, "upstreams.m: expected a base URL"),
    ({"upstreams": {"m": "ftp://x"}}, "upstreams.m"),
    ({"tls_cert": None}, "set both or neither"),
])
def test_config_refuses_bad_values_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        GatewayConfig.from_mapping(data)


def test_config_load_names_the_file(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("port: -1\n")
    with pytest.raises(ConfigError, match=f"{path}: port"):
        GatewayConfig.load(path)


# -- keys ------------------------------------------------------------------------------------

def test_generated_keys_are_distinct_well_formed_and_256_bit():
    first, second = apikeys.generate_key(), apikeys.generate_key()
    assert first != second
    assert apikeys.key_id(first) == first.split("-")[1] and len(first.split("-", 2)[2]) == 43
    assert apikeys.matches(first, apikeys.hash_key(first)) and not apikeys.matches(second, apikeys.hash_key(first))


@pytest.mark.parametrize(("header", "key"), [
    ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None), ("", None),
])
def test_bearer_key(header, key):
    assert apikeys.bearer_key(header) == key


# -- log writer ------------------------------------------------------------------------------

def test_log_lines_have_every_field_and_follow_rotation(tmp_path):
    path = tmp_path / "requests.jsonl"
    log = RequestLog(str(path), to_stdout=False)
    log.write({"request_id": "a", "status": 200})
    path.rename(tmp_path / "requests.jsonl.1")  # logrotate's `create`
    log.write({"request_id": "b", "status": 401})
    log.close()
    (old,) = [json.loads(line) for line in (tmp_path / "requests.jsonl.1").read_text().splitlines()]
    (new,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (old["request_id"], new["request_id"]) == ("a", "b")
    assert list(new)[: len(FIELDS)] == list(FIELDS) and new["user"] is None


def test_confidence_ignores_missing_values_and_clamps():
    meter = Confidence()
    meter.add_choice({"logprobs": {"content": [{"logprob": 0.0}, {"logprob": None}, {"logprob": float("-inf")}]}})
    assert meter.value == 0.5 and meter.count == 2
    assert Confidence().value is None


# -- event stream ----------------------------------------------------------------------------

def test_event_stream_handles_crlf_and_byte_by_byte_delivery():
    exchange = prepare({"model": "m", "stream": True, "messages": []}, CHAT, None, True)
    stream = EventStream(exchange)
    raw = (b'data: {"choices":[{"delta":{"content":"x"},"logprobs":{"content":[{"logprob":-0.5}]}}]}\r\n\r\n'
           b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}\r\n\r\ndata: [DONE]\r\n\r\n')
    out = b"".join(piece for i in range(len(raw)) for piece in stream.feed(raw[i:i + 1]))
    out += b"".join(stream.close())
    events = [e for e in out.decode().split("\n\n") if e]
    assert len(events) == 2 and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["choices"][0]["logprobs"] is None
    assert (exchange.tokens_in, exchange.tokens_out, exchange.confidence.count) == (2, 1, 1)


def test_prepare_keeps_client_stream_options():
    body = {"model": "m", "stream": True, "stream_options": {"continuous_usage_stats": True}}
    exchange = prepare(body, CHAT, None, False)
    assert body["stream_options"] == {"continuous_usage_stats": True, "include_usage": True}
    assert exchange.injected_usage and not exchange.injected_logprobs


# -- TLS -------------------------------------------------------------------------------------

def test_self_signed_certificate_has_the_names_and_a_private_key(tmp_path):
    from cryptography import x509

    from deepseek_node.gateway.tls import write_self_signed

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    assert write_self_signed(str(cert), str(key), ["gw-node-1", "localhost", "127.0.0.1"]) is True
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw-node-1", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o640 and b"PRIVATE KEY" in key.read_bytes()
    assert write_self_signed(str(cert), str(key), ["other"]) is False  # never replaced


# -- CLI -------------------------------------------------------------------------------------

@pytest.fixture
def cli_config(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(json.dumps({"database_path": str(tmp_path / "g.db"), "service_user": "no-such-user-here",
                                "tls_cert": None, "tls_key": None}))
    return ["--config", str(path)]


def test_cli_user_key_grant_revoke_list(cli_config, capsys):
    model = "deepseek-ai/DeepSeek-V3"
    assert main([*cli_config, "user", "add", "alice"]) == 0
    assert capsys.readouterr().out == "user alice: created\n"
    assert main([*cli_config, "key", "create", "alice"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert apikeys.key_id(key) and "cannot be shown again" in out.err
    assert main([*cli_config, "grant", "alice", model, "write"]) == 0
    assert main([*cli_config, "list"]) == 0
    listing = capsys.readouterr().out
    assert f"{model}=write" in listing and apikeys.key_id(key) in listing and key not in listing
    assert main([*cli_config, "revoke", "alice", model]) == 0
    assert main([*cli_config, "revoke", "alice", model]) == 1
    assert main([*cli_config, "key", "revoke", apikeys.key_id(key)]) == 0
    assert main([*cli_config, "grant", "bob", model, "read"]) == 2  # unknown user
    assert "user 'bob' does not exist" in capsys.readouterr().err


def test_cli_seed(cli_config, tmp_path, capsys):
    key = apikeys.generate_key()
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"models": ["m"], "users": {"alice": {"m": "read"}},
                                "keys": {"alice": [{"key_id": apikeys.key_id(key), "sha256": apikeys.hash_key(key)}]}}))
    assert main([*cli_config, "seed", str(seed)]) == 0
    assert json.loads(capsys.readouterr().out)["grants"] == 1
    from deepseek_node.gateway.db import Database

    assert Database(path=str(tmp_path / "g.db")).authenticate(key) == ("alice", apikeys.key_id(key))


def test_cli_bad_config_is_exit_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "missing.yaml"), "list"]) == 2
    assert "cannot read the configuration" in capsys.readouterr().err
