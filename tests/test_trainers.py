"""The TRL trainers: train splits, dataset formats, curves to dvclive, and (slow) SFT and GRPO end to
end on a tiny random Llama with SmolLM2's tokenizer, whose checkpoints load offline and generate."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synthsmith.contract.params import LoraParams, TrainRlParams, TrainSftParams, UserError
from synthsmith.train import trainers

SHORT = "Print 1."
ANSWER = "```python\nprint(1)\n```"


def _sft_rows() -> pd.DataFrame:
    rows = [(f"t{i}", split) for i, split in enumerate(["train", "train", "heldout"])]
    return pd.DataFrame([{"task_id": task, "split": split, "style": "codeforces", "source": "s",
                          "messages": [{"role": "user", "content": f"{SHORT} ({task})"},
                                       {"role": "assistant", "content": ANSWER}]} for task, split in rows])


def _rl_rows(long_prompt: str = "") -> pd.DataFrame:
    prompts = [SHORT, SHORT + " Quickly.", long_prompt or SHORT, SHORT]
    splits = ["train", "train", "train", "heldout"]
    return pd.DataFrame([{"data_source": "d", "prompt": [{"role": "user", "content": prompt}], "ability": "code",
                          "reward_model": {"style": "rule", "ground_truth": json.dumps({"tests": [], "io": "stdio"})},
                          "extra_info": {"task_id": f"t{i}", "split": split, "index": i},
                          "task_id": f"t{i}", "style": "codeforces"}
                         for i, (prompt, split) in enumerate(zip(prompts, splits))])


def test_the_train_split_comes_from_split_or_extra_info_and_a_table_without_either_is_all_train(tmp_path):
    sft, rl = tmp_path / "sft.parquet", tmp_path / "rl.parquet"
    _sft_rows().to_parquet(sft)
    _rl_rows().to_parquet(rl)
    assert trainers.read_train_split(sft)["task_id"].tolist() == ["t0", "t1"]
    assert trainers.read_train_split(rl)["task_id"].tolist() == ["t0", "t1", "t2"]
    _sft_rows().drop(columns="split").to_parquet(sft)
    assert len(trainers.read_train_split(sft)) == 3
    _sft_rows().assign(split="heldout").to_parquet(sft)
    with pytest.raises(UserError, match="no rows in the 'train' split"):
        trainers.read_train_split(sft)


def test_sft_rows_become_conversational_prompt_completion_pairs(tmp_path):
    path = tmp_path / "sft.parquet"
    _sft_rows().to_parquet(path)  # through Parquet: messages come back as numpy arrays of dicts
    dataset = trainers.sft_dataset(trainers.read_train_split(path))
    assert dataset[0]["prompt"] == [{"role": "user", "content": f"{SHORT} (t0)"}]
    assert dataset[0]["completion"] == [{"role": "assistant", "content": ANSWER}]


class _FakeLive:
    def __init__(self):
        self.step, self.points = 0, []

    def log_metric(self, name, value):
        self.points.append((self.step, name, value))

    def next_step(self):
        self.step += 1


def test_curves_are_logged_at_the_trainer_step_and_the_final_summary_is_no_step():
    live = _FakeLive()
    trainers.log_curves(live, 3, {"loss": 1.5, "learning_rate": 1e-4, "num_tokens": 99.0, "epoch": 0.3,
                                  "rewards/grpo_reward/mean": 2.0, "reward": 2.0, "grad_norm": float("nan")})
    trainers.log_curves(live, 3, {"train_runtime": 9.0, "train_loss": 1.5})
    assert sorted(live.points) == [(3, "train/learning_rate", 1e-4), (3, "train/loss", 1.5),
                                   (3, "train/reward", 2.0), (3, "train/rewards/grpo_reward/mean", 2.0)]


def test_lora_is_optional():
    assert trainers.lora_config(LoraParams(enabled=False)) is None


# --- slow: TRL end to end on a tiny model ---------------------------------------------------------

CPU = {"device": "cpu", "seed": 0, "lora": LoraParams(r=2, alpha=4)}


def _generates(checkpoint) -> str:
    """The checkpoint loads offline with plain transformers, applies its chat template, generates."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": SHORT}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == ids["input_ids"].shape[1] + 4 or tokenizer.eos_token_id in out[0].tolist()
    return tokenizer.decode(out[0])


@pytest.mark.slow
def test_sft_trains_the_train_split_and_writes_a_checkpoint_curves_and_metrics(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # dvclive looks for a DVC repo in the working directory: none here
    _sft_rows().to_parquet("sft.parquet")
    params = TrainSftParams(steps=2, learning_rate=1e-3, max_length=64, **CPU)
    metrics = trainers.train_sft(params, tiny_base, "sft.parquet", "out", "reports")
    assert metrics["examples"] == 2 and metrics["steps"] == 2 and metrics["step"] == 2
    assert metrics["train"]["loss"] > 0 and metrics["train_wall_s"] > 0
    assert json.loads((tmp_path / "reports/metrics.json").read_text()) == metrics
    loss = pd.read_csv(tmp_path / "reports/plots/metrics/train/loss.tsv", sep="\t")
    assert loss.columns.tolist() == ["step", "loss"] and loss["step"].tolist() == [1, 2]
    assert not list(tmp_path.glob("**/dvc.yaml"))  # dvclive never writes a dvc.yaml
    assert (tmp_path / "out/model.safetensors").exists() and not list(tmp_path.glob("out/adapter*"))
    assert "<|im_start|>assistant" in _generates(tmp_path / "out")


@pytest.mark.slow
def test_a_max_length_that_cuts_every_solution_off_is_one_clear_error(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    _sft_rows().to_parquet("sft.parquet")
    with pytest.raises(UserError, match="train_sft.max_length: 16 tokens cut the solution off every one of the 2"):
        trainers.train_sft(TrainSftParams(steps=1, max_length=16, **CPU), tiny_base, "sft.parquet", "out", "reports")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_grpo_rewards_train_prompts_that_fit_and_writes_a_checkpoint_and_reward_curves(tiny_base, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    _rl_rows(long_prompt="word " * 200).to_parquet("rl.parquet")
    calls = []

    def grpo_reward(completions, reward_model, **kwargs):  # stand-in for synthsmith.train.reward's
        calls.append((completions, reward_model, kwargs["task_id"]))
        return [float(len(completion[0]["content"]) % 3) for completion in completions]

    params = TrainRlParams(steps=1, batch_size=2, num_generations=2, max_prompt_length=48,
                           max_completion_length=8, **CPU)
    metrics = trainers.train_rl(params, tiny_base, "rl.parquet", "out", "reports", reward=grpo_reward)
    assert metrics["examples"] == 2 and metrics["examples_dropped_too_long"] == 1 and metrics["steps"] == 1
    completions, reward_model, task_ids = calls[0]
    assert len(completions) == 2 and completions[0][0]["role"] == "assistant"
    assert reward_model[0]["style"] == "rule" and set(task_ids) <= {"t0", "t1"}
    assert {"reward", "reward_std", "rewards"} <= set(metrics["train"])
    assert metrics["train"]["rewards"]["grpo_reward"]["mean"] == metrics["train"]["reward"]
    assert (tmp_path / "reports/plots/metrics/train/reward.tsv").exists()
    _generates(tmp_path / "out")


@pytest.mark.slow
def test_a_batch_that_splits_a_generation_group_is_one_error_naming_the_keys(tmp_path):
    params = TrainRlParams(batch_size=3, num_generations=2)
    with pytest.raises(UserError, match=r"train_rl.batch_size x gradient_accumulation \(3\).*num_generations \(2\)"):
        trainers.grpo_config(params, tmp_path)
