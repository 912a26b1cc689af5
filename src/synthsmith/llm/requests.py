"""Requests as rows, and the content address every cache and the cassette key on."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(model: str, messages: list[dict], sampling: dict) -> str:
    """sha256 of model + messages + sampling params, and nothing else (no ids, no api_base)."""
    payload = {"model": model, "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
               "sampling": sampling}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def make_request(model: str, messages: list[dict], **sampling: Any) -> dict:
    """One LLM_REQUESTS row. `seed` in sampling tells apart samples of the same prompt."""
    sampling = {k: v for k, v in sampling.items() if v is not None}
    return {"request_id": request_key(model, messages, sampling), "model": model,
            "messages": messages, "sampling": canonical_json(sampling)}
