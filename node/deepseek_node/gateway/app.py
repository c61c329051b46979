"""The gateway's ASGI application (Starlette): authentication, routing, logging, metrics.

``create_app(config, db)`` builds it; tests pass ``transport`` (an httpx transport that
plays the engine) and read the log from ``config.request_log``.
"""

from __future__ import annotations

import hmac
import importlib.util
import json
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import __version__, db as policy
from ..acceptance import admission
from .config import GatewayConfig
from . import keys as apikeys
from .keys import bearer_key
from .openai import CHAT, COMPLETIONS, EventStream, Exchange, LimitError, prepare
from .requestlog import RequestLog, input_hmac, input_sha256, load_hash_key, utc_timestamp

# httpcore runs ``import sniffio`` on every pool lock and semaphore it sets up; anyio 4 no
# longer installs sniffio, and each failed import walks sys.path (~0.15 ms, several per
# request). A None entry makes that import fail at once, as it would have anyway.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[assignment]

LOOPBACK = frozenset({"127.0.0.1", "::1"})
UPSTREAM_KEEPALIVE = 256  # idle connections kept open to the engines
POLICY_CACHE_ENTRIES = 4096  # past this the cache starts over: unknown key ids must not grow it forever
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# What the engine said when it failed: for the node's journal, never for the client.
ENGINE_LOG = logging.getLogger("deepseek_gateway.engine")
# Engine refusals the client can act on keep their status; any other failure is a 502.
CLIENT_STATUSES = {400: 400, 404: 404, 413: 413, 422: 400, 429: 429, 503: 503}


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


class ApiError(Exception):
    """Ends a request with an OpenAI-style JSON error."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.type, "param": None, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


@dataclass
class Context:
    """One request's log record, filled in as the request proceeds."""

    request: Request
    started: float = field(default_factory=time.perf_counter)
    record: dict[str, Any] = field(default_factory=dict)
    counted: bool = False  # counted in the in-flight gauge
    done: bool = False  # its log line is written


class RelayResponse(StreamingResponse):
    """A streamed reply that always ends its request's log line, even if never started."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]], **kwargs: Any):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._on_close()


class Gateway:
    def __init__(self, config: GatewayConfig, database: policy.Database,
                 transport: httpx.AsyncBaseTransport | None = None, request_log: RequestLog | None = None):
        self.config, self.db = config, database
        self.log = request_log or RequestLog(config.request_log, config.log_to_stdout)
        self.transport = transport
        self.client: httpx.AsyncClient | None = None  # builds upstream requests (headers, timeouts)
        self.upstream: httpx.AsyncBaseTransport | None = None  # sends them: the client's own transport
        self.draining = False
        self.in_flight = 0
        self.hash_key = load_hash_key(config.input_hash_key_file) if config.input_hash_key_file else None
        self.admin_token: str | None = None  # set at start when admin_token_file is configured
        self.registry = CollectorRegistry()
        # key ids, not user ids, unless asked: /metrics is read by whoever monitoring lets in
        self.request_labels = ("key_id", "model", "status", *(("user",) if config.metrics_user_ids else ()))
        self.requests = Counter("deepseek_gateway_requests", "Requests by API key id, model and status",
                                self.request_labels, registry=self.registry)
        self.latency = Histogram("deepseek_gateway_request_duration_seconds", "Processing time per request",
                                 ("model",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight_gauge = Gauge("deepseek_gateway_in_flight", "Requests being processed", registry=self.registry)
        self.draining_gauge = Gauge("deepseek_gateway_draining", "1 while draining", registry=self.registry)
        # policy reads (key, grant, model limits) by (function, args), valid while the store's
        # change counter stays put: a worker-thread hop and a query per read cost more than
        # the rest of the gateway's work on a request
        self._policy: dict[tuple[Any, ...], Any] = {}
        self._policy_version: int | None = None

    # -- helpers -------------------------------------------------------------------------

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(function, *args)

    async def send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        """``client.send`` straight to the transport, without what an engine needs none of:
        auth, redirects (off anyway), cookie jar and event hooks, a fifth of the gateway's
        CPU per request. Engine cookies are then not kept between requests either."""
        response = await self.upstream.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response

    async def policy(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on the policy store, from memory while nothing was committed since.

        The counter is read before the query, so a commit racing the query changes it and
        the next request reads again: a revocation holds from the next request on, as
        without the cache. Callers must not mutate what this returns.
        """
        version = self.db.change_counter()
        if version is None:  # PostgreSQL: no cheap change counter, so no cache
            return await self.call(function, *args)
        if version != self._policy_version or len(self._policy) >= POLICY_CACHE_ENTRIES:
            self._policy.clear()
            self._policy_version = version
        entry = (function.__name__, *args)
        try:
            return self._policy[entry]
        except KeyError:
            pass
        value = await self.call(function, *args)
        if self._policy_version == version:  # not cleared by a newer version meanwhile
            self._policy[entry] = value
        return value

    async def authenticate(self, ctx: Context) -> str:
        sent = ctx.request.headers.getlist("authorization")
        if len(sent) > 1:  # proxies and servers disagree on which one counts
            raise ApiError(400, "Send one Authorization header", code="duplicate_authorization")
        key = bearer_key(sent[0] if sent else None)
        if key is None:
            raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        key_id = apikeys.key_id(key)  # what Database.authenticate checks, with the key row cached
        found = await self.policy(self.db.active_key, key_id) if key_id is not None else None
        if found is None or not apikeys.matches(key, found[1]):
            raise ApiError(401, "Incorrect API key provided", code="invalid_api_key")
        ctx.record["user"], ctx.record["key_id"] = found[0], key_id
        return found[0]

    async def require(self, ctx: Context, model: str, needed: str) -> str:
        user = ctx.record.get("user") or await self.authenticate(ctx)  # once per request
        held = await self.policy(self.db.permission, user, model)
        if not policy.allows(held, needed):
            raise ApiError(403, f"User {user!r} has no {needed} access to model {model!r}",
                           type_="permission_error", code="model_access_denied")
        return user

    async def read_json(self, request: Request) -> dict[str, Any]:
        limit = self.config.max_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"Request body exceeds {limit} bytes", code="request_too_large")
        body, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"Request body exceeds {limit} bytes", code="request_too_large")
            body.append(chunk)
        try:
            data = json.loads(b"".join(body) or b"{}", parse_constant=_refuse_constant)
        except RecursionError as error:
            raise ApiError(400, "Request body is nested too deeply", code="invalid_json") from error
        except ValueError as error:  # UnicodeDecodeError and NaN/Infinity included
            raise ApiError(400, f"Request body is not valid JSON: {error}", code="invalid_json") from error
        if not isinstance(data, dict):
            raise ApiError(400, "Request body must be a JSON object", code="invalid_json")
        try:  # what is forwarded must encode: no unpaired surrogates (\\ud800), no runaway depth
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError as error:
            raise ApiError(400, "Request body holds an unpaired UTF-16 surrogate escape", code="invalid_json") from error
        except (RecursionError, ValueError) as error:
            raise ApiError(400, "Request body is nested too deeply", code="invalid_json") from error
        return data

    def engine_failure(self, ctx: Context, status: int, text: str) -> ApiError:
        """The gateway's own error for an engine failure; the engine's text goes to the journal."""
        request_id = ctx.record["request_id"]
        ENGINE_LOG.warning("request %s: the engine answered HTTP %s: %s", request_id, status, text[:4096])
        ctx.record["engine_status"] = status
        mapped = CLIENT_STATUSES.get(status, 502)
        if mapped == 502:
            return ApiError(502, f"The model engine failed (request id {request_id})", type_="server_error",
                            code="upstream_error")
        return ApiError(mapped, f"The model engine refused the request with HTTP {status}; the operator finds "
                                f"its reason in the node's log under request id {request_id}",
                        type_="invalid_request_error" if mapped < 500 else "server_error", code="upstream_rejected")

    def finish(self, ctx: Context, status: int, error: str | None = None) -> None:
        if ctx.done:
            return
        ctx.done = True
        record = ctx.record
        record["status"] = status
        record["error"] = error if error is not None else record.get("error")
        duration = time.perf_counter() - ctx.started
        record["duration_ms"] = round(duration * 1000, 3)
        self.log.write(record)
        model = record.get("model") if record.get("model") in self.config.upstreams else "other"
        labels = {"key_id": record.get("key_id") or "none", "model": model, "status": str(status),
                  "user": record.get("user") or "anonymous"}
        self.requests.labels(*(labels[name] for name in self.request_labels)).inc()
        self.latency.labels(model).observe(duration)
        if ctx.counted:
            ctx.counted = False
            self.in_flight -= 1
            self.in_flight_gauge.set(self.in_flight)

    # -- inference -------------------------------------------------------------------------

    async def inference(self, ctx: Context, kind: str) -> Response:
        if self.draining:
            raise ApiError(503, "The gateway is draining; retry on another node", type_="server_error",
                           code="draining")
        await self.authenticate(ctx)
        body = await self.read_json(ctx.request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "'model' is required", code="model_required")
        ctx.record["model"] = model
        if self.hash_key is not None:
            ctx.record["input_hmac"] = input_hmac(body, self.hash_key)
        else:
            ctx.record["input_sha256"] = input_sha256(body)
        if self.config.log_input_text:
            ctx.record["input"] = body.get("messages", body.get("prompt"))
        await self.require(ctx, model, "read")
        upstream = self.config.upstream_for(model)
        if upstream is None:
            raise ApiError(404, f"The model {model!r} is not served by this gateway", code="model_not_found")
        limits = await self.policy(self.db.model, model)
        try:
            exchange = prepare(body, kind, limits, self.config.confidence)
        except LimitError as error:
            raise ApiError(400, str(error), code="limit_exceeded") from error
        ctx.record["stream"] = exchange.stream
        ctx.counted = True
        self.in_flight += 1
        self.in_flight_gauge.set(self.in_flight)

        path = "/v1/chat/completions" if kind == CHAT else "/v1/completions"
        request = self.client.build_request(
            "POST", upstream + path, json=body, headers={"X-Request-ID": ctx.record["request_id"]},
        )
        try:
            if exchange.stream:
                return await self.relay_stream(ctx, request, exchange)
            with anyio.fail_after(self.config.upstream_timeout_s):
                reply = await self.send(request)
        except (TimeoutError, httpx.TimeoutException) as error:
            raise ApiError(504, "The model engine did not answer in time", type_="server_error",
                           code="upstream_timeout") from error
        except httpx.TransportError as error:
            raise ApiError(502, f"The model engine is unreachable: {type(error).__name__}", type_="server_error",
                           code="upstream_unreachable") from error
        return self.shape(ctx, reply, exchange)

    def shape(self, ctx: Context, reply: httpx.Response, exchange: Exchange) -> Response:
        if reply.status_code != 200:
            raise self.engine_failure(ctx, reply.status_code, reply.text)
        try:
            payload = reply.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            ENGINE_LOG.warning("request %s: the engine answered 200 with a body that is not a JSON object: %r",
                               ctx.record["request_id"], reply.content[:512])
            raise ApiError(502, f"The model engine sent a malformed reply (request id {ctx.record['request_id']})",
                           type_="server_error", code="upstream_bad_reply")
        exchange.observe(payload)
        self.note(ctx, exchange)
        return JSONResponse(payload, status_code=200)

    def note(self, ctx: Context, exchange: Exchange) -> None:
        ctx.record.update(confidence=exchange.confidence.value, tokens_in=exchange.tokens_in,
                          tokens_out=exchange.output_tokens)

    async def relay_stream(self, ctx: Context, request: httpx.Request, exchange: Exchange) -> Response:
        reply = await self.send(request, stream=True)
        if reply.status_code != 200:
            content = await reply.aread()
            await reply.aclose()
            raise self.engine_failure(ctx, reply.status_code, content.decode("utf-8", "replace"))
        request_id = ctx.record["request_id"]

        def error_event(message: str, code: str) -> bytes:
            error = {"message": f"{message} (request id {request_id})", "type": "server_error", "param": None,
                     "code": code}
            return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"

        events = EventStream(exchange, error_event("The model engine failed during the reply", "upstream_error"))

        async def relay() -> AsyncIterator[bytes]:
            status, error = 200, None
            try:
                async for chunk in reply.aiter_raw():
                    for out in events.feed(chunk):
                        yield out
                for out in events.close():
                    yield out
                if exchange.engine_error is not None:
                    error = "upstream_error"
                    ENGINE_LOG.warning("request %s: the engine failed mid-stream: %s", request_id, exchange.engine_error)
            except httpx.TimeoutException:
                error = "upstream_timeout"
                yield error_event("The model engine stopped answering", error)
            except httpx.TransportError:
                error = "upstream_unreachable"
                yield error_event("The model engine went away", error)
            except BaseException:  # the client went away: cancelled mid-stream
                status, error = 499, "client_disconnected"
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await reply.aclose()
                self.note(ctx, exchange)
                self.finish(ctx, status, error)

        async def closed() -> None:  # after the stream, or when the client left before it began
            await reply.aclose()
            self.note(ctx, exchange)
            self.finish(ctx, 499, "client_disconnected")

        return RelayResponse(relay(), closed, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Request-ID": ctx.record["request_id"]})


def _endpoint(gateway: Gateway, handler: Callable[[Context], Awaitable[Response]]):
    """Wrap a handler: request id, OpenAI-style errors, one log line, metrics."""

    async def endpoint(request: Request) -> Response:
        ctx = Context(request)
        ctx.record.update(
            timestamp=utc_timestamp(time.time()), request_id=uuid.uuid4().hex, method=request.method,
            path=request.url.path, user=None, key_id=None, model=None, stream=False, input_sha256=None, input_hmac=None,
            confidence=None, tokens_in=None, tokens_out=None, error=None, engine_status=None,
            client=request.client.host if request.client else None,
        )
        try:
            response = await handler(ctx)
        except ApiError as error:
            response = error.response()
            ctx.record["error"] = error.code or error.type
        except Exception as error:  # noqa: BLE001 - every failure still gets a log line
            response = ApiError(500, "Internal gateway error", type_="server_error", code="internal_error").response()
            ctx.record["error"] = f"internal_error: {type(error).__name__}"
        response.headers["X-Request-ID"] = ctx.record["request_id"]
        if not isinstance(response, StreamingResponse):
            gateway.finish(ctx, response.status_code)
        return response

    return endpoint


def create_app(config: GatewayConfig, database: policy.Database, *,
               transport: httpx.AsyncBaseTransport | None = None, request_log: RequestLog | None = None) -> Starlette:
    gateway = Gateway(config, database, transport, request_log)

    async def models(ctx: Context) -> Response:
        user = await gateway.authenticate(ctx)
        held = await gateway.call(database.permissions, user)
        data = [{"id": model, "object": "model", "created": 0, "owned_by": "deepseek"}
                for model in sorted(config.upstreams) if model in held]
        return JSONResponse({"object": "list", "data": data})

    async def chat(ctx: Context) -> Response:
        return await gateway.inference(ctx, CHAT)

    async def completions(ctx: Context) -> Response:
        return await gateway.inference(ctx, COMPLETIONS)

    async def model_settings(ctx: Context) -> Response:
        model = ctx.record["model"] = ctx.request.path_params["model_id"]
        if ctx.request.method == "GET":
            await gateway.require(ctx, model, "read")
            return JSONResponse(await gateway.call(database.model, model))
        await gateway.require(ctx, model, "write")
        changes = await gateway.read_json(ctx.request)
        _check_settings(changes)
        return JSONResponse(await gateway.call(database.update_model, model, changes))

    async def model_access(ctx: Context) -> Response:
        model = ctx.record["model"] = ctx.request.path_params["model_id"]
        await gateway.require(ctx, model, "admin")
        if ctx.request.method == "GET":
            return JSONResponse({"data": await gateway.call(database.access, model)})
        change = await gateway.read_json(ctx.request)
        user = change.get("user")
        if not isinstance(user, str) or user not in await gateway.call(database.users):
            raise ApiError(404, f"User {user!r} does not exist", code="user_not_found")
        if ctx.request.method == "DELETE":
            removed = await gateway.call(database.revoke, user, model)
            return JSONResponse({"user": user, "model": model, "revoked": removed})
        permission = change.get("permission")
        if permission not in policy.PERMISSIONS:
            raise ApiError(400, f"'permission' must be one of {', '.join(policy.PERMISSIONS)}", code="bad_permission")
        await gateway.call(database.grant, user, model, permission)
        return JSONResponse({"user": user, "model": model, "permission": permission})

    async def drain(ctx: Context) -> Response:
        if (ctx.request.client.host if ctx.request.client else None) not in LOOPBACK:
            raise ApiError(403, "Draining is allowed from the node itself only", type_="permission_error",
                           code="not_loopback")
        if config.admin_token_file:  # the engine shares the host network: loopback alone proves nothing
            sent = ctx.request.headers.get("x-admin-token", "")
            if gateway.admin_token is None or not hmac.compare_digest(sent.encode(), gateway.admin_token.encode()):
                raise ApiError(403, f"Draining needs the token in {config.admin_token_file} (X-Admin-Token)",
                               type_="permission_error", code="bad_admin_token")
        if ctx.request.method == "POST":
            gateway.draining = True
        elif ctx.request.method == "DELETE":
            gateway.draining = False
        gateway.draining_gauge.set(int(gateway.draining))
        return JSONResponse({"draining": gateway.draining, "in_flight": gateway.in_flight})

    async def health(request: Request) -> Response:
        # A node that failed its acceptance gate (deploy/acceptance.py) stays out of the load balancer.
        admitted, reason = admission(config.acceptance_record, config.acceptance_required)
        status = "draining" if gateway.draining else "ok" if admitted else "not_accepted"
        body = {"status": status, "in_flight": gateway.in_flight, "version": __version__, "acceptance": reason}
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    async def metrics_refused(ctx: Context) -> Response:
        raise ApiError(403, "Metrics are served to the monitoring networks only", type_="permission_error",
                       code="metrics_not_allowed")

    logged_metrics_refusal = _endpoint(gateway, metrics_refused)

    async def metrics(request: Request) -> Response:
        if not config.metrics_allowed(request.client.host if request.client else None):
            return await logged_metrics_refusal(request)
        return Response(generate_latest(gateway.registry), media_type=CONTENT_TYPE_LATEST)

    async def refused_by_router(ctx: Context) -> Response:
        error = ctx.request.state.http_error
        raise ApiError(error.status_code, f"{ctx.request.method} {ctx.request.url.path!r}: {error.detail}",
                       code="not_found" if error.status_code == 404 else "method_not_allowed")

    logged_refusal = _endpoint(gateway, refused_by_router)

    async def not_found(request: Request, error: HTTPException) -> Response:
        request.state.http_error = error  # 404/405 from the router: logged, with a request id
        return await logged_refusal(request)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if config.admin_token_file:
            gateway.admin_token = await anyio.to_thread.run_sync(write_admin_token, config.admin_token_file)
        await anyio.to_thread.run_sync(database.migrate)
        for model in config.upstreams:
            await anyio.to_thread.run_sync(database.ensure_model, model)
        await anyio.to_thread.run_sync(database.change_counter)  # opens its connection off the event loop
        timeout = httpx.Timeout(config.upstream_timeout_s, connect=config.connect_timeout_s)
        # no connection cap: httpx's default (100) would hold stream 101 until one ends;
        # the engine queues requests itself, and idle keep-alives serve the next burst
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=UPSTREAM_KEEPALIVE)
        upstream = transport or httpx.AsyncHTTPTransport(limits=limits)
        async with httpx.AsyncClient(transport=upstream, timeout=timeout, limits=limits) as client:
            gateway.client, gateway.upstream = client, upstream
            yield

    wrap = lambda handler: _endpoint(gateway, handler)  # noqa: E731
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", wrap(models), methods=["GET"]),
        Route("/v1/chat/completions", wrap(chat), methods=["POST"]),
        Route("/v1/completions", wrap(completions), methods=["POST"]),
        Route("/admin/drain", wrap(drain), methods=["GET", "POST", "DELETE"]),
        Route("/admin/models/{model_id:path}/access", wrap(model_access), methods=["GET", "POST", "DELETE"]),
        Route("/admin/models/{model_id:path}", wrap(model_settings), methods=["GET", "PATCH"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.state.gateway = gateway
    return app


def write_admin_token(path: str) -> str:
    """A fresh drain token in ``path``, readable by the service user (and root) only."""
    token = secrets.token_urlsafe(32)
    partial = f"{path}.{os.getpid()}.tmp"
    if os.path.lexists(partial):  # left by a crashed start with the same pid
        os.unlink(partial)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(descriptor, token.encode() + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(partial, path)
    return token


def read_admin_token(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()


def _check_settings(changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(policy.MODEL_SETTINGS)
    if unknown:
        raise ApiError(400, f"Unknown model setting(s): {', '.join(sorted(unknown))}; "
                            f"allowed: {', '.join(policy.MODEL_SETTINGS)}", code="unknown_setting")
    for name, value in changes.items():
        if value is None:
            continue
        if name == "max_temperature":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 2
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1_048_576
        if not ok:
            raise ApiError(400, f"{name}: invalid value {value!r}", code="bad_setting")
    default, ceiling = changes.get("default_max_tokens"), changes.get("max_tokens_limit")
    if default and ceiling and default > ceiling:
        raise ApiError(400, "default_max_tokens exceeds max_tokens_limit", code="bad_setting")
