"""Answer a table of requests: from the cassette (replay), or from live models (live/record).

Every request gets exactly one LLM_RESPONSES row (content xor error), checked before returning.
Live calls: bounded concurrency and rpm/tpm limits per endpoint, retries with jittered backoff
that honour Retry-After on transient faults, fail-fast on requests that cannot succeed, a durable
row-by-row cache (`cache.ResponseCache`), cost per call, and a hard budget stop. An answer that
fails the stage's format check (`validator`) is re-asked with the reason, a bounded number of
times; a re-ask is a request of its own, so it is cached, recorded and replayed like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import LLMParams, UserError
from synthsmith.llm import pricing
from synthsmith.llm.cache import Answer, ResponseCache
from synthsmith.llm.cassette import Cassette
from synthsmith.llm.limits import EndpointLimits, retrying
from synthsmith.llm.prompts import render
from synthsmith.llm.requests import request_key
from synthsmith.llm.transport import FatalError, TransientError, make_transport

log = logging.getLogger(__name__)
# Rendered inside a shard (a re-ask), so shard cache keys and the stages' DVC deps cover it.
CODE_FILES = (Path(__file__).resolve().parents[1] / "prompts" / "reask.j2",)
Validator = Callable[[str], object]  # raises answers.Rejected (with a reason) when the format is wrong


class ReplayMiss(UserError):
    """A request the cassette has no answer for; replay never falls back to anything else."""


class BudgetExceeded(UserError):
    """The next call could pass llm.budget_usd: nothing more is sent; what was answered is cached."""


class Gateway:
    def __init__(self, params: LLMParams, project_root: str | Path = ".", progress_label: str = "llm",
                 use_cache: bool = True):
        self.params = params
        root = Path(project_root)
        self.cassette = Cassette(root / params.cassette)
        self._cache_dir = root / params.cache_dir
        self.label = progress_label
        self.use_cache = use_cache  # off only for benchmarks: every request goes to the server
        self.stats: dict[str, float] = {}  # of the last `complete`: retries, first_sent, last_answer

    def complete(self, requests: pl.DataFrame, validator: Validator | None = None, reask: int = 0,
                 schema: dict | None = None) -> pl.DataFrame:
        """LLM_REQUESTS -> LLM_RESPONSES, one row per request, in order. `schema`: the JSON Schema of
        the answer, sent to models whose `json_output` is on."""
        if requests.height == 0:  # nothing upstream survived: no columns to check, nothing to ask
            return tables.LLM_RESPONSES.empty()
        rows = tables.conform(requests, tables.LLM_REQUESTS).to_dicts()
        run = _Run(self, validator, reask, schema)
        answers = asyncio.run(run.all(rows))
        self.stats = {"retries": run.progress.retries, "first_sent": run.first_sent, "last_answer": run.last_answer}
        if len(answers) != len(rows) or any((a["content"] is None) == (a["error"] is None) for a in answers):
            raise RuntimeError(f"llm gateway lost track: {len(rows)} requests in, {len(answers)} rows out, "
                               "or a row with neither (or both) content and error")
        return tables.conform(pl.DataFrame(answers, schema=tables.LLM_RESPONSES.columns), tables.LLM_RESPONSES)


class _Run:
    """One `complete` call: its transports, limits, cache and progress."""

    def __init__(self, gateway: Gateway, validator: Validator | None, reask: int, schema: dict | None):
        self.gateway, self.params, self.validator, self.reask = gateway, gateway.params, validator, reask
        self.schema = schema
        self.live = self.params.mode != "replay"
        self.cache = (ResponseCache(gateway._cache_dir) if gateway.use_cache else _NoCache()) if self.live else None
        self.first_sent, self.last_answer = float("inf"), 0.0
        self.transports: dict[str, object] = {}
        self.limits: dict[str, EndpointLimits] = {}
        self.spent = self.cache.spent_usd() if self.cache else 0.0
        self.reserved = 0.0
        self.stopped: BudgetExceeded | None = None
        self.progress = None

    async def all(self, rows: list[dict]) -> list[dict]:
        asked = [self.asked_as(row) for row in rows]
        cached = self.cache.get_many([key for key, _ in asked]) if self.cache else {}
        self.progress = _Progress(len(rows), self.gateway.label, self.params.progress and self.live)
        try:
            answers = await asyncio.gather(*(self.answer(row, key, sampling, cached.get(key))
                                             for row, (key, sampling) in zip(rows, asked, strict=True)))
        finally:
            for transport in self.transports.values():
                await transport.close()
            self.progress.close()
            if self.cache:
                self.cache.close()
        if self.stopped:
            raise self.stopped
        return answers

    def asked_as(self, row: dict) -> tuple[str, dict]:
        """The key and sampling a request is sent with: the stage's own, plus the server-side JSON
        constraint for a model with `json_output` on (another request, so another key)."""
        sampling, mode = _sampling(row["sampling"]), self.params.model(row["model"]).json_output
        if self.schema is None or mode == "off":
            return row["request_id"], sampling
        sampling["response_format"] = response_format(mode, self.schema)
        return request_key(row["model"], row["messages"], sampling), sampling

    async def answer(self, row: dict, key: str, sampling: dict, cached: Answer | None) -> dict:
        """Ask, check the format, re-ask with the reason while attempts remain."""
        model, messages = row["model"], row["messages"]
        out = {"request_id": row["request_id"], "model": model, "content": None, "error": None, "source": None,
               "attempts": 0,
               "retries": 0, "format_error": None, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        for attempt in range(self.reask + 1):
            try:
                answer, source, retries = await self.one(key, model, messages, sampling,
                                                         cached if attempt == 0 else None)
            except (TransientError, FatalError) as exc:
                out |= {"content": None, "error": _reason(exc), "source": "live", "format_error": None,
                        "retries": out["retries"] + getattr(exc, "retries", 0)}
                break
            out["retries"] += retries
            out |= {"content": answer.content, "source": source, "attempts": attempt + 1,
                    "prompt_tokens": out["prompt_tokens"] + answer.prompt_tokens,
                    "completion_tokens": out["completion_tokens"] + answer.completion_tokens,
                    "cost_usd": out["cost_usd"] + answer.cost_usd}
            rejection = _check(self.validator, answer.content)
            out["format_error"] = rejection and rejection[0]
            if rejection is None:
                break
            messages = [*messages, {"role": "assistant", "content": answer.content},
                        *render("reask", reason=rejection[0], detail=rejection[1])]
            key = request_key(model, messages, sampling)
        self.progress.update(1)
        return out

    async def one(self, key: str, model: str, messages: list[dict], sampling: dict,
                  cached: Answer | None) -> tuple[Answer, str, int]:
        """(answer, source, retries) for one request, from cassette, cache or a live call."""
        if not self.live:
            return self.replay(key, model, messages, sampling), "cassette", 0
        cached = cached or self.cache.get(key)
        if cached is not None:
            return cached, "cache", 0
        endpoint_name, endpoint = self.params.endpoint_of(model)
        limits = self.limits.setdefault(endpoint_name, EndpointLimits(endpoint))
        price = pricing.price(self.params, model, live=True)
        prompt_tokens, max_tokens = pricing.estimate_tokens(messages), int(sampling.get("max_tokens") or 0)
        estimate = price.cost(prompt_tokens, max_tokens)
        retries = 0

        def count_retry(_state) -> None:
            nonlocal retries
            retries += 1
            self.progress.retries += 1

        async with limits.slot(prompt_tokens + max_tokens):
            self.reserve(estimate)
            try:
                async for step in retrying(self.params.max_retries, count_retry):
                    with step:
                        self.first_sent = min(self.first_sent, time.monotonic())
                        reply = await self.transport(endpoint_name, endpoint).send(model, messages, sampling)
                        self.last_answer = time.monotonic()
            except (TransientError, FatalError) as exc:
                exc.retries = retries  # the row reports them, success or not
                raise
            finally:
                self.reserved -= estimate
        answer = Answer(reply.content, reply.prompt_tokens, reply.completion_tokens,
                        price.cost(reply.prompt_tokens, reply.completion_tokens))
        self.cache.put(key, model, answer)  # committed before anything else can fail
        self.spent += answer.cost_usd
        self.progress.spend(self.spent)
        if self.params.mode == "record":
            self.gateway.cassette.append(key, model, messages, sampling, answer.content,
                                         author=f"recorded live from {reply.served_model}",
                                         usage={"prompt_tokens": answer.prompt_tokens,
                                                "completion_tokens": answer.completion_tokens})
        return answer, "live", retries

    def reserve(self, estimate: float) -> None:
        budget = self.params.budget_usd
        if self.stopped or (budget is not None and self.spent + self.reserved + estimate > budget):
            self.stopped = self.stopped or BudgetExceeded(
                f"llm.budget_usd {budget} reached: ${self.spent:.4f} spent in {self.params.cache_dir}, the next "
                f"call could cost ${estimate:.4f}; answered calls are cached, raise the budget and rerun to continue")
            raise FatalError("budget")
        self.reserved += estimate

    def replay(self, key: str, model: str, messages: list[dict], sampling: dict) -> Answer:
        entry = self.gateway.cassette.entry(key)
        if entry is None:
            raise ReplayMiss(
                f"replay miss: {self.gateway.cassette.path} has no answer for request {key[:16]} "
                f"(model {model}, sampling {json.dumps(sampling)[:200]}, "
                f"prompt starts {messages[-1]['content'][:160]!r}). "
                "Use the shipped params, or set llm.mode: record with a live model to add it.")
        usage = entry.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or pricing.estimate_tokens(messages))
        completion = int(usage.get("completion_tokens") or pricing.estimate_tokens([entry]))
        return Answer(entry["response"], prompt, completion,
                      pricing.price(self.params, model, live=False).cost(prompt, completion))

    def transport(self, name: str, endpoint):
        if name not in self.transports:
            self.transports[name] = make_transport(endpoint)
        return self.transports[name]


class _NoCache:
    def get_many(self, keys: list[str]) -> dict:
        return {}

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, model: str, answer: Answer) -> None:
        pass

    def spent_usd(self) -> float:
        return 0.0

    def close(self) -> None:
        pass


def _sampling(sampling_json: str) -> dict:
    return json.loads(sampling_json)


def response_format(json_output: str, schema: dict) -> dict:
    """The `response_format` body field that makes a server keep the answer to `schema`."""
    if json_output == "json_object":  # llama.cpp's and vLLM's form
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def _check(validator: Validator | None, content: str) -> tuple[str, str | None] | None:
    """None when the answer passes; else (reason, detail): the short key the row records, and the
    sentence the re-ask shows (what was wrong, what the stage expects), when the validator gave one."""
    if validator is None:
        return None
    try:
        validator(content)
    except ValueError as rejected:  # answers.Rejected
        return getattr(rejected, "reason", str(rejected)), getattr(rejected, "detail", None)
    return None


def _reason(exc: Exception) -> str:
    kind = "failed after retries" if isinstance(exc, TransientError) else "rejected"
    return f"{kind}: {exc}"


class _Progress:
    """A tqdm line: done/total, rate, retries, spend."""

    def __init__(self, total: int, label: str, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit="req", disable=not enabled, mininterval=0.5, leave=enabled)
        self.retries, self.usd = 0, 0.0

    def update(self, n: int) -> None:
        self.bar.set_postfix(retries=self.retries, usd=f"{self.usd:.4f}", refresh=False)
        self.bar.update(n)

    def spend(self, usd: float) -> None:
        self.usd = usd

    def close(self) -> None:
        self.bar.close()


def load_named(spec: str | None):
    """"module:name" -> that object (a format check, a JSON Schema); the string, not the object, goes in
    shard settings: it is JSON-serialisable, so it can key the shard cache."""
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def answer_requests(requests: pl.DataFrame, llm: dict, cassette_digest: str | None, what: str = "llm",
                    validator: str | None = None, reask: int = 0, schema: str | None = None) -> pl.DataFrame:
    """Shard function for `runtime.shards.map_shards`. `cassette_digest` only keys the shard cache:
    a replayed answer is stale once the cassette changes. `what` names the progress line;
    `validator` and `schema` are "module:name" of the format check and of the answer's JSON Schema."""
    return Gateway(LLMParams(**llm), progress_label=what).complete(requests, load_named(validator), reask,
                                                                    load_named(schema))


def shard_settings(params: LLMParams, **stage) -> dict:
    """Settings for `answer_requests`: the LLM params plus, in replay, the cassette's digest, plus
    the stage's `what`, `validator`, `reask` and `schema`."""
    cassette = Path(params.cassette)
    digest = hashlib.sha256(cassette.read_bytes()).hexdigest() if params.mode == "replay" and cassette.exists() \
        else None
    return {"llm": params.model_dump(), "cassette_digest": digest, **stage}


def usage(stage: str, responses: pl.DataFrame, params: LLMParams) -> pl.DataFrame:
    """LLM_USAGE for one stage: per model, requests, live calls, retries, re-asks, failures, tokens,
    cost, and the calls to a model nobody prices (the report lists such models once)."""
    live = params.mode != "replay"
    unpriced = [m for m in responses["model"].unique().sort() if pricing.known_price(params, m, live) is None]
    table = responses.group_by("model").agg(
        requests=pl.len(), live_calls=(pl.col("source") == "live").sum(), retries=pl.col("retries").sum(),
        reasks=(pl.col("attempts") - 1).clip(lower_bound=0).sum(),
        failed=(pl.col("error").is_not_null() | pl.col("format_error").is_not_null()).sum(),
        prompt_tokens=pl.col("prompt_tokens").sum(), completion_tokens=pl.col("completion_tokens").sum(),
        cost_usd=pl.col("cost_usd").sum(),
        unpriced_calls=pl.col("model").is_in(unpriced).sum(),
    ).with_columns(stage=pl.lit(stage)).sort("model")
    return tables.conform(table, tables.LLM_USAGE)


__all__ = ["Gateway", "ReplayMiss", "BudgetExceeded", "answer_requests", "shard_settings", "usage"]
