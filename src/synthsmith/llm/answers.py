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
    """`reason` is a short snake_case key counted in the funnel; `detail`, when given, says in a
    sentence what was wrong and what the stage expects (a re-ask shows it to the model)."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


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


def between_markers(text: str, begin: str = "<begin>", end: str = "<end>", what: str = "its content") -> str:
    start, stop = text.find(begin), text.rfind(end)
    if start < 0 or stop < 0 or stop < start:
        found = ("neither" if start < 0 and stop < 0 else f"{begin} but no {end} after it" if start >= 0
                 else f"{end} but no {begin} before it")
        raise Rejected("missing_markers", f"the answer must put {what} between a line {begin} and a line "
                                          f"{end}; it had {found}")
    return text[start + len(begin):stop]


def marked_json_object(text: str, begin: str = "<begin>", end: str = "<end>", expected: str | None = None) -> dict:
    """The JSON object between the markers; or, when the answer has neither marker but is one
    JSON object as a whole (fenced or not), that object. Anything else: missing_markers."""
    if begin not in text and end not in text:
        whole = _strict_json(text)
        if isinstance(whole, dict) and whole:
            return whole
    return json_object(between_markers(text, begin, end, what="the JSON object"), expected)


def json_object(text: str, expected: str | None = None) -> dict:
    """Strict JSON first; then a repair pass for the usual slips (fences, trailing commas, quotes).
    `expected` (e.g. '{"test_cases": [...]}') names the object's shape in the rejection's detail."""
    body = _unfenced(text)
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        value = json_repair.loads(body)
    if not isinstance(value, dict) or not value:
        found = ("an empty object" if value == {} else f"a JSON {_json_type(value)}" if value not in ("", None)
                 else "no JSON object it could read")
        shape = f" shaped like {expected}" if expected else ""
        raise Rejected("invalid_json", f"the answer must be one JSON object{shape}, with no text around it; "
                                       f"it had {found}")
    return value


def _unfenced(text: str) -> str:
    body = text.strip()
    fenced = re.fullmatch(r"```[\w+-]*\s*(.*?)```", body, re.DOTALL)  # ```json, or any tag
    return fenced.group(1) if fenced else body


def _strict_json(text: str) -> object:
    """No repair, but raw newlines inside strings pass (strict=False): grammar-constrained servers
    let a model write them."""
    try:
        return json.loads(_unfenced(text), strict=False)
    except json.JSONDecodeError:
        return None


def _json_type(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "value")


def reasoning_and_code(text: str) -> tuple[str, str]:
    """The METHOD's format rule: reasoning, then exactly one Python block that parses."""
    blocks = list(CODE_BLOCK.finditer(text))
    expected = "a short explanation, then the whole program in one block that opens with a line ```python " \
               "and closes with a line ```"
    if not blocks:
        fences = len(ANY_FENCE.findall(text))
        found = ("no code block at all" if fences == 0 else "a ``` block opened but never closed" if fences == 1
                 else "a code block, but not one opened with ```python")
        raise Rejected("no_code_block", f"the answer must give {expected}; it had {found}")
    if len(blocks) > 1:
        raise Rejected("multiple_code_blocks", f"the answer must give {expected}, exactly one such block; "
                                               f"it had {len(blocks)}")
    reasoning = text[:blocks[0].start()].strip()
    if not reasoning:
        raise Rejected("no_reasoning", f"the answer must give {expected}; it started with the code, "
                                       "with no explanation before it")
    code = blocks[0].group(1)
    try:
        ast.parse(code)
    except SyntaxError as error:
        raise Rejected("syntax_error", f"the ```python block must hold a complete, valid Python 3 program; it does "
                                       f"not parse: {error.msg} (line {error.lineno} of the block)") from None
    except ValueError as error:
        raise Rejected("syntax_error", f"the ```python block must hold a complete, valid Python 3 program; it does "
                                       f"not parse: {error}") from None
    return reasoning, code


def count_tokens(text: str) -> int:
    """Approximate tokens (words and punctuation marks): deterministic and offline."""
    return len(TOKEN.findall(text))
