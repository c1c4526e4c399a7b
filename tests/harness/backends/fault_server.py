"""A real local HTTP server that speaks enough of the OpenAI API for the harness and injects
transport faults on a schedule: 429 with Retry-After, 500, 503, an answer slower than the
client's timeout, malformed JSON, an empty content, a reset connection, a content-filter refusal.
It answers with a readable decision otherwise, and records every request it saw."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "503", "slow", "malformed", "empty", "reset", "refuse")


class FaultServer:
    """`faults(n, body)` -> the fault for the n-th chat/completions request (0-based), or None to
    answer. `answer(body)` -> the text of a normal answer."""

    def __init__(self, faults: Callable[[int, dict], str | None] = lambda n, body: None,
                 answer: Callable[[dict], str] = lambda body: "I will stop.\nFinal Decision: Stop",
                 slow_s: float = 2.0, retry_after_s: float = 0.3, api_key: str | None = None,
                 port: int = 0):
        self.faults, self.answer, self.slow_s, self.retry_after_s = faults, answer, slow_s, retry_after_s
        self.api_key = api_key
        self.lock = threading.Lock()
        self.received: list[dict] = []  # every completion request's body, in order
        self.outcomes: list[str] = []  # 'ok' or the fault, per received request
        self.headers_seen: list[dict[str, str]] = []
        self.fault_times: dict[int, float] = {}
        self.answer_times: dict[int, float] = {}
        self.connections: set[socket.socket] = set()
        self.dead = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> FaultServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """The endpoint dies: the listening socket closes (new connections are refused) and open
        keep-alive connections are cut."""
        self.dead = True
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def count(self, outcome: str) -> int:
        with self.lock:
            return self.outcomes.count(outcome)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server.connections.add(self.connection)

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout) or the endpoint died: nothing to answer

            def finish(self) -> None:
                with server.lock:
                    server.connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    model = {"id": "fault-model", "object": "model", "created": 0, "owned_by": "test"}
                    self._send(200, json.dumps({"object": "list", "data": [model]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                if server.dead:
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                key = server.api_key
                if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
                    self._send(401, b'{"error": {"message": "bad key"}}')
                    return
                with server.lock:
                    n = len(server.received)
                    server.received.append(body)
                    server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                    fault = server.faults(n, body)
                    server.outcomes.append(fault or "ok")
                    (server.fault_times if fault else server.answer_times)[n] = time.monotonic()
                chat = self.path.endswith("/chat/completions")
                if fault == "429":
                    self._send(429, b'{"error": {"message": "slow down"}}',
                               {"Retry-After": str(server.retry_after_s)})
                elif fault in ("500", "503"):
                    self._send(int(fault), b'{"error": {"message": "server trouble"}}')
                elif fault == "slow":
                    time.sleep(server.slow_s)
                    self._send(200, _completion(body, server.answer(body), chat))
                elif fault == "malformed":
                    self._send(200, b'{"id": "x", "choices": [ {"index": 0, "mess')
                elif fault == "reset":
                    # close at once with RST: the client sees a reset connection, no answer
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                elif fault == "empty":
                    self._send(200, _completion(body, "", chat))
                elif fault == "refuse":
                    self._send(200, _completion(body, "", chat, finish="content_filter"))
                else:
                    self._send(200, _completion(body, server.answer(body), chat))

        return Handler


def _completion(body: dict, text: str, chat: bool, finish: str = "stop") -> bytes:
    usage = {"prompt_tokens": 50, "completion_tokens": max(len(text.split()), 1), "total_tokens": 51}
    common = {"id": "cmpl-1", "created": 0, "model": "fault-model-2026", "system_fingerprint": "fp_test",
              "usage": usage}
    if chat:
        message = {"role": "assistant", "content": text}
        return json.dumps(common | {"object": "chat.completion", "choices": [
            {"index": 0, "message": message, "finish_reason": finish}]}).encode()
    return json.dumps(common | {"object": "text_completion", "choices": [
        {"index": 0, "text": text, "finish_reason": finish}]}).encode()
