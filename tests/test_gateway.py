"""The live gateway against a real loopback server that misbehaves on purpose: the fault matrix,
limits, re-asks, cost and budget, and a SIGKILL halfway through a stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from synthsmith.contract import tables
from synthsmith.contract.params import EndpointParams, LLMParams, ModelParams
from synthsmith.llm.answers import Rejected
from synthsmith.llm.cache import ResponseCache
from synthsmith.llm.gateway import BudgetExceeded, Gateway, usage
from synthsmith.llm.requests import make_request
from tools.stub_server import StubServer

MODEL = "test/model"
FREE = {MODEL: ModelParams(input_usd_per_mtok=0, output_usd_per_mtok=0)}  # no litellm import for prices


def echo(model: str, messages: list[dict], sampling: dict) -> str:
    return f"answer to {messages[-1]['content']}"


def asks(*prompts: str, **sampling) -> pl.DataFrame:
    rows = [make_request(MODEL, [{"role": "user", "content": p}], **sampling) for p in prompts]
    return pl.DataFrame(rows, schema=tables.LLM_REQUESTS.columns)


def gateway(tmp_path, server, transport="auto", **llm) -> Gateway:
    endpoint = EndpointParams(api_base=server.api_base, transport=transport,
                              **{k: llm.pop(k) for k in ("timeout_s", "concurrency", "rpm", "tpm") if k in llm})
    params = {"mode": "live", "cache_dir": "cache", "progress": False, "max_retries": 3, "models": FREE} | llm
    return Gateway(LLMParams(endpoints={"default": endpoint}, **params), tmp_path)


@pytest.mark.parametrize("fault", ["429", "500", "503", "slow", "drop", "malformed", "empty"])
def test_each_transient_fault_is_retried_and_recovered(tmp_path, fault):
    with StubServer(echo, faults={1: fault}, retry_after_s=0.3, slow_s=2.0) as server:
        start = time.monotonic()
        row = gateway(tmp_path, server, timeout_s=0.5).complete(asks("one")).to_dicts()[0]
        elapsed = time.monotonic() - start
        assert server.faults_served == [(1, fault)] and len(server.requests) == 2
    assert (row["content"], row["error"], row["retries"], row["source"]) == ("answer to one", None, 1, "live")
    if fault == "429":
        assert elapsed >= 0.3  # Retry-After honoured, not just the backoff


@pytest.mark.parametrize("fault", ["400", "401"])
def test_a_request_that_cannot_succeed_fails_fast_with_the_servers_message(tmp_path, fault):
    with StubServer(echo, faults=lambda n, body: fault) as server:
        row = gateway(tmp_path, server).complete(asks("one")).to_dicts()[0]
        assert len(server.requests) == 1  # no retry
    assert row["content"] is None and row["retries"] == 0
    assert row["error"].startswith(f"rejected: http {fault}") and "stub fault" in row["error"]


@pytest.mark.slow
def test_a_fault_that_persists_is_reported_after_the_retries_and_not_cached(tmp_path):
    with StubServer(echo, faults=lambda n, body: "503") as server:
        rows = gateway(tmp_path, server, max_retries=2).complete(asks("one", "two")).to_dicts()
        assert len(server.requests) == 6  # 2 requests x (1 + 2 retries)
    assert [r["error"] for r in rows] == ["failed after retries: http 503"] * 2
    assert [r["retries"] for r in rows] == [2, 2]
    assert ResponseCache(tmp_path / "cache").get_many([r["request_id"] for r in rows]) == {}


@pytest.mark.slow
def test_litellm_transport_is_sorted_into_the_same_retry_and_fail_fast_paths(tmp_path):
    with StubServer(echo, faults={1: "503", 3: "401"}) as server:
        first = gateway(tmp_path, server, transport="litellm").complete(asks("one")).to_dicts()[0]
        second = gateway(tmp_path, server, transport="litellm").complete(asks("two")).to_dicts()[0]
        assert len(server.requests) == 3
    assert (first["content"], first["retries"]) == ("answer to one", 1)
    assert second["content"] is None and second["error"].startswith("rejected: AuthenticationError")


def test_concurrency_is_bounded_per_endpoint(tmp_path):
    with StubServer(echo, latency_s=0.2) as server:
        start = time.monotonic()
        gateway(tmp_path, server, concurrency=2).complete(asks(*(f"q{i}" for i in range(6))))
        assert time.monotonic() - start >= 0.6 - 0.05  # 6 calls, 2 at a time, 0.2 s each


@pytest.mark.slow
def test_requests_per_minute_limit_spaces_calls_after_the_burst(tmp_path):
    with StubServer(echo) as server:
        start = time.monotonic()
        rows = gateway(tmp_path, server, rpm=60, concurrency=64).complete(asks(*(f"q{i}" for i in range(62))))
        elapsed = time.monotonic() - start
    assert rows["error"].null_count() == 62
    assert elapsed >= 1.9  # a bucket of 60, then one call per second


def test_format_failure_is_reasked_with_the_reason_and_a_persistent_one_is_recorded(tmp_path):
    def respond(model, messages, sampling):
        prompt = messages[0]["content"]
        if len(messages) == 1 or prompt == "stubborn":
            return "no json here"
        assert "missing_json" in messages[-1]["content"]  # the re-ask says what was wrong
        return '{"ok": true}'

    def needs_json(content: str) -> None:
        if not content.startswith("{"):
            raise Rejected("missing_json")

    with StubServer(respond) as server:
        rows = gateway(tmp_path, server).complete(asks("fixable", "stubborn"), needs_json, reask=2).to_dicts()
        assert len(server.requests) == 1 + 1 + 3
    fixed, stubborn = rows
    assert (fixed["content"], fixed["attempts"], fixed["format_error"]) == ('{"ok": true}', 2, None)
    assert (stubborn["content"], stubborn["attempts"], stubborn["format_error"]) == ("no json here", 3, "missing_json")
    assert stubborn["error"] is None  # the stage's parser counts it under its own reason


def test_a_reask_carries_the_validators_detail_and_the_row_keeps_the_short_reason(tmp_path):
    from synthsmith.stages.extract_features import check_extraction

    reasks = []

    def respond(model, messages, sampling):
        if len(messages) == 1:
            return '{"algorithm": {"searching": ["binary search"]}}\n<end>'
        reasks.append(messages[-1]["content"])
        return "still nothing"

    with StubServer(respond) as server:
        row = gateway(tmp_path, server).complete(asks("features?"), check_extraction, reask=1).to_dicts()[0]
    assert (row["attempts"], row["format_error"]) == (2, "missing_markers")  # the column keeps the key
    assert reasks == ["Your previous answer could not be used (missing_markers): the answer must put the JSON "
                      "object between a line <begin> and a line <end>; it had <end> but no <begin> before it.\n"
                      "Answer the original request again, and follow the format it asks for exactly."]


def test_tokens_and_cost_per_call_from_the_price_override(tmp_path):
    prices = {MODEL: ModelParams(input_usd_per_mtok=2.0, output_usd_per_mtok=10.0)}
    with StubServer(echo) as server:
        row = gateway(tmp_path, server, models=prices).complete(asks("count these four words")).to_dicts()[0]
    # The stub counts words: 4 in the prompt, "answer to count these four words" = 6 in the answer.
    assert (row["prompt_tokens"], row["completion_tokens"]) == (4, 6)
    assert row["cost_usd"] == pytest.approx(4 * 2e-6 + 6 * 10e-6)


def test_budget_stops_before_it_is_passed_and_a_rerun_continues_without_repeats(tmp_path):
    # $1 per token: each call is estimated at prompt (2) + max_tokens (4) = $6 and costs 2 + 4 = $6.
    prices = {MODEL: ModelParams(input_usd_per_mtok=1e6, output_usd_per_mtok=1e6)}
    requests = asks(*(f"question {i}" for i in range(5)), max_tokens=4)
    with StubServer(echo) as server:
        with pytest.raises(BudgetExceeded, match="budget_usd 20"):
            gateway(tmp_path, server, models=prices, budget_usd=20, concurrency=1).complete(requests)
        paid = len(server.requests)
        assert paid == 3 and ResponseCache(tmp_path / "cache").spent_usd() == 18 <= 20
        rows = gateway(tmp_path, server, models=prices, budget_usd=100, concurrency=1).complete(requests)
        asked = [r["messages"][0]["content"] for r in server.requests]
    assert rows["error"].null_count() == 5
    assert len(asked) == 5 and len(set(asked)) == 5  # the rerun asked only the two that were not paid for


def test_progress_line_shows_done_total_retries_and_spend(tmp_path, capsys):
    with StubServer(echo, faults={1: "500"}) as server:
        gateway(tmp_path, server, progress=True).complete(asks("a", "b", "c"))
    err = capsys.readouterr().err
    assert "3/3" in err and "retries=1" in err and "usd=" in err


KEY_IN_A_FRESH_PROCESS = """
import json, sys
from synthsmith.llm.requests import request_key
messages, sampling = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(request_key("m", messages, sampling))
"""


def test_cache_key_is_stable_across_processes_and_orderings_and_follows_sampling():
    messages = [{"content": "hi", "role": "user"}]
    here = make_request("m", [{"role": "user", "content": "hi"}], temperature=0.5, max_tokens=9)["request_id"]
    there = subprocess.run([sys.executable, "-c", KEY_IN_A_FRESH_PROCESS, json.dumps(messages),
                            json.dumps({"max_tokens": 9, "temperature": 0.5})],
                           capture_output=True, text=True, check=True, env=os.environ | {"PYTHONHASHSEED": "123"})
    assert there.stdout.strip() == here
    assert make_request("m", messages, temperature=0.6, max_tokens=9)["request_id"] != here


STAGE_IN_A_CHILD = """
import sys, polars as pl
from synthsmith.contract import tables
from synthsmith.llm.requests import make_request
from synthsmith.llm.gateway import Gateway
from synthsmith.contract.params import EndpointParams, LLMParams, ModelParams
api_base, root = sys.argv[1:]
params = LLMParams(mode="live", cache_dir="cache", progress=False, endpoints={"default": EndpointParams(
    api_base=api_base, concurrency=4)}, models={"test/model": ModelParams(input_usd_per_mtok=0, output_usd_per_mtok=0)})
rows = [make_request("test/model", [{"role": "user", "content": f"q{i}"}]) for i in range(40)]
Gateway(params, root).complete(pl.DataFrame(rows, schema=tables.LLM_REQUESTS.columns))
print("finished")
"""


@pytest.mark.slow
def test_sigkill_halfway_loses_no_completed_call_and_the_rerun_repeats_none(tmp_path):
    with StubServer(echo, latency_s=0.1) as server:
        child = subprocess.Popen([sys.executable, "-c", STAGE_IN_A_CHILD, server.api_base, str(tmp_path)],
                                 stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(server.requests) < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        before = [r["messages"][0]["content"] for r in server.requests]
        assert 16 <= len(before) < 40, "the child must die halfway"
        rows = [make_request(MODEL, [{"role": "user", "content": f"q{i}"}]) for i in range(40)]
        saved = ResponseCache(tmp_path / "cache").get_many([r["request_id"] for r in rows])
        saved_prompts = {f"q{i}" for i, r in enumerate(rows) if r["request_id"] in saved}
        assert len(saved_prompts) >= 8  # answered calls were committed as they came

        done = subprocess.run([sys.executable, "-c", STAGE_IN_A_CHILD, server.api_base, str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == "finished", done.stderr[-2000:]
        rerun = [r["messages"][0]["content"] for r in server.requests[len(before):]]
    assert not saved_prompts & set(rerun)  # nothing saved was asked again
    assert set(rerun) | saved_prompts == {f"q{i}" for i in range(40)}


WRITER = """
import sys
from synthsmith.llm.cache import Answer, ResponseCache
directory, name = sys.argv[1:]
cache = ResponseCache(directory)
for i in range(400):
    cache.put(f"{name}-{i}", "m", Answer(f"answer {name} {i}", 1, 1, 0.001))
"""


def test_concurrent_writers_do_not_corrupt_the_cache(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name]) for name in ("a", "b", "c")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    cache = ResponseCache(tmp_path)
    keys = [f"{name}-{i}" for name in "abc" for i in range(400)]
    found = cache.get_many(keys)
    assert len(found) == 1200 and found["b-399"].content == "answer b 399"
    assert cache.spent_usd() == pytest.approx(1.2)
    assert cache._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_no_requests_give_an_empty_response_table_without_calling_anyone(tmp_path):
    """What a stage sends when nothing upstream survived: an empty frame, columns or not."""
    with StubServer(echo) as server:
        for empty in (pl.DataFrame(), asks()):
            answered = gateway(tmp_path, server).complete(empty)
            assert answered.height == 0 and answered.columns == list(tables.LLM_RESPONSES.columns)
        assert server.requests == []


def test_usage_counts_calls_to_models_nobody_prices(tmp_path):
    with StubServer(echo) as server:
        answered = gateway(tmp_path, server).complete(asks("a", "b"))
    priced = usage("s", answered, LLMParams(mode="live", models=FREE))
    assert priced["unpriced_calls"].to_list() == [0]
    unpriced = usage("s", answered, LLMParams(mode="replay"))  # replay prices from params only
    assert unpriced["unpriced_calls"].to_list() == [2]


@pytest.mark.parametrize("json_output, expected", [
    ("json_object", {"type": "json_object", "schema": {"type": "object"}}),
    ("json_schema", {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}),
])
def test_a_model_with_json_output_is_sent_the_stages_schema_under_its_own_key(tmp_path, json_output, expected):
    schema = {"type": "object"}
    models = {MODEL: ModelParams(input_usd_per_mtok=0, output_usd_per_mtok=0, json_output=json_output)}
    with StubServer(lambda model, messages, sampling: '{"a": 1}') as server:
        plain = gateway(tmp_path, server).complete(asks("p"), schema=schema)  # FREE: json_output off
        constrained = gateway(tmp_path, server, models=models, cache_dir="c2", mode="record",
                              cassette="cassette.jsonl").complete(asks("p"), schema=schema)
        bodies = list(server.requests)
    assert "response_format" not in bodies[0] and bodies[1]["response_format"] == expected
    assert plain["request_id"].to_list() == constrained["request_id"].to_list()  # rows keep the stage's id
    recorded = [json.loads(line) for line in (tmp_path / "cassette.jsonl").read_text().splitlines()]
    assert recorded[0]["key"] != plain["request_id"][0]  # the cassette keys the request actually sent
    replayed = Gateway(LLMParams(mode="replay", cassette="cassette.jsonl", models=models), tmp_path).complete(
        asks("p"), schema=schema)
    assert replayed["content"].to_list() == ['{"a": 1}']
