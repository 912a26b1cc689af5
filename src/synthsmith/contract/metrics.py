"""reports/metrics.json, declared: what the report stage writes and what `synthsmith diff` and
`synthsmith demo` read. The report validates before writing; readers validate before reading,
so a file of another shape is one line naming the key, not a KeyError three calls later.

The task-set sections (hygiene, diversity, feature_coverage) and `llm` came later than the rest:
older versions' files lack them, and `synthsmith diff` still reads those versions.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, ValidationError


class MetricsError(ValueError):
    """metrics.json is not JSON or not of the declared shape; the message is one line."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskCounts(_Part):
    generated: int
    verified: int
    keep_rate: float


class StyleMix(_Part):  # style -> share of the tasks
    generated: dict[str, float]
    verified: dict[str, float]


class CategoryGrowth(_Part):
    before: int
    after: int


class Features(_Part):
    leaves_before: int
    leaves_after: int
    per_category: dict[str, CategoryGrowth]


class Labeling(_Part):
    labelled_tests: int
    tied_tests: int
    mean_top_share: float


class LlmUsage(_Part):
    requests: int
    live_calls: int
    retries: int
    reasks: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced_calls: int = 0  # to a model with no price: counted as $0 (absent before it was counted)


class Llm(_Part):
    by_stage_and_model: dict[str, LlmUsage]  # "<stage>/<model>"
    total: LlmUsage
    unpriced_models: dict[str, int] = {}  # model -> its calls, counted as $0 for want of a price


class DroppedTask(_Part):
    title: str | None
    reason: str
    against: str | None
    matched: str | None
    score: float | None


class Hygiene(_Part):
    dropped: dict[str, DroppedTask]  # by task_id
    dropped_by_reason: dict[str, int]


class Diversity(_Part):
    embedder: str
    tasks: int
    clusters: int
    mean_distance_to_centroid: float | None  # null: no task


class Diversities(_Part):
    generated: Diversity
    verified: Diversity


class CategoryCoverage(_Part):
    leaves: int
    used: int
    share: float


class Coverage(_Part):
    leaves: int
    used: int
    share: float
    outside_pool: int
    per_category: dict[str, CategoryCoverage]


class Coverages(_Part):
    generated: Coverage
    verified: Coverage


class Round(_Part):  # tables.ROUNDS without its number (the key)
    samples_per_model: int
    tasks: int
    requests: int
    candidates: int
    runs: int
    kept: int
    discarded: int
    undecided: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class Metrics(_Part):
    funnel: dict[str, dict[str, int]]  # stage -> metric ("in", "out", "dropped:<reason>", ...) -> count
    tasks: TaskCounts
    discard_reasons: dict[str, int]
    style_mix: StyleMix
    features: Features
    labeling: Labeling
    execution: dict[str, int]  # sandbox status -> runs
    golden_tests_per_task: float
    llm: Llm | None = None
    rounds: dict[str, Round] | None = None  # verification round ("0": the first candidates) -> what it took
    hygiene: Hygiene | None = None
    diversity: Diversities | None = None
    feature_coverage: Coverages | None = None


def checked(metrics: dict) -> Metrics:
    """The declared form of a metrics dict; MetricsError naming the first key that does not fit."""
    try:
        return Metrics.model_validate(metrics)
    except ValidationError as exc:
        raise MetricsError(_describe(exc)) from None


def parse(raw: str | bytes) -> Metrics:
    """metrics.json's text, checked against the declaration."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise MetricsError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MetricsError(f"expected a JSON object, got {type(value).__name__}")
    return checked(value)


def as_json(metrics: Metrics) -> dict:
    """What metrics.json holds: the sections present, no others (an older file stays as it was)."""
    return metrics.model_dump(mode="json", exclude_unset=True)


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"not the shape of reports/metrics.json (contract/metrics.py): {key}: {error['msg']}"
