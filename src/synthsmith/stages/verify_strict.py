"""The "strict" verification method: consensus of whole behaviours instead of per-input votes.

The paper's Algorithm 1 labels every input by its own plurality vote. Two things go wrong on
natural candidate mixes (benchmarks/verify_quality.py): different wrong programs share the same
wrong answer on an input (False, [], 0) and outvote the correct one there, so a wrong label,
and sometimes a wrong golden solution, follows; and on a task with no correct candidate at
all, one wrong candidate is often best on both halves, so the hold-out check keeps it.

Strict looks at each candidate's whole output vector instead:
1. Cluster the candidates by behaviour: two candidates are in one cluster when they ran cleanly
   on exactly the same tests with the same vote keys (`compare.vote_key`) on each. Candidates
   with no clean run are in no cluster.
2. Eligible clusters ran cleanly on at least 2 tests with at least 2 distinct outputs across
   them: a program printing one constant value on every test is the typical collapse of broken
   programs into agreement, and tests a constant program passes cannot tell it from a solution.
3. The golden cluster is the largest eligible cluster. The task is kept only if it has at least
   `MIN_SUPPORT` members (independent programs that agree on every test) and leads every other
   cluster, eligible or not, by at least `MARGIN` members (a tie or a one-vote lead between two
   behaviours is not a consensus).
4. Labels are the golden cluster's outputs on the tests it ran cleanly on (those it fails are
   dropped); the golden solution is its lowest solution_id, whose raw outputs are the expected
   outputs; a seeded split (`golden_split`) picks half of those tests, rounded up, as the golden
   tests. Test weights play no part: no candidate is scored.
Every candidate of the golden cluster passes every label, so the paper's hold-out check would be
vacuous here; the cluster's size and lead take its place.

Discard reasons, checked in this order: no_tests, no_candidates, no_passing_candidate (no clean
run at all), too_few_labelled_tests (no candidate ran cleanly on 2 tests), degenerate_outputs
(every such candidate printed one value on all its tests), weak_consensus (the golden cluster
has fewer than MIN_SUPPORT members), contested_consensus (another cluster is within MARGIN of
it, ties included).

Clusters use vote keys, i.e. fixed float buckets: two candidates within the tolerance that
straddle a bucket edge fall in different clusters, which can only shrink the consensus (a task
is discarded, never wrongly kept).

Implementation (10M runs in a few seconds): ids become integer codes (sorted Enums, so code order
is string order), each clean run a 64-bit code of (test, key), and a candidate's output vector is
identified by two independently seeded sums of those codes' hashes plus its run count. Two
different vectors of one task share all three with probability about 2^-64 (the chance that two
different (test, key) pairs share a code); nothing else about the result depends on hash values.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import polars as pl

from synthsmith.contract.values import (
    CONTESTED_CONSENSUS,
    DEGENERATE_OUTPUTS,
    NO_CANDIDATES,
    NO_PASSING_CANDIDATE,
    NO_TESTS,
    OK,
    TOO_FEW_LABELLED_TESTS,
    WEAK_CONSENSUS,
)
from synthsmith.stages.votes import GOLDEN_LIST, SOL, TASK, TEST, duplicate_error, with_key_ids

MIN_SUPPORT = 2  # candidates that must agree on every test
MARGIN = 2  # how many more members the golden cluster needs than any other cluster
# Discards that more candidates can turn into a keep (stage more_candidates asks for them).
UNDECIDED_REASONS = (WEAK_CONSENSUS, CONTESTED_CONSENSUS, NO_PASSING_CANDIDATE, DEGENERATE_OUTPUTS)

_SHIFT = 1 << 32


def strict_verify(runs: pl.DataFrame, tests: pl.DataFrame, seed: int,
                  float_tol: float = 1e-6) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Consensus verification (module docstring) on conformed RUNS and TESTS (weights unused)."""
    evidence = consensus_evidence(runs, tests, float_tol)
    return consensus_verdicts(evidence, evidence.tasks.with_columns(reason=consensus_reason()), seed)


class Evidence(NamedTuple):
    """What strict decides from (shared with stages/verify_calibrated.py).

    names: the sorted task, test and solution ids (codes index them); clean: the clean runs
    (x, ok, output, ts, tx, key_id); clusters: `_clusters(clean)`; tests: t, x, tx per test;
    tasks: one row per task code t with tests, candidates, the AGREEMENT columns and
    `_golden_clusters`' columns (null for a task without a clean run)."""
    names: tuple[pl.Series, pl.Series, pl.Series]
    clean: pl.DataFrame
    clusters: pl.DataFrame
    tests: pl.DataFrame
    tasks: pl.DataFrame


def consensus_evidence(runs: pl.DataFrame, tests: pl.DataFrame, float_tol: float = 1e-6) -> Evidence:
    """Steps 1-3 of the module docstring up to the decision. Raises on duplicate runs."""
    names, coded, coded_tests = _encode(runs, tests)
    n_tests = coded_tests.group_by("t").agg(tests=pl.len())
    candidates = coded.select(pl.col("ts").unique()).group_by(t=task_of("ts")).agg(candidates=pl.len())
    ran_cleanly = pl.col("ok") & pl.col("tx").is_in(coded_tests["tx"].implode())
    clean = with_key_ids(coded.filter(ran_cleanly).with_columns(pl.col("output").fill_null("")), float_tol)
    clusters = _clusters(clean)
    tasks = (
        pl.DataFrame({"t": pl.int_range(names[0].len(), dtype=pl.UInt32, eager=True)})
        .join(n_tests, on="t", how="left")
        .join(candidates, on="t", how="left")
        .join(_agreement(clean), on="t", how="left")
        .join(_golden_clusters(clusters), on="t", how="left")
        .with_columns(pl.col("tests", "candidates", "voted_tests", "labelled_tests", "tied_tests").fill_null(0))
        .with_columns(mean_top_share=pl.col("top_counts") / pl.col("voted_tests") / pl.col("candidates"))
    )
    return Evidence(names, clean, clusters, coded_tests, tasks)


def consensus_verdicts(evidence: Evidence, tasks: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(verdicts, agreement) from `tasks` (evidence.tasks plus a `reason`, null to keep): a kept
    task's golden solution is its golden cluster's lowest candidate, its golden tests a seeded
    half (`golden_split`) of that candidate's clean outputs."""
    task_names, test_names, sol_names = evidence.names
    tasks = tasks.with_columns(kept=pl.col("reason").is_null())
    kept = tasks.filter("kept")["golden_ts"]
    labels = evidence.clean.filter(pl.col("ts").is_in(kept.implode())).select("x", "output", t=task_of("ts"))
    labels = golden_split(labels.with_columns(task_id=decode(task_names, "t")), seed)
    golden_tests = (
        labels.filter("golden")
        .group_by("t", maintain_order=True)
        .agg(golden_tests=pl.struct(test_id=decode(test_names, "x"), expected_output="output"))
    )
    verdicts = (
        tasks.join(golden_tests, on="t", how="left")
        .with_columns(task_id=decode(task_names, "t"),
                      golden_solution_id=pl.when("kept").then(decode(sol_names, pl.col("golden_ts") % _SHIFT)),
                      golden_tests=pl.col("golden_tests").fill_null(pl.lit([], dtype=GOLDEN_LIST)))
    )
    return verdicts, verdicts.select(TASK, "labelled_tests", "tied_tests", "mean_top_share")


def golden_split(labels: pl.DataFrame, seed: int) -> pl.DataFrame:
    """`labels` (t, x: task and test codes, task_id, one row per test) sorted by (t, x), plus
    `golden`: per task, the ceil(n/2) tests first in a seeded pseudo-random order.

    The order: a task's seed is the first 8 bytes of blake2b(f"{seed}:{task_id}"); its i-th test
    (in test_id order) ranks by splitmix64(task seed + i * golden gamma). So a task's split
    depends only on the seed, its task_id and its labelled test_ids, and is the same on every
    platform and library version (the paper's method shuffles with random.Random, which costs
    ~10 us per task; this is vectorised)."""
    labels = labels.sort("t", "x")
    tasks = labels.select("t", "task_id").unique("t", keep="first", maintain_order=True)
    task_seeds = pl.Series([int.from_bytes(hashlib.blake2b(f"{seed}:{task}".encode(), digest_size=8).digest(), "little")
                            for task in tasks["task_id"]], dtype=pl.UInt64)
    return (
        labels.join(tasks.select("t", task_seed=task_seeds), on="t", maintain_order="left")
        .with_columns(i=pl.int_range(pl.len(), dtype=pl.UInt64).over("t"), n=pl.len().over("t"))
        .with_columns(order=_splitmix64(pl.col("task_seed") + pl.col("i") * _u64(_GAMMA)))
        .with_columns(rank=pl.col("order").rank("ordinal").over("t"))
        .with_columns(golden=pl.col("rank") <= (pl.col("n") + 1) // 2)
        .drop("task_seed", "i", "n", "order", "rank")
    )


_GAMMA = 0x9E3779B97F4A7C15


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _splitmix64(z: pl.Expr) -> pl.Expr:
    """splitmix64's output function (u64 arithmetic wraps; // 2**k is a logical shift right)."""
    z = z + _u64(_GAMMA)
    z = (z ^ (z // 2**30)) * _u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z // 2**27)) * _u64(0x94D049BB133111EB)
    return z ^ (z // 2**31)


def _encode(runs: pl.DataFrame, tests: pl.DataFrame):
    """Ids as codes of sorted Enums (so code order is string order); runs get x, ok, output,
    ts = (t, s) and tx = (t, x) packed in 64 bits; tests t, x, tx. Raises on duplicate runs."""
    names = (pl.concat([tests[TASK], runs[TASK]]).drop_nulls().unique().sort(),
             pl.concat([tests[TEST], runs[TEST]]).drop_nulls().unique().sort(), runs[SOL].drop_nulls().unique().sort())
    task, test, sol = (pl.Enum(n) for n in names)
    coded = runs.select(
        t=pl.col(TASK).cast(task).to_physical(), x=pl.col(TEST).cast(test).to_physical(),
        s=pl.col(SOL).cast(sol).to_physical(), ok=pl.col("status") == OK, output=pl.col("output"),
    ).select("x", "ok", "output", ts=_pack(pl.col("t"), pl.col("s")), tx=_pack(pl.col("t"), pl.col("x")))
    # (ts, x) is exact, so this is the runs' uniqueness check (verify() leaves it to the method).
    if coded.select((pl.col("ts") * _u64(_GAMMA) + pl.col("x")).n_unique()).item() != coded.height:
        if coded.select("ts", "x").is_duplicated().any():
            raise duplicate_error([TASK, SOL, TEST], "runs")
    coded_tests = tests.select(t=pl.col(TASK).cast(task).to_physical(), x=pl.col(TEST).cast(test).to_physical())
    return names, coded, coded_tests.with_columns(tx=_pack(pl.col("t"), pl.col("x")))


def _pack(high: pl.Expr, low: pl.Expr) -> pl.Expr:
    return high.cast(pl.UInt64) * _SHIFT + low.cast(pl.UInt64)


def decode(names: pl.Series, code: str | pl.Expr) -> pl.Expr:
    code = pl.col(code) if isinstance(code, str) else code
    return pl.lit(names).gather(code.cast(pl.UInt32))


def _clusters(clean: pl.DataFrame) -> pl.DataFrame:
    """One row per cluster: t, size, first (its lowest ts), clean_tests, eligible."""
    code = pl.col("key_id") * _u64(_GAMMA) + pl.col("x").cast(pl.UInt64)
    if not clean["ts"].is_sorted():  # runs usually come sorted by task and solution: then free
        clean = clean.sort("ts")
    vectors = clean.with_columns(pl.col("ts").set_sorted()).group_by("ts", maintain_order=True).agg(
        h1=code.hash(seed=1).sum(), h2=code.hash(seed=2).sum(), clean_tests=pl.len(),
        varied=pl.col("key_id").min() != pl.col("key_id").max(),
    )
    return (
        vectors.group_by(task_of("ts").alias("t"), "h1", "h2", "clean_tests")
        .agg(size=pl.len(), first=pl.col("ts").min(), varied=pl.col("varied").first())
        .select("t", "size", "first", "clean_tests", eligible=(pl.col("clean_tests") >= 2) & pl.col("varied"))
    )


def task_of(packed: str) -> pl.Expr:
    return (pl.col(packed) // _SHIFT).cast(pl.UInt32)


def _golden_clusters(clusters: pl.DataFrame) -> pl.DataFrame:
    """Per task with a clean run: the golden (largest eligible) cluster's size and lowest
    candidate (ts), the largest other cluster's size, and whether any cluster qualifies."""
    ranked = clusters.sort(["t", "eligible", "size", "first"], descending=[False, True, True, False]).with_columns(
        rank=pl.int_range(pl.len()).over("t"))
    golden = ranked.filter(pl.col("rank") == 0).select(
        "t", any_eligible="eligible", golden_size="size", golden_ts="first")
    rest = ranked.group_by("t").agg(
        any_two_tests=(pl.col("clean_tests") >= 2).any(),
        runner_up_size=pl.col("size").filter(pl.col("rank") > 0).max().fill_null(0),
    )
    return golden.join(rest, on="t")


def _agreement(clean: pl.DataFrame) -> pl.DataFrame:
    """AGREEMENT's columns from the per-input plurality vote (as for every method) per task.

    Votes are counted per hash of (test, key): a collision between two of a table's ~10^6
    (test, key) pairs (chance ~1e-7 for 10M runs) would miscount one test's top share; only
    this statistic could be affected, never a verdict."""
    votes = (
        clean.group_by(pair=(pl.col("tx") * _u64(_GAMMA)) ^ pl.col("key_id"))
        .agg(tx=pl.col("tx").first(), count=pl.len())
        .sort(["tx", "count"], descending=[False, True])
    )
    # Per test, its first row holds the top count, tied when the next row has the same count.
    first = pl.col("tx") != pl.col("tx").shift(1)
    tied = (pl.col("tx") == pl.col("tx").shift(-1)) & (pl.col("count") == pl.col("count").shift(-1))
    per_test = votes.with_columns(first=first.fill_null(True), tied=tied.fill_null(False)).filter("first")
    return (
        per_test.group_by(t=task_of("tx"))
        .agg(voted_tests=pl.len().cast(pl.Int64),
             labelled_tests=(~pl.col("tied")).sum().cast(pl.Int64),
             tied_tests=pl.col("tied").sum().cast(pl.Int64),
             top_counts=pl.col("count").sum())
    )


def consensus_reason(margin: int = MARGIN) -> pl.Expr:
    """Why a task is discarded (null: kept), the golden cluster needing a lead of `margin` members."""
    return (
        pl.when(pl.col("tests") == 0).then(pl.lit(NO_TESTS))
        .when(pl.col("candidates") == 0).then(pl.lit(NO_CANDIDATES))
        .when(pl.col("voted_tests") == 0).then(pl.lit(NO_PASSING_CANDIDATE))
        .when(~pl.col("any_two_tests")).then(pl.lit(TOO_FEW_LABELLED_TESTS))
        .when(~pl.col("any_eligible")).then(pl.lit(DEGENERATE_OUTPUTS))
        .when(pl.col("golden_size") < MIN_SUPPORT).then(pl.lit(WEAK_CONSENSUS))
        .when(pl.col("golden_size") < pl.col("runner_up_size") + margin).then(pl.lit(CONTESTED_CONSENSUS))
    )
