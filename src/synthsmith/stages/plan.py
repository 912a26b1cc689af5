"""`synthsmith plan`: what the LLM calls of a run at the current params will cost, before any call.

Per stage and model: requests, expected re-asks, prompt and completion tokens, dollars. Counts come
from params (seeds, rounds x categories, num_tasks, generators, models x samples, verification
rounds up to `verify.max_candidates`); what params cannot know comes from RATES:

- tokens per request (re-asks included, as LLM_USAGE counts them) and the re-ask rate, per stage
  and model, from the last run's `data/<stage>/llm_usage.parquet`;
- how many planned tasks survive planning and writing (`data/generate_tasks/funnel.parquet`);
- how many tasks are still undecided after s samples per model (`data/verify_rounds/rounds.parquet`).

Without a last run the DEFAULT_* figures below stand in: they are the shipped demo's means (small,
hand-written answers); a real reasoning model writes far longer answers, so plan a real run from a
small pilot run's rates (e.g. `seeds.limit` and `generate_tasks.num_tasks` small) rather than from them.

Prices: `llm.pricing.known_price`, what the gateway charges (params' per-model prices, else
litellm's map in live/record mode); a model nobody prices counts $0 and is listed.

Everything here is pure (params and tables in, tables out) except `read_rates`, `count_seeds` and
`read_actual`, which read the project's files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import Params

LLM_STAGES = ("extract_features", "evolve_features", "generate_tasks", "generate_tests", "generate_solutions",
              "verify_rounds")
CATEGORIES = 7  # stages.extract_features.CATEGORIES: evolve_features asks once per category per round


@dataclass(frozen=True)
class Size:
    """Mean tokens per request (re-asks included) and re-asks per request."""
    prompt: float
    completion: float
    reask_rate: float = 0.0


# The shipped demo's means (reports/metrics.json of `synthsmith demo`, rounded): see the module doc.
DEFAULT_SIZES: dict[str, Size] = {
    "extract_features": Size(470, 110, 0.09),
    "evolve_features": Size(395, 90, 0.0),
    "generate_tasks:planner": Size(275, 175, 0.06),
    "generate_tasks:writer": Size(330, 300, 0.0),
    "generate_tests": Size(570, 285, 0.02),
    "generate_solutions": Size(370, 165, 0.02),
    "verify_rounds": Size(435, 190, 0.15),
}
DEFAULT_PLAN_SURVIVAL = 0.94  # plans with the three keys and >= 2 features, of subtrees planned
DEFAULT_TASK_SURVIVAL = 0.94  # tasks kept (format, length, hygiene), of plans written out
# share of all verified tasks still undecided after s samples per model (more could decide them)
# (two demo runs: 11, 4, 3 and 11, 4, 2 of 16 tasks)
DEFAULT_UNDECIDED: tuple[tuple[int, float], ...] = ((2, 0.69), (4, 0.25), (6, 0.16))
DEFAULT_DECAY = 0.5  # undecided share kept per 2 more samples past a lone known point (demo: 0.36 to 0.75)


@dataclass(frozen=True)
class Rates:
    """What a run at other params would show: per (stage, model) sizes, survival, undecided curve."""
    sizes: dict[tuple[str, str], Size] = field(default_factory=dict)
    plan_survival: float = DEFAULT_PLAN_SURVIVAL
    task_survival: float = DEFAULT_TASK_SURVIVAL
    undecided: tuple[tuple[int, float], ...] = DEFAULT_UNDECIDED
    seeds: int | None = None  # the last run's seed count (used when the source cannot be read)
    basis: str = "defaults"  # "defaults" or where the rates were read


def rates_from_run(usage: pl.DataFrame, tasks_funnel: pl.DataFrame | None = None,
                   rounds: pl.DataFrame | None = None, basis: str = "last run") -> Rates:
    """Rates from a run's tables: LLM_USAGE rows of every stage, generate_tasks' FUNNEL, ROUNDS."""
    usage = tables.conform(usage, tables.LLM_USAGE)
    sizes = {(r["stage"], r["model"]): Size(r["prompt_tokens"] / r["requests"], r["completion_tokens"] / r["requests"],
                                            r["reasks"] / r["requests"])
             for r in usage.iter_rows(named=True) if r["requests"]}
    plan_survival, task_survival = DEFAULT_PLAN_SURVIVAL, DEFAULT_TASK_SURVIVAL
    if tasks_funnel is not None and tasks_funnel.height:
        counts = dict(zip(tasks_funnel["metric"], tasks_funnel["value"], strict=True))
        planned = counts.get("in", 0)
        plan_dropped = sum(v for k, v in counts.items() if k.startswith("dropped:plan_"))
        if planned:
            plan_survival = (planned - plan_dropped) / planned
            if planned - plan_dropped:
                task_survival = counts.get("out", 0) / (planned - plan_dropped)
    seeds = next((r["requests"] for r in usage.iter_rows(named=True) if r["stage"] == "extract_features"), None)
    return Rates(sizes, plan_survival, task_survival, undecided_curve(rounds), seeds, basis)


def undecided_curve(rounds: pl.DataFrame | None) -> tuple[tuple[int, float], ...]:
    """(samples per model, share of round 0's tasks still undecided) per round. A last round that left
    nothing undecided is left out: it may have reached `max_candidates`, where nothing stays open."""
    if rounds is None or rounds.height == 0 or rounds.sort("round")["tasks"][0] == 0:
        return DEFAULT_UNDECIDED
    rows = rounds.sort("round").to_dicts()
    if len(rows) > 1 and rows[-1]["undecided"] == 0:
        rows = rows[:-1]
    if len(rows) == 1 and rows[0]["undecided"] == 0 and rows[0]["round"] == 0:
        return DEFAULT_UNDECIDED  # no rounds ran (max_candidates null or reached): round 0 says nothing
    total = rows[0]["tasks"]
    return tuple((r["samples_per_model"], r["undecided"] / total) for r in rows)


def undecided_share(curve: tuple[tuple[int, float], ...], samples: int) -> float:
    """The curve at `samples`: linear between known points, geometric outside them (at the rate of
    the last two points, else DEFAULT_DECAY per 2 samples)."""
    points = sorted(curve)
    for (s0, u0), (s1, u1) in zip(points, points[1:]):
        if s0 <= samples <= s1:
            return u0 + (u1 - u0) * (samples - s0) / (s1 - s0)
    if len(points) >= 2 and points[-2][1] > 0 and points[-1][0] > points[-2][0]:
        (s0, u0), (s1, u1) = points[-2:]
        per_sample = min(1.0, u1 / u0) ** (1 / (s1 - s0))
    else:
        per_sample = DEFAULT_DECAY ** 0.5
    if samples > points[-1][0]:
        return points[-1][1] * per_sample ** (samples - points[-1][0])
    first_s, first_u = points[0]
    return min(1.0, first_u / per_sample ** (first_s - samples)) if per_sample > 0 else first_u


def verification_rounds(params: Params, tasks: float, curve: tuple[tuple[int, float], ...]) -> list[dict]:
    """Rounds after the first candidates (stages.verify_rounds): tasks and new samples per model."""
    from synthsmith.stages.verify_rounds import samples_cap

    solving = params.generate_solutions
    cap, asked, rounds = samples_cap(params.verify, solving), solving.samples_per_model, []
    while asked < cap:
        open_tasks = tasks * undecided_share(curve, asked)
        if open_tasks < 1e-6:
            break
        reached = min(asked + params.verify_rounds.samples_per_model, cap)
        rounds.append({"round": len(rounds) + 1, "tasks": open_tasks, "samples": reached - asked,
                       "samples_per_model": reached})
        asked = reached
    return rounds


def estimate(params: Params, seeds: int, rates: Rates | None = None) -> pl.DataFrame:
    """PLAN: one row per (stage, model) the run will call: requests, re-asks, tokens, dollars, and
    the basis of its token sizes."""
    from synthsmith.llm import pricing

    rates = rates or Rates()
    rows: list[dict] = []

    def ask(stage: str, role: str, model: str, requests: float) -> None:
        size, basis = _size(rates, stage, role, model)
        rows.append({"stage": stage, "model": model, "requests": requests, "reasks": requests * size.reask_rate,
                     "prompt_tokens": requests * size.prompt, "completion_tokens": requests * size.completion,
                     "basis": basis})

    ask("extract_features", "extract_features", params.extract_features.model, seeds)
    evolving = params.evolve_features
    ask("evolve_features", "evolve_features", evolving.model, evolving.rounds * CATEGORIES if seeds else 0)
    writing = params.generate_tasks
    planned = writing.num_tasks if seeds else 0
    written = planned * rates.plan_survival
    tasks = written * rates.task_survival
    ask("generate_tasks", "generate_tasks:planner", writing.planner_model, planned)
    ask("generate_tasks", "generate_tasks:writer", writing.writer_model, written)
    testing = params.generate_tests
    ask("generate_tests", "generate_tests", testing.model,
        tasks * (len(testing.generators) + int(testing.validate_inputs)))
    solving = params.generate_solutions
    for model in solving.models:
        ask("generate_solutions", "generate_solutions", model, tasks * solving.samples_per_model)
    for step in verification_rounds(params, tasks, rates.undecided):
        for model in solving.models:
            ask("verify_rounds", "verify_rounds", model, step["tasks"] * step["samples"])
    live = params.llm.mode != "replay"
    plan = pl.DataFrame(rows, schema={"stage": pl.String, "model": pl.String, "requests": pl.Float64,
                                      "reasks": pl.Float64, "prompt_tokens": pl.Float64,
                                      "completion_tokens": pl.Float64, "basis": pl.String})
    plan = plan.group_by("stage", "model", maintain_order=True).agg(
        pl.col("requests", "reasks", "prompt_tokens", "completion_tokens").sum(), pl.col("basis").first())
    prices = {m: pricing.known_price(params.llm, m, live) for m in plan["model"].unique()}
    cost = [prices[m].cost(p, c) if prices[m] else 0.0
            for m, p, c in zip(plan["model"], plan["prompt_tokens"], plan["completion_tokens"], strict=True)]
    return plan.with_columns(
        tokens=pl.col("prompt_tokens") + pl.col("completion_tokens"),
        cost_usd=pl.Series(cost, dtype=pl.Float64),
        priced=pl.Series([prices[m] is not None for m in plan["model"]], dtype=pl.Boolean),
    ).select("stage", "model", "requests", "reasks", "prompt_tokens", "completion_tokens", "tokens", "cost_usd",
             "priced", "basis").sort(pl.col("stage").replace_strict({s: i for i, s in enumerate(LLM_STAGES)},
                                                                    return_dtype=pl.Int64), "model")


def _size(rates: Rates, stage: str, role: str, model: str) -> tuple[Size, str]:
    """This stage and model's sizes from the rates; else the stage's other models' (pooled);
    for a verification round the model's first-round sizes; else the default."""
    if (stage, model) in rates.sizes:
        return rates.sizes[stage, model], rates.basis
    same_stage = [s for (st, _), s in rates.sizes.items() if st == stage]
    if same_stage and stage != "generate_tasks":  # the planner's and writer's sizes differ: never pool them
        return Size(*(sum(getattr(s, a) for s in same_stage) / len(same_stage)
                      for a in ("prompt", "completion", "reask_rate"))), f"{rates.basis} (stage's other models)"
    if stage == "verify_rounds" and ("generate_solutions", model) in rates.sizes:
        return rates.sizes["generate_solutions", model], f"{rates.basis} (generate_solutions)"
    return DEFAULT_SIZES[role], "defaults"


def beside(plan: pl.DataFrame, actual: pl.DataFrame) -> pl.DataFrame:
    """The plan beside a run's LLM_USAGE: estimate, actual and estimate / actual per row and metric."""
    actual = tables.conform(actual, tables.LLM_USAGE).select(
        "stage", "model", "requests", "reasks", "prompt_tokens", "completion_tokens", "cost_usd",
        tokens=pl.col("prompt_tokens") + pl.col("completion_tokens")).group_by("stage", "model").agg(pl.all().sum())
    metrics = ("requests", "reasks", "prompt_tokens", "completion_tokens", "tokens", "cost_usd")
    joined = plan.select("stage", "model", *metrics).join(actual, on=["stage", "model"], how="full", coalesce=True,
                                                          suffix="_actual")
    joined = joined.with_columns(pl.col(m).fill_null(0.0) for m in metrics).with_columns(
        pl.col(f"{m}_actual").fill_null(0).cast(pl.Float64) for m in metrics)
    return joined.select("stage", "model", *(c for m in metrics for c in (
        pl.col(m), pl.col(f"{m}_actual"), _ratio(pl.col(m), pl.col(f"{m}_actual")).alias(f"{m}_ratio")))).sort(
        pl.col("stage").replace_strict({s: i for i, s in enumerate(LLM_STAGES)}, default=99, return_dtype=pl.Int64),
        "model")


def _ratio(estimated: pl.Expr, actual: pl.Expr) -> pl.Expr:
    return pl.when(actual > 0).then(estimated / actual).otherwise(None)


def totals(frame: pl.DataFrame) -> dict:
    """Column sums of a plan (or of `beside`), ratios recomputed from the sums."""
    numeric = [c for c, t in frame.schema.items() if t.is_numeric() and not c.endswith("_ratio")]
    sums = {c: float(frame[c].sum()) for c in numeric}
    for column in [c for c in frame.columns if c.endswith("_ratio")]:
        base = column.removesuffix("_ratio")
        sums[column] = sums[base] / sums[f"{base}_actual"] if sums.get(f"{base}_actual") else None
    return sums


def assumptions(params: Params, seeds: int, rates: Rates) -> dict:
    """The counts and rates the plan rests on, for the report and `--json`."""
    planned = params.generate_tasks.num_tasks if seeds else 0
    tasks = planned * rates.plan_survival * rates.task_survival
    return {"basis": rates.basis, "seeds": seeds, "tasks_planned": planned,
            "plan_survival": round(rates.plan_survival, 4), "task_survival": round(rates.task_survival, 4),
            "tasks": round(tasks, 2),
            "undecided_after_samples": {str(s): round(u, 4) for s, u in rates.undecided},
            "verification_rounds": [{k: round(v, 2) if isinstance(v, float) else v for k, v in step.items()}
                                    for step in verification_rounds(params, tasks, rates.undecided)]}


# --- reading a project's files -----------------------------------------------------------------

def read_actual(root: Path) -> pl.DataFrame | None:
    """Every LLM stage's LLM_USAGE of the last run under root/data, or None when there is none."""
    frames = [pl.read_parquet(path) for stage in LLM_STAGES
              if (path := root / "data" / stage / "llm_usage.parquet").exists()]
    return tables.conform(pl.concat(frames, how="diagonal_relaxed"), tables.LLM_USAGE) if frames else None


def read_rates(root: Path) -> Rates | None:
    """The last run's rates under root/data, or None when no LLM stage has run there."""
    usage = read_actual(root)
    if usage is None:
        return None
    read = {name: pl.read_parquet(path) if (path := root / "data" / name).exists() else None
            for name in ("generate_tasks/funnel.parquet", "verify_rounds/rounds.parquet")}
    return rates_from_run(usage, read["generate_tasks/funnel.parquet"], read["verify_rounds/rounds.parquet"],
                          basis=f"last run ({root / 'data'})")


def count_seeds(params: Params, rates: Rates | None) -> tuple[int, str]:
    """Seeds the run will start from: the seeds stage's own reading of the source (no model call),
    else the last run's count. Returns (count, where it came from)."""
    from synthsmith.stages.seeds import prepare_seeds
    from synthsmith.stages.sources import load_seed_source

    try:
        seeds, _ = prepare_seeds(load_seed_source(params.seeds), params.seeds, params.seeds.path)
        return seeds.height, f"seeds source ({params.seeds.source})"
    except Exception as exc:  # noqa: BLE001 - an unreadable source: fall back, and say so
        if rates is not None and rates.seeds is not None:
            count = rates.seeds if params.seeds.limit is None else min(rates.seeds, params.seeds.limit)
            return count, f"last run (seeds source unreadable: {exc})"
        raise


# --- text ------------------------------------------------------------------------------------

def render_text(plan: pl.DataFrame, facts: dict, compared: pl.DataFrame | None = None) -> str:
    lines = [f"rates: {facts['basis']}; seeds: {facts['seeds']} ({facts['seeds_from']})",
             f"tasks: {facts['tasks_planned']} planned x {facts['plan_survival']:.2f} plans kept x "
             f"{facts['task_survival']:.2f} tasks kept = {facts['tasks']:.1f}; undecided after s samples per model: "
             + ", ".join(f"{s}: {u:.2f}" for s, u in facts["undecided_after_samples"].items()),
             "verification rounds: " + ("; ".join(f"{r['tasks']:.1f} tasks to {r['samples_per_model']} samples"
                                                  for r in facts["verification_rounds"]) or "none"), ""]
    if compared is None:
        lines.append(f"{'stage':<20} {'model':<24} {'requests':>8} {'reasks':>6} {'prompt':>9} {'completion':>10} "
                     f"{'tokens':>9} {'usd':>9}  basis")
        for r in plan.iter_rows(named=True):
            lines.append(f"{r['stage']:<20} {r['model']:<24} {r['requests']:>8.1f} {r['reasks']:>6.1f} "
                         f"{r['prompt_tokens']:>9.0f} {r['completion_tokens']:>10.0f} {r['tokens']:>9.0f} "
                         f"{_usd(r['cost_usd'], r['priced'])}  {r['basis']}")
        t = totals(plan)
        lines.append(f"{'total':<45} {t['requests']:>8.1f} {t['reasks']:>6.1f} {t['prompt_tokens']:>9.0f} "
                     f"{t['completion_tokens']:>10.0f} {t['tokens']:>9.0f} {t['cost_usd']:>9.4f}")
    else:
        lines.append("estimate | actual (the last run's LLM_USAGE) | estimate / actual")
        lines.append(f"{'stage':<20} {'model':<24} {'requests':>22} {'tokens':>28} {'usd':>28}")
        for r in [*compared.iter_rows(named=True), {"stage": "total", "model": "", **totals(compared)}]:
            lines.append(f"{r['stage']:<20} {r['model']:<24} " + " ".join(
                f"{_num(r[m], digits)} | {_num(r[f'{m}_actual'], digits)} | {_ratio_text(r[f'{m}_ratio'])}"
                for m, digits in (("requests", 0), ("tokens", 0), ("cost_usd", 4))))
    unpriced = sorted(plan.filter(~pl.col("priced"))["model"].unique())
    if unpriced:
        lines.append(f"unpriced (counted as $0): {', '.join(unpriced)}")
    return "\n".join(lines)


def _usd(value: float, priced: bool) -> str:
    return f"{value:>9.4f}" if priced else f"{'unpriced':>9}"


def _num(value: float, digits: int) -> str:
    return f"{value:>8.{digits}f}" if digits else f"{value:>8.0f}"


def _ratio_text(value: float | None) -> str:
    return f"{value:>5.2f}" if value is not None and math.isfinite(value) else f"{'-':>5}"
