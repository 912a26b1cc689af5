"""A small OpenAI-compatible chat-completions server on loopback, answering with a function.

Used to exercise the live path for real (tests, building the demo cassette through litellm, and the
gateway benchmark) without any network beyond 127.0.0.1. It runs on aiohttp in its own event loop on
a background thread, so hundreds of concurrent requests with injected latency cost no thread each.
It can also misbehave on purpose (see the FAULT_* kinds) to test retries, timeouts and error rows.

    with StubServer(respond, latency_s=0.1, faults={2: FAULT_429}) as server:
        ...  # point `llm.api_base` at `server.api_base`

    python -m tools.stub_server --latency 0.1   # prints {"api_base": ...}, serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
from collections.abc import Callable, Mapping

from aiohttp import web

Responder = Callable[[str, list[dict], dict], str]
"""`respond(model, messages, sampling) -> answer`; sampling is the body without model/messages/stream."""

FaultPicker = Callable[[int, dict], "str | None"]
"""`faults(request_number, body) -> kind or None`; request numbers count from 1 in arrival order."""

# Fault kinds. Each faulted request is still recorded in `.requests` and waits `latency_s` first;
# `respond` is not called for it (except for FAULT_SLOW, which answers normally in the end).
FAULT_429 = "429"              # 429 with a Retry-After header (`retry_after_s`) and an OpenAI error body
FAULT_500 = "500"              # 500 with an OpenAI error body
FAULT_503 = "503"              # 503 with an OpenAI error body
FAULT_400 = "400"              # 400 bad request, OpenAI error body (type invalid_request_error)
FAULT_401 = "401"              # 401 bad API key, OpenAI error body (code invalid_api_key)
FAULT_SLOW = "slow"            # waits a further `slow_s`, then answers normally: a client timeout fires
FAULT_DROP = "drop"            # closes the connection without sending a single byte of response
FAULT_MALFORMED = "malformed"  # 200, application/json, but the body is truncated JSON
FAULT_EMPTY = "empty"          # 200, a valid completion whose message content is ""
FAULT_KINDS = frozenset({FAULT_429, FAULT_500, FAULT_503, FAULT_400, FAULT_401,
                         FAULT_SLOW, FAULT_DROP, FAULT_MALFORMED, FAULT_EMPTY})

# status, message, type, code: shaped like what api.openai.com sends for each.
_ERRORS = {
    FAULT_429: (429, "Rate limit reached for requests (stub fault).", "requests", "rate_limit_exceeded"),
    FAULT_500: (500, "The server had an error while processing your request (stub fault).", "server_error", None),
    FAULT_503: (503, "The engine is currently overloaded, please try again later (stub fault).",
                "server_error", None),
    FAULT_400: (400, "Invalid request (stub fault).", "invalid_request_error", None),
    FAULT_401: (401, "Incorrect API key provided (stub fault).", "invalid_request_error", "invalid_api_key"),
}


# What misbehaving models send, for prompts that ask for JSON and for prompts that ask for code alike
# (`python -m tools.stub_server --junk` answers with them in turn; tests/test_robustness.py).
JUNK = {
    "empty": "",
    "prose": "I am sorry, but I am not able to help with that. Could you tell me more about the problem?",
    "partial_json": '{"algorithm": {"searching": ["binary search on the ans',
    "invalid_json": '{"breadth": [{"node": algorithm/graph, "siblings": [,]}], "depth": }',
    "code_for_json": "Here is the code:\n```python\nn = int(input())\nprint(n * 2)\n```",
    "json_for_code": '{"solution": "print(1)", "reasoning": "simple"}',
    "oversized": "lorem ipsum " * 40_000,
}


def junk_in_turn() -> Responder:
    """Each model's requests answered with the next kind of `JUNK`, in turn."""
    asked: dict[str, int] = {}

    def respond(model: str, messages: list[dict], sampling: dict) -> str:
        asked[model] = asked.get(model, 0) + 1
        return list(JUNK.values())[(asked[model] - 1) % len(JUNK)]

    return respond


def count_tokens(content: object) -> int:
    """Whitespace-separated words: crude, but it gives cost accounting realistic, checkable numbers."""
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        content = " ".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return len(content.split()) if isinstance(content, str) else 0


def _error(status: int, message: str, type_: str = "server_error", code: str | None = None,
           headers: dict | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": type_, "param": None, "code": code}},
                             status=status, headers=headers)


class StubServer:
    """`with StubServer(respond) as server:` then point `llm.api_base` at `server.api_base`.

    `faults` is a `FaultPicker` or a dict {request_number: kind}. `.requests` holds every received body
    (faulted ones too; a body that is not a JSON object gets a 400 and is neither kept nor numbered) and
    `.faults_served` every (request_number, kind) served, both in arrival order; only the server's loop
    thread appends to them. `respond` runs on that thread too, one call at a time. `record_requests=False` keeps no bodies, for long
    benchmark runs.
    """

    def __init__(self, respond: Responder, served_model: str = "stub", host: str = "127.0.0.1", *,
                 port: int = 0, latency_s: float = 0.0, faults: FaultPicker | Mapping[int, str] | None = None,
                 retry_after_s: float = 0.2, slow_s: float = 5.0, record_requests: bool = True):
        if isinstance(faults, Mapping):
            if unknown := set(faults.values()) - FAULT_KINDS:
                raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(FAULT_KINDS)}")
            table = dict(faults)
            faults = lambda number, body: table.get(number)  # noqa: E731
        self.respond, self.served_model, self.host = respond, served_model, host
        self.latency_s, self.retry_after_s, self.slow_s = latency_s, retry_after_s, slow_s
        self.requests: list[dict] = []
        self.faults_served: list[tuple[int, str]] = []
        self.port: int | None = None  # the real port, once started
        self._faults, self._wanted_port, self._record = faults, port, record_requests
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def api_base(self) -> str:
        if self.port is None:
            raise RuntimeError("StubServer is not running: use it as a context manager")
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> StubServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stub-server", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        finally:
            self._stop_loop()
            self.port = None

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)  # long prompts; aiohttp's default is 1 MiB
        app.router.add_post("/{path:.*}", self._handle)  # any path, as clients build it differently
        # No access log: it would be the costliest thing on the hot path. Handler cancellation: a
        # handler whose client hung up (say, timed out on FAULT_SLOW) stops instead of sleeping on past
        # __exit__. A short shutdown timeout: __exit__ never waits out slow_s for in-flight requests.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._wanted_port).start()
        self.port = self._runner.addresses[0][1]

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "request body is not a JSON object", "invalid_request_error")
        self._count += 1
        number = self._count
        if self._record:
            self.requests.append(body)
        try:
            kind = self._faults(number, body) if self._faults else None
            if kind is not None and kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
        except Exception as exc:  # noqa: BLE001 - reported to the client as a 500
            return _error(500, f"{type(exc).__name__}: {exc}")
        if kind is not None:
            self.faults_served.append((number, kind))

        delay = self.latency_s + (self.slow_s if kind == FAULT_SLOW else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)

        if kind == FAULT_DROP:
            if request.transport is not None:
                request.transport.close()
            # aiohttp sees the transport closing when it prepares this, writes nothing, drops it quietly.
            return web.Response()
        if kind == FAULT_MALFORMED:
            return web.Response(body=b'{"id": "stub-%d", "object": "chat.completion", "choices": [{"ind' % number,
                                content_type="application/json")
        if kind in _ERRORS:
            status, message, type_, code = _ERRORS[kind]
            headers = {"Retry-After": f"{self.retry_after_s:g}"} if kind == FAULT_429 else None
            return _error(status, message, type_, code, headers)
        try:
            if kind == FAULT_EMPTY:
                content = ""
            else:
                sampling = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
                content = self.respond(body["model"], body["messages"], sampling)
            return web.json_response(self._completion(number, body["messages"], content))
        except Exception as exc:  # noqa: BLE001 - reported to the client as a 500
            return _error(500, f"{type(exc).__name__}: {exc}")

    def _completion(self, number: int, messages: list[dict], content: str) -> dict:
        prompt_tokens = sum(count_tokens(m.get("content")) for m in messages)
        completion_tokens = count_tokens(content)
        return {
            "id": f"stub-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": self.served_model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def main(argv: list[str] | None = None) -> None:
    """Serve a fixed answer (for benchmarks that keep the server off the client's cores), or junk."""
    parser = argparse.ArgumentParser(prog="python -m tools.stub_server", description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every response waits")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--answer", default="stub answer", help="the content of every completion")
    parser.add_argument("--junk", action="store_true", help="answer each model with the kinds of JUNK in turn")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill (TERM) exits cleanly, like Ctrl-C
    respond = junk_in_turn() if args.junk else (lambda model, messages, sampling: args.answer)
    with StubServer(respond, host=args.host, port=args.port,
                    latency_s=args.latency, record_requests=False) as server:
        print(json.dumps({"api_base": server.api_base}), flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
