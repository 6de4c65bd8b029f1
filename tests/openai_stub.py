"""Dependency-free OpenAI-compatible chat-completions HTTP server for tests."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def _split_reply(text: str) -> list[str]:
    """Split text on spaces into pieces whose concatenation is the original text."""
    parts = text.split(" ")
    return [p + " " for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


class _Handler(BaseHTTPRequestHandler):
    """Request handler that delegates to the owning OpenAIStub."""

    protocol_version = "HTTP/1.1"
    server: _StubServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr logging."""

    def do_POST(self) -> None:
        """Handle POST /v1/chat/completions."""
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: dict[str, Any] = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"Unknown path {self.path}")
            return
        with stub.lock:
            stub.requests.append({"json": body, "headers": headers})
            fault = stub.faults.pop(0) if stub.faults else None
        if fault == "disconnect":
            self.close_connection = True  # return without writing: the socket closes with no response
            return
        if fault == "timeout":
            time.sleep(stub.timeout_sleep)
        elif isinstance(fault, int):
            self._send_error(fault, f"Injected fault {fault}")
            return
        if stub.require_key is not None and headers.get("authorization") != f"Bearer {stub.require_key}":
            self._send_error(401, "Incorrect API key provided")
            return
        if body.get("stream"):
            self._send_stream(body, stub.reply)
        else:
            self._send_completion(body, stub.reply)

    def _send_json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        """Write a JSON response with the given status."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str) -> None:
        """Write an OpenAI-style error body."""
        etype, code = _ERROR_TYPES.get(status, ("server_error", "server_error"))
        extra = {"retry-after": "0"} if status == 429 else {}
        self._send_json(status, {"error": {"message": message, "type": etype, "code": code}}, extra)

    def _send_completion(self, body: dict[str, Any], reply: str) -> None:
        """Write a non-streaming ChatCompletion."""
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(reply.split())
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "stub-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _send_stream(self, body: dict[str, Any], reply: str) -> None:
        """Write a server-sent-events stream of ChatCompletionChunks."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "stub-model"),
        }
        deltas: list[tuple[dict[str, str], str | None]] = [({"role": "assistant", "content": ""}, None)]
        deltas += [({"content": piece}, None) for piece in _split_reply(reply)]
        deltas.append(({}, "stop"))
        for delta, finish in deltas:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _StubServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its OpenAIStub."""

    daemon_threads = True
    stub: OpenAIStub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hangs up early (e.g. after a client-side timeout)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class OpenAIStub:
    """Context manager running a local OpenAI-compatible chat-completions server."""

    def __init__(self, reply: str = "Milvus stores data in segments [1].") -> None:
        """Configure the stub; the server starts on __enter__."""
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.faults: list[int | str] = []
        self.timeout_sleep = 2.0
        self.require_key: str | None = None
        self.lock = threading.Lock()
        self.base_url = ""
        self._server: _StubServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        """Start the server on 127.0.0.1 with an OS-chosen port."""
        self._server = _StubServer(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop and close the server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
