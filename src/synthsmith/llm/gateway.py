"""Answer a table of requests: from the cassette (replay), or from a live model (live/record).

Live answers go row by row into a durable SQLite cache under `llm.cache_dir`, so a rerun never
pays twice for a completed call; `record` also appends them to the cassette.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import polars as pl

from synthsmith import schemas
from synthsmith.llm.cassette import Cassette
from synthsmith.params import LLMParams, UserError


class ReplayMiss(UserError):
    """A request the cassette has no answer for; replay never falls back to anything else."""


class ResponseCache:
    def __init__(self, directory: str | Path):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(Path(directory) / "responses.sqlite", timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, content TEXT)")

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT content FROM responses WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, model: str, content: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, model, content))


class Gateway:
    def __init__(self, params: LLMParams, project_root: str | Path = "."):
        self.params = params
        root = Path(project_root)
        self.cassette = Cassette(root / params.cassette)
        self._cache_dir = root / params.cache_dir
        self._cache: ResponseCache | None = None

    def complete(self, requests: pl.DataFrame) -> pl.DataFrame:
        """LLM_REQUESTS -> LLM_RESPONSES, one row per request, in order."""
        rows = schemas.conform(requests, schemas.LLM_REQUESTS).to_dicts()
        if self.params.mode == "replay":
            answers = [self._replay(row) for row in rows]
        else:
            answers = asyncio.run(self._live_all(rows))
        return schemas.conform(pl.DataFrame(
            [{"request_id": row["request_id"], "content": content, "error": error}
             for row, (content, error) in zip(rows, answers, strict=True)],
            schema=schemas.LLM_RESPONSES.columns), schemas.LLM_RESPONSES)

    def _replay(self, row: dict) -> tuple[str, None]:
        content = self.cassette.get(row["request_id"])
        if content is None:
            prompt = row["messages"][-1]["content"]
            raise ReplayMiss(
                f"replay miss: {self.cassette.path} has no answer for request {row['request_id'][:16]} "
                f"(model {row['model']}, sampling {row['sampling']}, prompt starts {prompt[:160]!r}). "
                "Use the shipped params, or set llm.mode: record with a live model to add it.")
        return content, None

    async def _live_all(self, rows: list[dict]) -> list[tuple[str | None, str | None]]:
        self._cache = self._cache or ResponseCache(self._cache_dir)
        limit = asyncio.Semaphore(self.params.concurrency)

        async def one(row: dict) -> tuple[str | None, str | None]:
            cached = self._cache.get(row["request_id"])
            if cached is not None:
                return cached, None
            async with limit:
                return await self._call(row)

        return list(await asyncio.gather(*(one(row) for row in rows)))

    async def _call(self, row: dict) -> tuple[str | None, str | None]:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm  # slow import: only live runs pay it

        sampling = json.loads(row["sampling"])
        api_key = os.environ.get(self.params.api_key_env) if self.params.api_key_env else None
        if self.params.api_base and api_key is None:
            api_key = "none"  # self-hosted OpenAI-compatible servers accept any key; the SDK insists on one
        try:
            response = await litellm.acompletion(
                model=row["model"], messages=row["messages"], api_base=self.params.api_base, api_key=api_key,
                custom_llm_provider="openai" if self.params.api_base else None,
                timeout=self.params.timeout_s, num_retries=self.params.max_retries, **sampling)
        except Exception as exc:  # noqa: BLE001 - every provider error becomes a counted row
            return None, f"{type(exc).__name__}: {str(exc)[:300]}"
        content = response.choices[0].message.content
        if not content:
            return None, "empty response"
        self._cache.put(row["request_id"], row["model"], content)
        if self.params.mode == "record":
            self.cassette.append(row["request_id"], row["model"], row["messages"], sampling, content,
                                 author=f"recorded live from {response.model or row['model']}")
        return content, None


def answer_requests(requests: pl.DataFrame, llm: dict, cassette_digest: str | None) -> pl.DataFrame:
    """Shard function for `orchestration.map_shards`. `cassette_digest` only keys the shard cache:
    a replayed answer is stale once the cassette changes."""
    return Gateway(LLMParams(**llm)).complete(requests)


def shard_settings(params: LLMParams) -> dict:
    """Settings for `answer_requests`: the LLM params plus, in replay, the cassette's digest."""
    cassette = Path(params.cassette)
    digest = hashlib.sha256(cassette.read_bytes()).hexdigest() if params.mode == "replay" and cassette.exists() \
        else None
    return {"llm": params.model_dump(), "cassette_digest": digest}
