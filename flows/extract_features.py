"""Stage `extract_features`."""

from synthsmith.orchestration import map_shards, read_table, run_stage, write_tables
from prefect import flow

from synthsmith import schemas
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.params import load_params
from synthsmith.stages import features


@flow(name="extract_features")
def extract_features_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    seeds = read_table("data/seeds/seeds.parquet", schemas.SEEDS)
    requests = features.extraction_requests(seeds, params.extract_features)
    settings = params.extract_features
    responses = map_shards(answer_requests, requests, settings.shard_size, "feature extraction",
                           **shard_settings(params.llm, what="feature extraction", reask=settings.reask,
                                            validator="synthsmith.stages.features:check_extraction"))
    answers = features.parse_extractions(seeds, responses)
    pool = features.build_pool(answers)
    write_tables("data/extract_features", {"answers": answers, "pool": pool,
                                           "llm_usage": usage("extract_features", responses),
                                           "funnel": features.extraction_funnel(answers, pool)})


if __name__ == "__main__":
    run_stage(extract_features_flow)
