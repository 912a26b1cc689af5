"""The cassette: a JSONL file of recorded answers, one per request key, replayed offline."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from synthsmith.contract.params import UserError


@lru_cache(maxsize=4)
def _load(path: Path, stamp: int | None) -> dict[str, dict]:
    """Parsed once per process and file version: every shard of a stage shares it."""
    answers: dict[str, dict] = {}
    if stamp is None:
        return answers
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                    answers[entry["key"]] = {"response": entry["response"], "usage": entry.get("usage")}
                except (json.JSONDecodeError, KeyError) as exc:
                    raise UserError(f"{path}:{number}: not a cassette entry ({exc})") from None
    return answers


class Cassette:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._answers: dict[str, dict] | None = None

    def answers(self) -> dict[str, dict]:
        if self._answers is None:
            stamp = self.path.stat().st_mtime_ns if self.path.exists() else None
            self._answers = dict(_load(self.path, stamp))
        return self._answers

    def entry(self, key: str) -> dict | None:
        """{"response": text, "usage": {prompt_tokens, completion_tokens} or None}."""
        return self.answers().get(key)

    def get(self, key: str) -> str | None:
        found = self.entry(key)
        return found["response"] if found else None

    def append(self, key: str, model: str, messages: list[dict], sampling: dict, response: str,
               author: str, usage: dict | None = None) -> None:
        """Append one entry and fsync: a crash after this returns never loses it."""
        entry = {"key": key, "model": model, "sampling": sampling, "messages": messages,
                 "response": response, "author": author, **({"usage": usage} if usage else {})}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.answers()[key] = {"response": response, "usage": usage}
