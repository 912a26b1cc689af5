"""Stage `evolve_features`: `rounds` rounds of breadth + depth evolution."""

from collections import Counter

import polars as pl
from prefect import flow, get_run_logger

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import load_params
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage
from synthsmith.stages import evolve_features


@flow(name="evolve_features")
def evolve_features_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.evolve_features
    start = pool = read_table("data/extract_features/pool.parquet", tables.FEATURE_POOL)
    counts: Counter = Counter()
    all_responses = []
    for round_no in range(1, settings.rounds + 1):
        asked = evolve_features.evolution_requests(pool, settings, round_no)
        responses = map_shards(answer_requests, asked, settings.shard_size, f"evolution round {round_no}",
                               **shard_settings(params.llm, what=f"evolution round {round_no}", reask=settings.reask,
                                                validator="synthsmith.stages.evolve_features:check_evolution",
                                                schema="synthsmith.stages.answer_schemas:EVOLUTION"))
        all_responses.append(responses)
        pool, round_counts = evolve_features.merge_evolution(pool, asked, responses, round_no)
        counts += round_counts
        get_run_logger().info("round %d: %d nodes in the tree (%s)", round_no, pool.height, dict(round_counts))
    growth = evolve_features.growth(start, pool)
    added = {kind: counts[f"added_{kind}"] for kind in ("breadth", "depth")}
    rejected = {k: v for k, v in counts.items() if not k.startswith("added_")}
    write_tables("data/evolve_features", {"pool": pool, "growth": growth,
                                          "llm_usage": usage("evolve_features", pl.concat(all_responses), params.llm),
                                          "funnel": funnel("evolve_features", start.height, pool.height,
                                                           added=added, rejected=rejected)})


if __name__ == "__main__":
    run_stage(evolve_features_flow)
