"""Pull structured parts out of model answers; each failure is a named reason, never an exception."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TypeVar

import json_repair
import polars as pl

T = TypeVar("T")

CODE_BLOCK = re.compile(r"```(?:python|py|python3)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
ANY_FENCE = re.compile(r"```")
TOKEN = re.compile(r"\w+|[^\w\s]")


class Rejected(ValueError):
    """`reason` is a short snake_case key counted in the funnel."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_answers(rows: pl.DataFrame, responses: pl.DataFrame, parse: Callable[[dict, str], T],
                  dropped: Counter, prefix: str = "") -> Iterator[tuple[dict, T]]:
    """Each row with its answer as `parse(row, content)` returns it. A failed call or an answer
    `parse` rejects is counted in `dropped` under prefix + reason, and skipped."""
    for row, content, error in zip(rows.iter_rows(named=True), responses["content"], responses["error"],
                                   strict=True):
        try:
            if error is not None:
                raise Rejected("llm_error")
            value = parse(row, content)
        except Rejected as rejected:
            dropped[prefix + rejected.reason] += 1
            continue
        yield row, value


def between_markers(text: str, begin: str = "<begin>", end: str = "<end>") -> str:
    start, stop = text.find(begin), text.rfind(end)
    if start < 0 or stop < 0 or stop < start:
        raise Rejected("missing_markers")
    return text[start + len(begin):stop]


def json_object(text: str) -> dict:
    """Strict JSON first; then a repair pass for the usual slips (fences, trailing commas, quotes)."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        value = json_repair.loads(body)
    if not isinstance(value, dict) or not value:
        raise Rejected("invalid_json")
    return value


def reasoning_and_code(text: str) -> tuple[str, str]:
    """The METHOD's format rule: reasoning, then exactly one Python block that parses."""
    blocks = list(CODE_BLOCK.finditer(text))
    if not blocks:
        raise Rejected("no_code_block")
    if len(blocks) > 1:
        raise Rejected("multiple_code_blocks")
    reasoning = text[:blocks[0].start()].strip()
    if not reasoning:
        raise Rejected("no_reasoning")
    code = blocks[0].group(1)
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        raise Rejected("syntax_error") from None
    return reasoning, code


def count_tokens(text: str) -> int:
    """Approximate tokens (words and punctuation marks): deterministic and offline."""
    return len(TOKEN.findall(text))
