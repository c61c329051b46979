"""Gateway benchmark: latency added by the gateway over the engine alone (not a test).

    .venv/bin/python bench/gateway.py                     # 2000 requests each way
    .venv/bin/python bench/gateway.py -n 500 --stream --profile gateway.prof

Starts, each in its own process on 127.0.0.1 (ephemeral ports): a fake engine (raw ASGI
under uvicorn, answers instantly: three tokens, logprobs when asked, usage when asked)
and the gateway (``create_app`` under uvicorn, SQLite policy, JSON request log to a
temporary file, confidence on) in front of it. Then it sends N requests one at a time
over one keep-alive connection each way, alternating direct / through-gateway so that
machine noise hits both alike, and prints median, p95 and mean latency of each, the
added latency per request (gateway - direct) and the ratio. Streamed requests are timed
to the last byte. ``--profile FILE`` runs the gateway process under cProfile and writes
its stats to FILE (then ``python -m pstats FILE``). Targets: median added latency < 1 ms,
gateway CPU < 1 ms per request (its process's utime + stime over the run, from /proc),
and with ``--stream`` < 0.1 ms added per chunk: a second pass streams ``--long-chunks``
tokens, and the added latency's growth per extra chunk is the per-chunk cost.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
TOKENS = ("Hel", "lo", "!")
LOGPROBS = (-0.1, -0.2, -0.3)


async def engine(scope, receive, send) -> None:
    """An instant OpenAI-compatible engine (completions and chat, streamed or not)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body or b"{}")
    chat = scope["path"].endswith("/chat/completions")
    usage = {"prompt_tokens": 5, "completion_tokens": len(TOKENS), "total_tokens": 5 + len(TOKENS)}

    def logprobs(tokens, values):
        if chat and request.get("logprobs"):
            return {"content": [{"token": t, "logprob": v, "top_logprobs": []} for t, v in zip(tokens, values)]}
        if not chat and request.get("logprobs") is not None:
            return {"tokens": list(tokens), "token_logprobs": list(values)}
        return None

    if request.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        count = request.get("max_tokens") or len(TOKENS)  # one chunk per token
        for index in range(count):
            token, value = TOKENS[index % len(TOKENS)], LOGPROBS[index % len(LOGPROBS)]
            choice = {"index": 0, "logprobs": logprobs((token,), (value,)),
                      **({"delta": {"content": token}} if chat else {"text": token})}
            chunk = json.dumps({"id": "b", "model": request.get("model"), "choices": [choice]})
            await send({"type": "http.response.body", "body": f"data: {chunk}\n\n".encode(), "more_body": True})
        if (request.get("stream_options") or {}).get("include_usage"):
            chunk = json.dumps({"id": "b", "choices": [], "usage": usage})
            await send({"type": "http.response.body", "body": f"data: {chunk}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        return
    text = "".join(TOKENS)
    choice = {"index": 0, "finish_reason": "stop", "logprobs": logprobs(TOKENS, LOGPROBS),
              **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
    data = json.dumps({"id": "b", "object": "text_completion", "model": request.get("model"),
                       "choices": [choice], "usage": usage}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def _listen() -> socket.socket:
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets; without it
    # every response waits ~40 ms for a delayed ACK (Nagle), as uvicorn's own bind avoids
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock


def _serve(sock: socket.socket, app_factory: str, args: tuple, profile: str | None) -> None:
    import uvicorn

    app = engine if app_factory == "engine" else _gateway_app(*args)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT that stopped it
        pass
    finally:
        if profile:
            profiler.disable()
            profiler.dump_stats(profile)


def _gateway_app(engine_url: str, workdir: str):
    from deepseek_node.gateway.app import create_app
    from deepseek_node.gateway.config import GatewayConfig
    from deepseek_node.gateway.db import Database

    config = GatewayConfig.from_mapping({
        "tls_cert": None, "tls_key": None, "database_path": f"{workdir}/gateway.db",
        "request_log": f"{workdir}/requests.jsonl", "log_to_stdout": False, "upstreams": {MODEL: engine_url},
        "admin_token_file": f"{workdir}/admin.token", "acceptance_record": None,  # defaults are /var/lib, /etc
    })
    return create_app(config, Database(path=config.database_path))


def _seed(workdir: str) -> str:
    from deepseek_node.gateway.db import Database

    database = Database(path=f"{workdir}/gateway.db")
    database.migrate()
    database.add_user("bench")
    database.grant("bench", MODEL, "read")
    key = database.create_key("bench")
    database.close()
    return key


def _start(target: str, args: tuple = (), profile: str | None = None):
    sock = _listen()
    # daemon: a child left behind by a failed start must not keep the bench from exiting
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(sock, target, args, profile),
                                                          daemon=True)
    process.start()
    port = sock.getsockname()[1]
    sock.close()  # the child holds its own copy
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or not process.is_alive():
                raise SystemExit(f"{target} did not start") from None
            time.sleep(0.05)
    return process, port


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _request(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> float:
    started = time.perf_counter()
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}: {data[:200]!r}")
    return elapsed


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)] * 1000,
            "mean_ms": statistics.fmean(ordered) * 1000}


ADDED_TARGET_MS = 1.0  # median latency the gateway adds, sequential
CPU_TARGET_MS = 1.0  # gateway CPU per request
CHUNK_TARGET_MS = 0.1  # latency the gateway adds per streamed chunk


def _verdict(what: str, value: float, target: float) -> None:
    print(f"target {what} < {target:g} ms: {'meets' if value < target else 'MISSES'} ({value:.4f} ms)")


def _phase(args: argparse.Namespace, path: str, tokens: int | None, direct: http.client.HTTPConnection,
           gateway: http.client.HTTPConnection, key: str, processes: dict[str, int]):
    """N requests each way, alternating; (latencies by side, CPU seconds used by each process)."""
    request: dict[str, object] = {"model": MODEL, "stream": args.stream}
    request.update({"messages": [{"role": "user", "content": "hello"}]} if args.chat else {"prompt": "hello"})
    if tokens:
        request["max_tokens"] = tokens
    # direct: what the gateway itself sends (logprobs and usage injected), so both
    # sides carry the same engine work and only the gateway's own cost differs
    direct_request = {**request, "logprobs": True if args.chat else 0}
    if args.stream:
        direct_request["stream_options"] = {"include_usage": True}
    body, direct_body = json.dumps(request).encode(), json.dumps(direct_request).encode()
    headers = {"Content-Type": "application/json"}
    gateway_headers = {**headers, "Authorization": f"Bearer {key}"}
    times: dict[str, list[float]] = {"direct": [], "gateway": []}
    cpu: dict[str, float] = {}
    for index in range(args.warmup + args.requests):
        if index == args.warmup:
            cpu = {name: _cpu_s(pid) for name, pid in processes.items()}
        pair = (("direct", direct, direct_body, headers), ("gateway", gateway, body, gateway_headers))
        for name, connection, payload, hdrs in (pair if index % 2 else pair[::-1]):
            elapsed = _request(connection, path, payload, hdrs)
            if index >= args.warmup:
                times[name].append(elapsed)
    return times, {name: _cpu_s(pid) - cpu[name] for name, pid in processes.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=2000, help="requests each way (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests each way first")
    parser.add_argument("--stream", action="store_true", help="streamed completions, timed to the last byte")
    parser.add_argument("--chat", action="store_true", help="/v1/chat/completions instead of /v1/completions")
    parser.add_argument("--long-chunks", type=int, default=64,
                        help="--stream: tokens per stream of the second pass, for the per-chunk cost")
    parser.add_argument("--profile", metavar="FILE", help="run the gateway under cProfile; stats to FILE")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as workdir:
        key = _seed(workdir)
        engine_process, engine_port = _start("engine")
        gateway_process, gateway_port = _start("gateway", (f"http://127.0.0.1:{engine_port}", workdir),
                                               str(Path(args.profile).resolve()) if args.profile else None)
        try:
            path = "/v1/chat/completions" if args.chat else "/v1/completions"
            direct = http.client.HTTPConnection("127.0.0.1", engine_port)
            gateway = http.client.HTTPConnection("127.0.0.1", gateway_port)
            for connection in (direct, gateway):  # no Nagle wait on the client side
                connection.connect()
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            processes = {"engine": engine_process.pid, "gateway": gateway_process.pid}
            phases = {"short": _phase(args, path, None, direct, gateway, key, processes)}
            if args.stream:  # the same with long streams: the difference is the per-chunk cost
                phases["long"] = _phase(args, path, args.long_chunks, direct, gateway, key, processes)
            direct.close()
            gateway.close()
            logged = len(Path(workdir, "requests.jsonl").read_text().splitlines())
        finally:
            for process in (gateway_process, engine_process):
                os.kill(process.pid, signal.SIGINT)  # not SIGTERM: the profile must be written
                process.join(30)

    mode = f"{path} {'streamed' if args.stream else 'non-streamed'}"
    print(f"{args.requests} requests each way (after {args.warmup} warm-up), {mode}, sequential, keep-alive")
    figures: dict[str, object] = {"mode": mode, "requests": args.requests}
    for phase, (times, cpu) in phases.items():
        results = {name: _summary(samples) for name, samples in times.items()}
        added = {stat: results["gateway"][stat] - results["direct"][stat] for stat in results["direct"]}
        paired = sorted(g - d for g, d in zip(times["gateway"], times["direct"], strict=True))
        if args.stream:
            print(f"-- {len(TOKENS) if phase == 'short' else args.long_chunks} tokens per stream")
        print(f"{'':10}{'median':>10}{'p95':>10}{'mean':>10}   (ms)")
        for name in ("direct", "gateway"):
            row = results[name]
            print(f"{name:10}{row['median_ms']:10.3f}{row['p95_ms']:10.3f}{row['mean_ms']:10.3f}")
        print(f"{'added':10}{added['median_ms']:10.3f}{added['p95_ms']:10.3f}{added['mean_ms']:10.3f}")
        ratio = results["gateway"]["median_ms"] / results["direct"]["median_ms"]
        print(f"ratio gateway/direct (median): {ratio:.2f}x; median of paired differences: "
              f"{statistics.median(paired) * 1000:.3f} ms")
        # the engine serves both sides (2N requests); the gateway serves N
        engine_cpu_ms = cpu["engine"] / (2 * args.requests) * 1000
        gateway_cpu_ms = cpu["gateway"] / args.requests * 1000
        print(f"CPU per request (load-independent): engine {engine_cpu_ms:.3f} ms, gateway {gateway_cpu_ms:.3f} ms"
              f" (/proc utime+stime, 10 ms ticks summed over the run)")
        figures[phase] = {"results": results, "added": added, "ratio": ratio,
                          "cpu_ms_per_request": {"engine": engine_cpu_ms, "gateway": gateway_cpu_ms}}
    short = figures["short"]
    print(f"log lines written: {logged}")
    _verdict("median added latency", short["added"]["median_ms"], ADDED_TARGET_MS)
    _verdict("gateway CPU per request", short["cpu_ms_per_request"]["gateway"], CPU_TARGET_MS)
    if args.stream:
        # what the client sees per engine chunk: the extra chunks of a long stream cost this
        # much more through the gateway than directly (the per-request cost cancels out)
        chunks = args.long_chunks - len(TOKENS)
        per_chunk = (figures["long"]["added"]["median_ms"] - short["added"]["median_ms"]) / chunks
        cpu_chunk = (figures["long"]["cpu_ms_per_request"]["gateway"] - short["cpu_ms_per_request"]["gateway"]) / chunks
        naive = figures["long"]["added"]["median_ms"] / (args.long_chunks + 2)  # + usage chunk and [DONE]
        figures["per_chunk_ms"] = {"latency": per_chunk, "gateway_cpu": cpu_chunk, "added_over_chunks": naive}
        print(f"per chunk: gateway CPU {cpu_chunk:.4f} ms; (added total)/(chunks) over a long stream {naive:.4f} ms")
        _verdict("per-chunk added latency (long - short, per extra chunk)", per_chunk, CHUNK_TARGET_MS)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if args.profile:
        print(f"gateway profile: {args.profile} (python -m pstats {args.profile})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
