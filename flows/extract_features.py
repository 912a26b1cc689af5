"""Stage `extract_features`."""

from prefect import flow

from synthsmith.contract import tables
from synthsmith.contract.params import load_params
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage
from synthsmith.stages import extract_features


@flow(name="extract_features")
def extract_features_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    seeds = read_table("data/seeds/seeds.parquet", tables.SEEDS)
    requests = extract_features.extraction_requests(seeds, params.extract_features)
    settings = params.extract_features
    responses = map_shards(answer_requests, requests, settings.shard_size, "feature extraction",
                           **shard_settings(params.llm, what="feature extraction", reask=settings.reask,
                                            validator="synthsmith.stages.extract_features:check_extraction",
                                            schema="synthsmith.stages.answer_schemas:FEATURES"))
    answers = extract_features.parse_extractions(seeds, responses)
    pool = extract_features.build_pool(answers)
    write_tables("data/extract_features", {"answers": answers, "pool": pool,
                                           "llm_usage": usage("extract_features", responses, params.llm),
                                           "funnel": extract_features.extraction_funnel(answers, pool)})


if __name__ == "__main__":
    run_stage(extract_features_flow)
