"""deepseek-gateway: the access-controlled, OpenAI-compatible front of a node's engine.

Installed on gateway nodes as ``deepseek-node[gateway]`` (the deepseek-node wheel the
controller builds, deepseek_infra/nodewheel.py; its ``deepseek-gateway`` console script is
``cli.main``) and run by ``deepseek-gateway.service`` as the ``deepseek`` user; on the
controller the same code serves the unit tests and hashes seeded keys. Inside the package
every import is relative, and importing the package itself pulls in nothing beyond the
standard library.

Endpoints (nothing else is exposed; the engine's own control endpoints never are):

- ``GET /v1/models``: the models this node routes that the caller holds any grant on;
- ``POST /v1/completions``, ``POST /v1/chat/completions``: forwarded to the model's
  upstream (``upstreams`` in ``/etc/deepseek/gateway.yaml``), streaming passed through;
- ``GET /admin/models/<id>`` (read), ``PATCH /admin/models/<id>`` (write: the
  deployment-facing limits ``default_max_tokens``, ``max_tokens_limit``,
  ``max_temperature``), ``GET|POST|DELETE /admin/models/<id>/access`` (admin: other
  users' grants on that model; body ``{"user": ..., "permission": ...}``);
- ``GET /health`` (200 ``{"status": "ok"}``, 503 while draining), ``GET /metrics``
  (Prometheus: ``deepseek_gateway_requests_total{key_id,model,status}`` (plus ``user``
  with ``metrics_user_ids``),
  ``deepseek_gateway_request_duration_seconds{model}``, ``deepseek_gateway_in_flight``,
  ``deepseek_gateway_draining``; no key needed, for Prometheus, but only clients in
  ``metrics_clients`` get an answer (others a logged 403); model is ``other`` for names
  not routed here);
- ``GET|POST|DELETE /admin/drain``: loopback callers sending ``X-Admin-Token`` (see Draining).

Access control: ``Authorization: Bearer dsk-<key_id>-<secret>``. Keys are 256-bit random
secrets stored as SHA-256 digests, looked up by their key id. Missing or unknown key: 401;
a key without a grant on the requested model: 403; both as OpenAI-style JSON errors
(``{"error": {"message", "type", "param", "code"}}``) and both logged. Permissions are
ordered ``read < write < admin``: read lists and queries a model, write may also PATCH its
limits, admin may also manage other users' grants on it.

Request log (for Filebeat; one JSON object per line, also printed to stdout, i.e. the
journal of ``deepseek-gateway.service``), default path
``/var/log/deepseek/gateway/requests.jsonl``, rotated by logrotate (``create``, so the
gateway reopens the new file by inode). Fields, every one present on every line:

==============  ============================================================================
timestamp       request start, UTC, ISO 8601 with milliseconds (``2025-01-31T12:00:00.123Z``)
request_id      32 hex chars; also the ``X-Request-ID`` response header and sent upstream
method, path    HTTP method and path as received
user            authenticated user id, null when authentication failed
key_id          id of the API key used (never the key), null when none matched
model           requested model id, null when the request named none
status          HTTP status returned to the client (499: client went away mid-stream)
stream          true when the response was streamed (server-sent events)
input_sha256    SHA-256 hex of the input: the UTF-8 canonical JSON (sorted keys, no spaces,
                non-ASCII kept) of ``messages`` (chat) or ``prompt`` (completions); null
                when there is none, or when ``input_hmac`` is logged instead. The input
                itself is never logged unless ``log_input_text`` is true, then it is in
                ``input``.
input_hmac      HMAC-SHA256 hex of the same canonical JSON under the site's key
                (``input_hash_key_file``; the role's default), so a guessable prompt (a
                record number, "yes") cannot be recovered by hashing guesses. To find the
                requests carrying a known input, compute the HMAC with the same key:
                ``deepseek-gateway input-hash FILE`` on a node prints it for a JSON body.
confidence      mean token probability exp(logprob) of the output tokens, 0..1, from the
                engine's logprobs; requested transparently when the client did not ask
                for them (and stripped from the response then); null when unavailable
tokens_in       prompt tokens (engine ``usage``), null when unknown
tokens_out      completion tokens (engine ``usage``, else the number of logprob tokens)
duration_ms     processing time in the gateway, to the last byte sent, in milliseconds
client          client IP address
error           short machine-readable reason when the request failed, else null
engine_status   the engine's HTTP status when it failed (its text is in the journal only)
==============  ============================================================================

Draining (rolling upgrades): ``deepseek-gateway drain`` (``POST /admin/drain`` from the
node itself, with the token the gateway writes to ``admin_token_file`` (0600, service
user) at each start: the engine's container shares the host network, so loopback alone
proves nothing) makes ``/health`` answer 503 and every new ``/v1`` request 503 while
in-flight requests finish; ``deepseek-gateway drain --wait 120`` returns when none is in
flight; ``deepseek-gateway drain --resume`` undoes it (a restart also does). Stopping
the service (SIGTERM) closes the listener and waits up to ``drain_timeout_s`` for
in-flight requests (uvicorn's graceful shutdown), so ``systemctl restart`` never cuts a
response short within that time.
"""

from .. import __version__  # the deepseek-node distribution's (/health reports it)

__all__ = ["__version__"]
