"""A minimal OpenAI-compatible chat-completions server on loopback, answering with a function.

Used to exercise the live path for real (tests, and building the demo cassette through litellm)
without any network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Responder = Callable[[str, list[dict], dict], str]


class StubServer:
    """`with StubServer(respond) as server:` then point `llm.api_base` at `server.api_base`."""

    def __init__(self, respond: Responder, served_model: str = "stub", host: str = "127.0.0.1"):
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                sampling = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
                try:
                    content = respond(body["model"], body["messages"], sampling)
                except Exception as exc:  # noqa: BLE001 - reported to the client as a 500
                    self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
                    return
                self._send(200, {
                    "id": f"stub-{len(stub.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": served_model, "choices": [{"index": 0, "finish_reason": "stop",
                                                        "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.api_base = f"http://{host}:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "StubServer":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
