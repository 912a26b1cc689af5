"""The durable response cache: one SQLite row per completed call, committed as it arrives.

Keyed on the request's content address only (`requests.request_key`). WAL mode and one
transaction per row: a process killed with SIGKILL loses no completed response, and several
processes may write at once (SQLite serialises writers; `timeout` waits for the lock).
The rows also carry tokens and cost, so the spend so far is a query, not a separate ledger.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Answer:
    content: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class ResponseCache:
    def __init__(self, directory: str | Path):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = Path(directory) / "responses.sqlite"
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: committed rows survive a process kill
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, content TEXT,"
                         " prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, created REAL)")

    def get_many(self, keys: list[str]) -> dict[str, Answer]:
        found: dict[str, Answer] = {}
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, *fields in self._db.execute(
                    f"SELECT key, content, prompt_tokens, completion_tokens, cost_usd FROM responses "
                    f"WHERE key IN ({marks})", chunk):
                found[key] = Answer(*fields)
        return found

    def get(self, key: str) -> Answer | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, model: str, answer: Answer) -> None:
        self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (key, model, answer.content, answer.prompt_tokens, answer.completion_tokens,
                          answer.cost_usd, time.time()))

    def spent_usd(self) -> float:
        return float(self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()
