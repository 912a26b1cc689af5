"""Stage `train_sft`: TRL SFT of the base model on the train split's golden solutions
(data/train_sft), curves and final metrics in reports/train_sft/."""

from prefect import flow, get_run_logger

from synthsmith.contract.params import load_params
from synthsmith.runtime.stage import run_stage
from synthsmith.train.trainers import train_sft


@flow(name="train_sft")
def train_sft_flow(params_path: str = "params.yaml") -> None:
    settings = load_params(params_path).train_sft
    metrics = train_sft(settings, base="data/base_model", data="data/export/sft.parquet",
                        out="data/train_sft", reports="reports/train_sft")
    get_run_logger().info("SFT: %d examples, %d steps in %.1f s, final loss %s -> data/train_sft",
                          metrics["examples"], metrics["steps"], metrics["train_wall_s"],
                          metrics.get("train", {}).get("loss"))


if __name__ == "__main__":
    run_stage(train_sft_flow)
