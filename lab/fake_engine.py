#!/usr/bin/env python3
"""LAB/TEST ONLY: a fake OpenAI-compatible engine for exercising deepseek-gateway.

Standard library only (runs with a node's python3). Answers /v1/models,
/v1/completions and /v1/chat/completions (streamed or not) with a fixed three-token
reply; returns logprobs when asked (-0.1, -0.2, -0.3) and a usage chunk when
``stream_options.include_usage`` is set, like vLLM. Also answers the engine control
paths vLLM has (/reset_prefix_cache ...) with 200 "CONTROL", so a test can prove the
gateway never forwards them. Usage: fake_engine.py [--port 8000] [--model ID]
"""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKENS = ("Hel", "lo", "!")
LOGPROBS = (-0.1, -0.2, -0.3)


class Engine(BaseHTTPRequestHandler):
    model = "fake"
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
        return self._send(200, b"CONTROL", "text/plain")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            return self._send(200, b"CONTROL", "text/plain")
        if body.get("stream"):
            return self._stream(body, chat)
        text = "".join(TOKENS)
        choice = {"index": 0, "finish_reason": "stop", "logprobs": self._logprobs(body, chat, TOKENS, LOGPROBS)}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        self._send(200, {"id": "fake-1", "object": "chat.completion" if chat else "text_completion",
                         "model": body.get("model"), "choices": [choice],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})

    @staticmethod
    def _logprobs(body, chat, tokens, logprobs):
        if chat and body.get("logprobs"):
            return {"content": [{"token": t, "logprob": p, "top_logprobs": []} for t, p in zip(tokens, logprobs)]}
        if not chat and body.get("logprobs") is not None:
            return {"tokens": list(tokens), "token_logprobs": list(logprobs)}
        return None

    def _stream(self, body, chat):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for token, logprob in zip(TOKENS, LOGPROBS):
            choice = {"index": 0, "logprobs": self._logprobs(body, chat, (token,), (logprob,))}
            choice.update({"delta": {"content": token}} if chat else {"text": token})
            self.wfile.write(f"data: {json.dumps({'id': 'fake-1', 'choices': [choice]})}\n\n".encode())
            self.wfile.flush()
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
            self.wfile.write(f"data: {json.dumps({'id': 'fake-1', 'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="fake")
    args = parser.parse_args()
    Engine.model = args.model
    ThreadingHTTPServer(("127.0.0.1", args.port), Engine).serve_forever()


if __name__ == "__main__":
    main()
