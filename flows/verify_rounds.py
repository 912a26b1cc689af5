"""Stage `verify_rounds`: more candidates for the tasks verify left undecided, round by round
(stages/verify_rounds.py); its verdicts are final and feed export."""

from collections import Counter

import polars as pl
from prefect import flow, get_run_logger

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import load_params
from synthsmith.contract.values import DISCARDED, KEPT
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage
from synthsmith.sandbox.runner import run_jobs
from synthsmith.stages import execute, generate_solutions
from synthsmith.stages.solvability import drop_unsolved
from synthsmith.stages.verify import verify
from synthsmith.stages.verify_rounds import (
    next_samples,
    replace_rows,
    round_row,
    rule_threshold,
    samples_cap,
    undecided,
)


@flow(name="verify_rounds")
def verify_rounds_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    rules, solving, running = params.verify, params.generate_solutions, params.execute
    tasks = read_table("data/generate_tasks/tasks.parquet", tables.TASKS)
    tests = read_table("data/generate_tests/tests.parquet", tables.TEST_INPUTS)
    solutions = read_table("data/generate_solutions/solutions.parquet", tables.SOLUTIONS)
    runs = read_table("data/execute/executions.parquet", tables.EXECUTIONS)
    verdicts = read_table("data/verify/verdicts.parquet", tables.VERDICTS)
    agreement = read_table("data/verify/agreement.parquet", tables.AGREEMENT)
    first_usage = read_table("data/generate_solutions/llm_usage.parquet", tables.LLM_USAGE)
    rounds = [round_row(0, solving.samples_per_model, verdicts.height, first_usage, solutions.height, runs.height,
                        verdicts)]
    entering = verdicts.filter(pl.col("outcome") != DISCARDED)["task_id"]  # kept or undecided by verify
    new_solutions, new_runs, answers, rejected = [], [], [], Counter()
    cap, asked = samples_cap(rules, solving), solving.samples_per_model
    while (open_ids := undecided(verdicts)).len():
        samples = next_samples(asked, params.verify_rounds.samples_per_model, cap)
        asked = samples.stop
        what = f"round {len(rounds)} candidates"
        requested = generate_solutions.solution_requests(tasks.filter(pl.col("task_id").is_in(open_ids.implode())),
                                                         solving, samples)
        answered = map_shards(answer_requests, requested, solving.shard_size, what,
                              **shard_settings(params.llm, what=what, reask=solving.reask,
                                               validator="synthsmith.stages.generate_solutions:check_solution"))
        candidates, bad = generate_solutions.parse_solutions(requested, answered, solving)
        jobs = execute.build_jobs(candidates, tests, tasks, running)
        results = map_shards(run_jobs, jobs, running.shard_size, f"round {len(rounds)} sandbox runs",
                             workers=running.workers)
        new_solutions.append(candidates)
        new_runs.append(execute.executions(jobs, results, candidates))
        answers.append(answered)
        rejected += bad
        solutions, runs = pl.concat([solutions, candidates]), pl.concat([runs, new_runs[-1]])
        now, now_agreement = verify(
            runs.filter(pl.col("task_id").is_in(open_ids.implode())),
            tests.filter(pl.col("task_id").is_in(open_ids.implode())).select("task_id", "test_id", "input", "weight"),
            seed=rules.seed, method=rules.method, float_tol=rules.float_tol, threshold=rule_threshold(rules, solving),
            more_possible=open_ids if asked < cap else None)
        if rules.strong_model:
            now = drop_unsolved(now, runs, solutions, rules.strong_model, rules.float_tol)
        verdicts = replace_rows(verdicts, now, tables.VERDICTS)
        agreement = replace_rows(agreement, now_agreement, tables.AGREEMENT)
        rounds.append(round_row(len(rounds), asked, open_ids.len(), usage("verify_rounds", answered, params.llm),
                                candidates.height, new_runs[-1].height, now))
        get_run_logger().info("round %d: %d undecided tasks got samples %d-%d of each model: %d kept, %d discarded, "
                              "%d still undecided", len(rounds) - 1, open_ids.len(), samples.start, samples.stop - 1,
                              rounds[-1]["kept"], rounds[-1]["discarded"], rounds[-1]["undecided"])
    kept = int((verdicts["outcome"] == KEPT).sum())
    ended = verdicts.filter(pl.col("task_id").is_in(entering.implode()) & (pl.col("outcome") == DISCARDED))
    write_tables("data/verify_rounds", {
        "solutions": pl.concat([tables.SOLUTIONS.empty(), *new_solutions]),
        "executions": pl.concat([tables.EXECUTIONS.empty(), *new_runs]),
        "verdicts": verdicts, "agreement": agreement, "rounds": pl.DataFrame(rounds, schema=tables.ROUNDS.columns),
        "llm_usage": usage("verify_rounds", pl.concat([tables.LLM_RESPONSES.empty(), *answers]), params.llm),
        "funnel": funnel("verify_rounds", entering.len(), kept, dict(ended.group_by("reason").len().iter_rows()),
                         rejected=rejected, rounds=len(rounds) - 1,
                         candidates_added=sum(s.height for s in new_solutions)),
    })


if __name__ == "__main__":
    run_stage(verify_rounds_flow, scale_out=True)
