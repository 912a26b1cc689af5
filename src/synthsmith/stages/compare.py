"""Comparing program outputs: a canonical key for voting, and a tolerant match for checking.

Both read an output as whitespace-separated tokens, so trailing spaces, CRLF line ends and
line breaks never matter. A token is a *float token* when it contains '.', 'e' or 'E' and
parses as a finite float; float tokens compare within a tolerance, every other token
(integers, words, "nan", "inf") compares exactly. So "1" and "1.0" differ: an integer
answer is judged exactly, as an exact checker would, and we do not guess a float checker.
"""

from __future__ import annotations

import math


def vote_key(output: str, float_tol: float = 1e-6) -> str:
    """Canonical form of `output`: outputs that would match usually share a key.

    Float tokens are rounded once: below 1 in magnitude to `digits = round(-log10(float_tol))`
    decimal places (the absolute tolerance), otherwise to `digits` significant digits (the
    relative one); -0.0 becomes 0. Limitation: these are fixed buckets, not a tolerance. Two
    close values that straddle an edge get different keys (1.0000049 and 1.0000051 at 1e-6),
    so a vote can split where `outputs_match` agrees; and one bucket spans up to ten times
    the tolerance (0.9999996 and 1.0000049 share a key but do not match).
    """
    digits = key_digits(float_tol)
    return " ".join(token_key(token, digits) for token in output.split())


def outputs_match(expected: str, actual: str, float_tol: float = 1e-6) -> bool:
    """Token-wise match: same token count; float tokens within `float_tol`, relative or
    absolute; all other tokens equal exactly."""
    want, got = expected.split(), actual.split()
    return len(want) == len(got) and all(_tokens_match(w, g, float_tol) for w, g in zip(want, got))


def _float_token(token: str) -> float | None:
    if "." not in token and "e" not in token and "E" not in token:  # the fast, common case
        return None
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def key_digits(float_tol: float) -> int:
    # A tolerance of 0 (or below 1e-17) means "as exact as a double gets".
    return 17 if float_tol <= 1e-17 else max(1, min(17, round(-math.log10(float_tol))))


def token_key(token: str, digits: int) -> str:
    value = _float_token(token)
    if value is None:
        return token
    if abs(value) < 1:
        value = round(value, digits) or 0.0  # `or 0.0` turns -0.0 into 0.0
    # '#' keeps the decimal point, so a float key never equals an integer token.
    return f"{value:#.{digits}g}"


def _tokens_match(want: str, got: str, float_tol: float) -> bool:
    if want == got:
        return True
    a, b = _float_token(want), _float_token(got)
    return a is not None and b is not None and math.isclose(a, b, rel_tol=float_tol, abs_tol=float_tol)
