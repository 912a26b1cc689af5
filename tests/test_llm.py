"""The LLM layer: content-addressed request keys, cassette replay, and the live/record path
against a real OpenAI-compatible server on loopback (tools.stub_server)."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from synthsmith.contract import tables
from synthsmith.contract.params import EndpointParams, LLMParams, UserError
from synthsmith.llm.cassette import Cassette
from synthsmith.llm.gateway import Gateway, ReplayMiss, shard_settings
from synthsmith.llm.requests import make_request, request_key
from tools.stub_server import StubServer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a sorting algorithm."}]


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=tables.LLM_REQUESTS.columns)


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# request_key

def test_request_key_is_a_sha256_hex_digest():
    key = request_key("m", MESSAGES, {"temperature": 0.2})
    assert len(key) == 64 and int(key, 16) >= 0


def test_request_key_ignores_sampling_dict_order():
    a = request_key("m", MESSAGES, {"temperature": 0.2, "max_tokens": 100, "seed": 3})
    b = request_key("m", MESSAGES, {"seed": 3, "max_tokens": 100, "temperature": 0.2})
    assert a == b


def test_request_key_ignores_message_fields_other_than_role_and_content():
    tagged = [dict(m, name="alice") for m in MESSAGES]
    assert request_key("m", tagged, {}) == request_key("m", MESSAGES, {})


def test_request_key_is_stable_across_processes():
    code = ("import json, sys; from synthsmith.llm.requests import request_key; "
            "m, msgs, s = json.loads(sys.argv[1]); print(request_key(m, msgs, s))")
    payload = json.dumps(["demo/model", MESSAGES, {"max_tokens": 100, "temperature": 0.2, "seed": 1}])
    other = subprocess.run([sys.executable, "-c", code, payload], check=True, capture_output=True, text=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""}).stdout.strip()
    assert other == request_key("demo/model", MESSAGES, {"temperature": 0.2, "seed": 1, "max_tokens": 100})


@pytest.mark.parametrize("model, messages, sampling", [
    ("other/model", MESSAGES, {"temperature": 0.2}),
    ("m", MESSAGES, {"temperature": 0.3}),
    ("m", MESSAGES, {"temperature": 0.2, "max_tokens": 10}),
    ("m", MESSAGES[:1] + [{"role": "user", "content": "Name a sorting algorithm!"}], {"temperature": 0.2}),
    ("m", [{"role": "user", "content": m["content"]} for m in MESSAGES], {"temperature": 0.2}),
    ("m", MESSAGES[1:], {"temperature": 0.2}),
])
def test_request_key_changes_with_model_messages_or_sampling(model, messages, sampling):
    assert request_key(model, messages, sampling) != request_key("m", MESSAGES, {"temperature": 0.2})


# make_request

def test_make_request_keys_on_seed_and_drops_unset_sampling():
    first = make_request("m", MESSAGES, temperature=0.8, seed=0)
    second = make_request("m", MESSAGES, temperature=0.8, seed=1)
    assert first["request_id"] != second["request_id"]
    assert first["request_id"] == request_key("m", MESSAGES, {"temperature": 0.8, "seed": 0})
    assert json.loads(first["sampling"]) == {"temperature": 0.8, "seed": 0}
    assert make_request("m", MESSAGES, temperature=0.8, seed=None) == make_request("m", MESSAGES, temperature=0.8)


def test_make_request_rows_conform_to_the_contract():
    frame = tables.conform(_frame([make_request("m", MESSAGES, temperature=0.1)]), tables.LLM_REQUESTS)
    assert frame["messages"][0].to_list() == MESSAGES


# replay

def _replay(tmp_path, **extra) -> Gateway:
    return Gateway(LLMParams(mode="replay", cassette="cassette.jsonl", cache_dir="cache", **extra), tmp_path)


def test_replay_answers_from_the_cassette_in_request_order(tmp_path, llm_request):
    asks = [llm_request("What is 2+2?", temperature=0.0), llm_request("Capital of France?", temperature=0.0)]
    cassette = Cassette(tmp_path / "cassette.jsonl")
    for ask, answer in zip(asks, ["4", "Paris"]):
        cassette.append(ask["request_id"], ask["model"], ask["messages"], json.loads(ask["sampling"]), answer,
                        author="test")
    answers = _replay(tmp_path).complete(_frame(asks[::-1] + asks[:1]))
    assert answers.columns == list(tables.LLM_RESPONSES.columns)
    assert answers["request_id"].to_list() == [asks[1]["request_id"], asks[0]["request_id"], asks[0]["request_id"]]
    assert answers["content"].to_list() == ["Paris", "4", "4"]
    assert answers["error"].null_count() == 3


def test_replay_miss_names_model_prompt_and_cassette_and_never_falls_back(tmp_path, llm_request):
    with StubServer(lambda model, messages, sampling: "live answer") as server:
        gateway = _replay(tmp_path, endpoints={"default": EndpointParams(api_base=server.api_base)})
        ask = llm_request("Count the inversions of a permutation quickly.", model="demo/some-model")
        with pytest.raises(ReplayMiss) as caught:
            gateway.complete(_frame([ask]))
        assert server.requests == []
    message = str(caught.value)
    assert isinstance(caught.value, UserError)
    assert "demo/some-model" in message and "Count the inversions" in message
    assert str(tmp_path / "cassette.jsonl") in message


def test_replay_does_not_fall_back_to_the_live_response_cache(tmp_path, llm_request):
    from synthsmith.llm.cache import Answer, ResponseCache

    ask = llm_request("cached only")
    ResponseCache(tmp_path / "cache").put(ask["request_id"], ask["model"], Answer("from the cache", 1, 1, 0.0))
    with pytest.raises(ReplayMiss):
        _replay(tmp_path).complete(_frame([ask]))


def test_corrupted_cassette_line_names_file_and_line(tmp_path, llm_request):
    ask = llm_request("hello")
    path = tmp_path / "cassette.jsonl"
    Cassette(path).append(ask["request_id"], ask["model"], ask["messages"], {}, "hi", author="test")
    with path.open("a") as out:
        out.write('{"key": "abc", "response": \n')
    with pytest.raises(UserError, match=rf"{path}:2: not a cassette entry"):
        _replay(tmp_path).complete(_frame([ask]))


def test_cassette_entry_without_a_key_is_rejected(tmp_path, llm_request):
    path = tmp_path / "cassette.jsonl"
    path.write_text('\n{"response": "orphan"}\n')
    with pytest.raises(UserError, match=rf"{path}:2:"):
        _replay(tmp_path).complete(_frame([llm_request("hello")]))


def test_shard_settings_digest_follows_the_cassette(tmp_path):
    path = tmp_path / "cassette.jsonl"
    path.write_text('{"key": "a", "response": "x"}\n')
    params = LLMParams(mode="replay", cassette=str(path))
    first = shard_settings(params)
    path.write_text('{"key": "a", "response": "y"}\n')
    second = shard_settings(params)
    assert first["cassette_digest"] != second["cassette_digest"]
    assert first["llm"] == params.model_dump()
    assert shard_settings(params.model_copy(update={"mode": "live"}))["cassette_digest"] is None


# live and record, against one loopback server for the module (importing litellm is slow)

def _respond(model: str, messages: list[dict], sampling: dict) -> str:
    prompt = messages[-1]["content"]
    if prompt.startswith("FAIL"):
        raise RuntimeError("server is on fire")
    return f"echo[{model}|seed={sampling.get('seed')}]: {prompt}"


@pytest.fixture(scope="module")
def server():
    with StubServer(_respond) as stub:
        yield stub


def _live(tmp_path, server, mode: str = "live") -> Gateway:
    endpoint = EndpointParams(api_base=server.api_base, timeout_s=30, concurrency=2)
    return Gateway(LLMParams(mode=mode, cassette="cassette.jsonl", cache_dir="cache", max_retries=0,
                             endpoints={"default": endpoint}), tmp_path)


def test_live_answers_then_serves_repeats_from_the_durable_cache(tmp_path, server, llm_request):
    asks = _frame([llm_request("alpha", seed=0), llm_request("alpha", seed=1), llm_request("beta")])
    start = len(server.requests)
    answers = _live(tmp_path, server).complete(asks)
    assert answers["content"].to_list() == ["echo[test/model|seed=0]: alpha", "echo[test/model|seed=1]: alpha",
                                            "echo[test/model|seed=None]: beta"]
    assert answers["error"].null_count() == 3
    assert len(server.requests) - start == 3
    assert {r["messages"][-1]["content"] for r in server.requests[start:]} == {"alpha", "beta"}

    again = _live(tmp_path, server).complete(asks)  # a fresh gateway: the cache lives on disk
    assert len(server.requests) - start == 3
    assert again["content"].equals(answers["content"])
    assert answers["source"].to_list() == ["live"] * 3 and again["source"].to_list() == ["cache"] * 3
    assert not (tmp_path / "cassette.jsonl").exists()  # live mode never writes the cassette


def test_server_error_becomes_an_error_row_and_is_not_cached(tmp_path, server, llm_request):
    asks = _frame([llm_request("FAIL please"), llm_request("fine")])
    start = len(server.requests)
    answers = _live(tmp_path, server).complete(asks)
    assert answers["content"].to_list() == [None, "echo[test/model|seed=None]: fine"]
    error = answers["error"][0]
    assert error is not None and answers["error"][1] is None
    _live(tmp_path, server).complete(asks[:1])
    assert len(server.requests) - start == 3  # the failed request is asked again, the good one is not


def test_record_writes_the_cassette_that_replay_then_answers(tmp_path, server, llm_request):
    asks = _frame([llm_request("gamma", model="demo/recorded", temperature=0.5)])
    recorded = _live(tmp_path, server, mode="record").complete(asks)
    lines = (tmp_path / "cassette.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["key"] == asks["request_id"][0]
    assert entry["model"] == "demo/recorded" and entry["sampling"] == {"temperature": 0.5}
    assert entry["messages"] == _user("gamma") and entry["response"] == recorded["content"][0]

    before = len(server.requests)
    replayed = _replay(tmp_path).complete(asks)
    assert replayed["content"].to_list() == ["echo[demo/recorded|seed=None]: gamma"]
    assert len(server.requests) == before
