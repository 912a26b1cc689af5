"""Stage `base_model`: the configured base model as a safetensors checkpoint (data/base_model)."""

from prefect import flow, get_run_logger

from synthsmith.contract.params import load_params
from synthsmith.runtime.stage import run_stage
from synthsmith.train.models import load_base, save_checkpoint


@flow(name="base_model")
def base_model_flow(params_path: str = "params.yaml") -> None:
    settings = load_params(params_path).base_model
    model, tokenizer = load_base(settings.source, settings.precision, device="cpu")
    save_checkpoint(model, tokenizer, "data/base_model")
    get_run_logger().info("base model %s: %.1fM parameters -> data/base_model", settings.source,
                          sum(p.numel() for p in model.parameters()) / 1e6)


if __name__ == "__main__":
    run_stage(base_model_flow)
