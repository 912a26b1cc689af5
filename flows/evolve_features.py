"""Stage `evolve_features`: `rounds` rounds of breadth + depth evolution."""

from collections import Counter

from synthsmith.orchestration import map_shards, read_table, run_stage, write_tables
from prefect import flow, get_run_logger

from synthsmith import schemas
from synthsmith.funnel import funnel
import polars as pl

from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.params import load_params
from synthsmith.stages import evolve


@flow(name="evolve_features")
def evolve_features_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.evolve_features
    start = pool = read_table("data/extract_features/pool.parquet", schemas.FEATURE_POOL)
    counts: Counter = Counter()
    all_responses = []
    for round_no in range(1, settings.rounds + 1):
        asked = evolve.evolution_requests(pool, settings, round_no)
        responses = map_shards(answer_requests, asked, settings.shard_size, f"evolution round {round_no}",
                               **shard_settings(params.llm, what=f"evolution round {round_no}", reask=settings.reask,
                                                validator="synthsmith.stages.evolve:check_evolution"))
        all_responses.append(responses)
        pool, round_counts = evolve.merge_evolution(pool, asked, responses, round_no)
        counts += round_counts
        get_run_logger().info("round %d: %d nodes in the tree (%s)", round_no, pool.height, dict(round_counts))
    growth = evolve.growth(start, pool)
    merged = {k: v for k, v in counts.items() if k.startswith(("added_", "merged_"))}
    dropped = {k: v for k, v in counts.items() if k not in merged}
    write_tables("data/evolve_features", {"pool": pool, "growth": growth,
                                          "llm_usage": usage("evolve_features", pl.concat(all_responses)),
                                          "funnel": funnel(
        "evolve_features", int(growth["leaves_before"].sum()), int(growth["leaves_after"].sum()), dropped,
        **merged)})


if __name__ == "__main__":
    run_stage(evolve_features_flow)
