"""The loopback stub server (tools.stub_server) seen through real HTTP clients: answers and their
usage, injected latency under concurrency, every fault kind, and the `python -m` mode for benchmarks."""

from __future__ import annotations

import asyncio
import json
import re
import select
import subprocess
import sys
import time

import aiohttp
import httpx
import pytest

from tools.stub_server import (
    FAULT_400,
    FAULT_401,
    FAULT_429,
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    FAULT_EMPTY,
    FAULT_MALFORMED,
    FAULT_SLOW,
    StubServer,
)

MESSAGES = [{"role": "system", "content": "answer in words"},   # 3 words
            {"role": "user", "content": "count to four please"}]  # + 4 = 7 prompt tokens
ANSWER = "one two three four"  # 4 completion tokens


def _answer(model: str, messages: list[dict], sampling: dict) -> str:
    return ANSWER


def _post(server: StubServer, client: httpx.Client | None = None, timeout: float = 5.0, **body) -> httpx.Response:
    payload = {"model": "test/model", "messages": MESSAGES} | body
    return (client or httpx).post(f"{server.api_base}/chat/completions", json=payload, timeout=timeout)


def test_answers_with_the_responder_and_counts_usage_in_words():
    seen = []

    def respond(model, messages, sampling):
        seen.append((model, messages, sampling))
        return ANSWER

    with StubServer(respond, served_model="served") as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.api_base) and server.port > 0
        response = _post(server, temperature=0.5, seed=3)
    assert response.status_code == 200
    completion = response.json()
    assert completion["model"] == "served"
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
    assert completion["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert seen == [("test/model", MESSAGES, {"temperature": 0.5, "seed": 3})]
    assert server.requests == [{"model": "test/model", "messages": MESSAGES, "temperature": 0.5, "seed": 3}]
    assert server.faults_served == []


def test_latency_applies_to_each_request_but_concurrent_ones_overlap():
    # In flight at the server: arrived (the fault picker sees each arrival, before the latency) and
    # not yet answered (the responder runs after it). Served one at a time, it would never exceed 1.
    arrived, answered, in_flight = [], [], []

    def count_arrival(number, body):
        arrived.append(number)

    def respond(model, messages, sampling):
        in_flight.append(len(arrived) - len(answered))
        answered.append(model)
        return ANSWER

    async def twenty(api_base: str) -> list[float]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def one() -> float:
                start = time.perf_counter()
                response = await client.post(f"{api_base}/chat/completions",
                                             json={"model": "m", "messages": MESSAGES})
                assert response.json()["choices"][0]["message"]["content"] == ANSWER
                return time.perf_counter() - start
            return await asyncio.gather(*(one() for _ in range(20)))

    with StubServer(respond, latency_s=0.5, faults=count_arrival) as server:
        each = asyncio.run(twenty(server.api_base))
    assert min(each) >= 0.5  # every request waited the latency
    assert len(server.requests) == len(answered) == 20
    assert max(in_flight) == 20, in_flight  # all twenty were waiting out their latency at once


@pytest.mark.parametrize(("kind", "status", "type_", "code"), [
    (FAULT_429, 429, "requests", "rate_limit_exceeded"),
    (FAULT_500, 500, "server_error", None),
    (FAULT_503, 503, "server_error", None),
    (FAULT_400, 400, "invalid_request_error", None),
    (FAULT_401, 401, "invalid_request_error", "invalid_api_key"),
])
def test_error_faults_answer_their_status_with_an_openai_error_body(kind, status, type_, code):
    with StubServer(_answer, faults={2: kind}) as server, httpx.Client() as client:
        first, faulted, third = (_post(server, client, messages=[{"role": "user", "content": str(i)}])
                                 for i in range(3))
    assert first.status_code == third.status_code == 200
    assert faulted.status_code == status
    assert faulted.headers["content-type"].startswith("application/json")
    error = faulted.json()["error"]
    assert error["message"] and error["type"] == type_ and error["code"] == code
    assert ("retry-after" in faulted.headers) == (kind == FAULT_429)
    assert server.faults_served == [(2, kind)]
    assert [r["messages"][0]["content"] for r in server.requests] == ["0", "1", "2"]  # faulted ones too


def test_429_retry_after_is_the_configured_seconds_as_a_string():
    with StubServer(_answer, faults={1: FAULT_429}, retry_after_s=1.5) as server:
        assert _post(server).headers["Retry-After"] == "1.5"
    with StubServer(_answer, faults={1: FAULT_429}) as server:
        assert _post(server).headers["Retry-After"] == "0.2"


def test_a_fault_callable_sees_request_numbers_in_arrival_order_and_the_body():
    calls = []

    def faults(number, body):
        calls.append((number, body["messages"][-1]["content"]))
        return FAULT_503 if body["messages"][-1]["content"] == "fail" else None

    with StubServer(_answer, faults=faults) as server, httpx.Client() as client:
        statuses = [_post(server, client, messages=[{"role": "user", "content": c}]).status_code
                    for c in ("ok", "fail", "ok", "fail")]
    assert statuses == [200, 503, 200, 503]
    assert calls == [(1, "ok"), (2, "fail"), (3, "ok"), (4, "fail")]
    assert server.faults_served == [(2, FAULT_503), (4, FAULT_503)]


def test_slow_outlasts_a_shorter_client_timeout_and_does_not_hold_up_the_rest():
    answered, cancelled = [], []

    def respond(model, messages, sampling):
        answered.append(messages[-1]["content"])
        return ANSWER

    class Watched(StubServer):
        async def _handle(self, request):  # records a handler interrupted while it waits
            try:
                return await super()._handle(request)
            except asyncio.CancelledError:
                cancelled.append(request.path)
                raise

    with Watched(respond, faults={1: FAULT_SLOW}, slow_s=60.0) as server, httpx.Client() as client:
        with pytest.raises(httpx.ReadTimeout):
            _post(server, client, timeout=0.3, messages=[{"role": "user", "content": "slow"}])
        # Answered while the slow one still waits (it has 60 s to go): it did not hold this one up.
        response = _post(server, client, timeout=30, messages=[{"role": "user", "content": "quick"}])
        assert response.json()["choices"][0]["message"]["content"] == ANSWER
        assert answered == ["quick"]
        deadline = time.monotonic() + 30  # the client hung up: its handler stops, not sleeps on
        while not cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cancelled, "the slow request's handler was not interrupted after its client hung up"
    # Shutdown did not wait out slow_s: the slow request was never answered.
    assert answered == ["quick"]
    assert server.faults_served == [(1, FAULT_SLOW)]


def test_slow_answers_normally_for_a_patient_client():
    with StubServer(_answer, faults={1: FAULT_SLOW}, slow_s=0.3) as server:
        start = time.perf_counter()
        response = _post(server)
    assert time.perf_counter() - start >= 0.3
    assert response.json()["choices"][0]["message"]["content"] == ANSWER


def test_drop_closes_the_connection_without_a_response():
    async def aiohttp_post(api_base: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{api_base}/chat/completions", json={"model": "m", "messages": MESSAGES}):
                pass

    with StubServer(_answer, faults={1: FAULT_DROP, 3: FAULT_DROP}) as server, httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
            _post(server, client)
        assert _post(server, client).status_code == 200  # the client's pool moves on to a fresh connection
        with pytest.raises(aiohttp.ServerDisconnectedError):
            asyncio.run(aiohttp_post(server.api_base))
    assert server.faults_served == [(1, FAULT_DROP), (3, FAULT_DROP)]
    assert len(server.requests) == 3


def test_malformed_is_a_200_json_response_that_does_not_parse():
    with StubServer(_answer, faults={1: FAULT_MALFORMED}) as server:
        response = _post(server)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_empty_is_a_valid_completion_with_empty_content():
    with StubServer(_answer, faults={1: FAULT_EMPTY}) as server:
        response = _post(server)
    assert response.status_code == 200
    completion = response.json()
    assert completion["choices"][0]["message"]["content"] == ""
    assert completion["usage"] == {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}


def test_a_raising_responder_or_an_unknown_fault_kind_is_a_500_with_the_message():
    def respond(model, messages, sampling):
        raise RuntimeError("server is on fire")

    with StubServer(respond) as server:
        response = _post(server)
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "RuntimeError: server is on fire"

    with StubServer(_answer, faults=lambda number, body: "teapot") as server:
        response = _post(server)
    assert response.status_code == 500 and "teapot" in response.json()["error"]["message"]
    with pytest.raises(ValueError, match="teapot"):
        StubServer(_answer, faults={1: "teapot"})


def test_api_base_needs_a_running_server():
    server = StubServer(_answer)
    with pytest.raises(RuntimeError):
        server.api_base  # noqa: B018
    with server:
        assert server.api_base
    with pytest.raises(RuntimeError):
        server.api_base  # noqa: B018


def test_main_prints_the_api_base_line_then_serves_until_killed():
    process = subprocess.Popen([sys.executable, "-m", "tools.stub_server", "--latency", "0.05",
                                "--answer", "fixed answer"], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "no api_base line within 30 s"
        line = process.stdout.readline()
        api_base = json.loads(line)["api_base"]
        assert line == json.dumps({"api_base": api_base}) + "\n"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", api_base)
        start = time.perf_counter()
        response = httpx.post(f"{api_base}/chat/completions", json={"model": "m", "messages": MESSAGES}, timeout=5)
        assert time.perf_counter() - start >= 0.05
        completion = response.json()
        assert completion["choices"][0]["message"]["content"] == "fixed answer"
        assert completion["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0  # SIGTERM shuts it down cleanly
    assert process.stdout.read() == ""  # exactly one line on stdout
    process.stdout.close()
