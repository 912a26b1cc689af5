"""Stage `train_rl`: TRL GRPO from the SFT checkpoint on the train split's RL prompts, rewarded by
running the completions on the golden tests (data/train_rl), curves and final metrics in
reports/train_rl/."""

from prefect import flow, get_run_logger

from synthsmith.contract.params import load_params
from synthsmith.runtime.stage import run_stage
from synthsmith.train.reward import make_grpo_reward
from synthsmith.train.trainers import train_rl


@flow(name="train_rl")
def train_rl_flow(params_path: str = "params.yaml") -> None:
    settings = load_params(params_path).train_rl
    metrics = train_rl(settings, start="data/train_sft", data="data/export/rl.parquet",
                       out="data/train_rl", reports="reports/train_rl",
                       reward=make_grpo_reward(settings.reward))
    get_run_logger().info("GRPO: %d prompts (%d too long), %d steps in %.1f s, final mean reward %s -> data/train_rl",
                          metrics["examples"], metrics["examples_dropped_too_long"], metrics["steps"],
                          metrics["train_wall_s"], metrics.get("train", {}).get("reward"))


if __name__ == "__main__":
    run_stage(train_rl_flow)
