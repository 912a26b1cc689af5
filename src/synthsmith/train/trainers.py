"""The TRL trainers of train_sft and train_rl: SFTTrainer on the golden solutions, GRPOTrainer on
the golden tests. Everything tunable comes from params (TrainSftParams, TrainRlParams); the training
loops are TRL's. Curves go to dvclive through `live_curves`, checkpoints through `save_checkpoint`.

SFT uses TRL's conversational prompt-completion format (the user turn as `prompt`, the golden
assistant turn as `completion`) with `completion_only_loss`: the chat template applies and only the
solution is trained on. `assistant_only_loss` is not an option with SmolLM2: its template has no
`{% generation %}` markers and TRL cannot patch it.

GRPO: TRL 1.16 dropped `max_prompt_length` (prompts are never truncated), so prompts longer than
`train_rl.max_prompt_length` tokens are dropped here and counted. Heavy imports stay inside functions.
"""

from __future__ import annotations

import fnmatch
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Callable

from synthsmith.contract.params import LoraParams, TrainRlParams, TrainSftParams, UserError
from synthsmith.runtime.io import where_the_funnel_stopped
from synthsmith.train.models import load_checkpoint, pick_device, save_checkpoint

TRAIN_SPLIT = "train"
# The on_log keys drawn as curves (fnmatch patterns); the rest of TRL's logs stay in the stage log.
CURVES = ("loss", "learning_rate", "grad_norm", "mean_token_accuracy", "reward", "reward_std",
          "rewards/*/mean", "completions/mean_length")


def train_sft(params: TrainSftParams, base: str | Path, data: str | Path, out: str | Path,
              reports: str | Path) -> dict:
    """Fine-tune the checkpoint at `base` on the train split of the SFT table `data`; write the
    merged checkpoint to `out` and curves plus final metrics to `reports`. Returns the metrics."""
    from transformers import set_seed
    from trl import SFTTrainer

    set_seed(params.seed)  # before peft draws the adapter's initial weights
    dataset = sft_dataset(read_train_split(data))  # before loading the model: an empty split fails fast
    model, tokenizer = load_checkpoint(base, "float32", params.device)
    with tempfile.TemporaryDirectory(prefix="train_sft-") as scratch:
        trainer = SFTTrainer(model=model, args=sft_config(params, scratch), train_dataset=dataset,
                             processing_class=tokenizer, peft_config=lora_config(params.lora))
        if len(trainer.train_dataset) == 0:  # TRL drops examples whose completion truncation cut away
            raise UserError(f"train_sft.max_length: {params.max_length} tokens cut the solution off every "
                            f"one of the {len(dataset)} train examples; raise it (the prompts alone are longer)")
        return _train(trainer, tokenizer, out, reports, {"examples": len(dataset)})


def train_rl(params: TrainRlParams, start: str | Path, data: str | Path, out: str | Path,
             reports: str | Path, reward: Callable[..., list[float]]) -> dict:
    """GRPO from the checkpoint at `start` on the train split of the RL table `data`, rewarded by
    `reward(completions, reward_model, **other_columns) -> list[float]` (a TRL reward function
    with its sandbox limits bound, e.g. `reward.make_grpo_reward(params.reward)`)."""
    from transformers import set_seed
    from trl import GRPOTrainer

    set_seed(params.seed)
    rows = read_train_split(data)
    model, tokenizer = load_checkpoint(start, "float32", params.device)
    tokenizer.padding_side = "left"  # GRPO generates from left-padded prompts
    dataset, too_long = rl_dataset(rows, tokenizer, params.max_prompt_length)
    with tempfile.TemporaryDirectory(prefix="train_rl-") as scratch:
        trainer = GRPOTrainer(model=model, reward_funcs=reward,
                              args=grpo_config(params, scratch), train_dataset=dataset,
                              processing_class=tokenizer, peft_config=lora_config(params.lora))
        return _train(trainer, tokenizer, out, reports,
                      {"examples": len(dataset), "examples_dropped_too_long": too_long})


def read_train_split(path: str | Path):
    """The rows of a Parquet table in the train split: its `split` column (SFT) or
    `extra_info.split` (RL, verl's layout); a table with neither is all train."""
    import pandas as pd

    frame = pd.read_parquet(path)
    if "split" in frame.columns:
        frame = frame[frame["split"] == TRAIN_SPLIT]
    elif "extra_info" in frame.columns:
        frame = frame[[(info or {}).get("split", TRAIN_SPLIT) == TRAIN_SPLIT for info in frame["extra_info"]]]
    if frame.empty:
        stopped = where_the_funnel_stopped()
        raise UserError(f"{path}: no rows in the {TRAIN_SPLIT!r} split to train on: " + (
            f"the funnel reached zero at {stopped}" if stopped else
            "the data stages exported no training task (reports/metrics.json has every stage's counts)"))
    return frame.reset_index(drop=True)


def sft_dataset(frame):
    """Chat `messages` (user prompt, assistant golden solution) -> conversational prompt-completion
    rows: every turn before the last is the prompt, the last (assistant) turn the completion."""
    from datasets import Dataset

    rows = []
    for messages in frame["messages"]:
        turns = [_plain(turn) for turn in messages]
        if len(turns) < 2 or turns[-1]["role"] != "assistant":
            raise UserError("sft table: every `messages` needs a prompt and a final assistant turn")
        rows.append({"prompt": turns[:-1], "completion": turns[-1:]})
    return Dataset.from_list(rows)


def rl_dataset(frame, tokenizer, max_prompt_length: int):
    """(dataset, dropped): the RL rows whose chat-templated prompt fits in `max_prompt_length`
    tokens, every column kept (the reward reads `reward_model`), and how many were too long."""
    from datasets import Dataset

    rows = [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]
    fits = [row for row in rows if _prompt_tokens(tokenizer, row["prompt"]) <= max_prompt_length]
    if not fits:
        raise UserError(f"train_rl.max_prompt_length: all {len(rows)} prompts are longer than "
                        f"{max_prompt_length} tokens; raise it")
    return Dataset.from_list(fits), len(rows) - len(fits)


def lora_config(params: LoraParams):
    """peft's LoraConfig for a causal LM, or None for full fine-tuning."""
    if not params.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=params.r, lora_alpha=params.alpha,
                      lora_dropout=params.dropout, target_modules=list(params.target_modules))


def sft_config(params: TrainSftParams, output_dir: str | Path):
    from trl import SFTConfig

    return SFTConfig(**_common_args(params, output_dir), max_length=params.max_length,
                     completion_only_loss=True, packing=False)


def grpo_config(params: TrainRlParams, output_dir: str | Path):
    """TRL's GRPOConfig: `batch_size` completions per device step, generated in groups of
    `num_generations` per prompt, so their product with `gradient_accumulation` must hold whole
    groups (TRL generates once per `gradient_accumulation` steps, the default steps_per_generation)."""
    from trl import GRPOConfig

    completions = params.batch_size * params.gradient_accumulation
    if completions % params.num_generations:
        raise UserError(f"train_rl.batch_size x gradient_accumulation ({completions}) must be a multiple of "
                        f"train_rl.num_generations ({params.num_generations})")
    return GRPOConfig(**_common_args(params, output_dir), num_generations=params.num_generations,
                      max_completion_length=params.max_completion_length, temperature=params.temperature,
                      beta=params.beta, log_completions=False)


def live_curves(live):
    """A transformers TrainerCallback forwarding each step's logs to `live` (see `log_curves`)."""
    from transformers import TrainerCallback

    class LiveCurves(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            log_curves(live, state.global_step, logs or {})

    return LiveCurves()


def log_curves(live, step: int, logs: dict) -> None:
    """The CURVES among one step's `logs` as dvclive metrics `train/<key>` at `step`:
    `<dir>/plots/metrics/train/<key>.tsv`, latest values in `<dir>/metrics.json`. The trainer's
    end-of-training summary (train_runtime, train_loss) is no step and is skipped."""
    curves = {key: float(value) for key, value in logs.items() if _is_curve(key, value)}
    if not curves or "train_runtime" in logs:
        return
    live.step = step
    for key, value in curves.items():
        live.log_metric(f"train/{key}", value)
    live.next_step()


def open_live(reports: str | Path):
    """dvclive writing only into `reports` (never dvc.yaml, no DVC experiment, no report file)."""
    from dvclive import Live

    return Live(dir=str(reports), dvcyaml=None, save_dvc_exp=False, report=None, monitor_system=False)


def _common_args(params, output_dir) -> dict:
    """TrainingArguments shared by both trainers: params, plus fixed CPU-friendly settings. Weights
    load in float32 (the optimizer's copy); precision bfloat16/float16 turns on mixed precision, so
    never bf16 on CPU unless asked (TRL's configs default to bf16). No checkpoints during training
    (save_checkpoint writes one at the end), no reporting integrations (live_curves logs), a log
    line and a curve point every step, a progress bar, no dataloader workers, seeded data order."""
    cpu = pick_device(params.device) == "cpu"
    return dict(
        output_dir=str(output_dir), max_steps=params.steps, learning_rate=params.learning_rate,
        per_device_train_batch_size=params.batch_size, gradient_accumulation_steps=params.gradient_accumulation,
        seed=params.seed, data_seed=params.seed, use_cpu=cpu,
        bf16=params.precision == "bfloat16", fp16=params.precision == "float16",
        save_strategy="no", report_to=[], logging_steps=1, logging_first_step=True,
        dataloader_num_workers=0, disable_tqdm=False,
    )


def _train(trainer, tokenizer, out, reports, counts: dict) -> dict:
    """Run `trainer` with curves to dvclive, save the merged checkpoint, finish metrics.json. Under a
    multi-process launch (accelerate) every process trains, and only the main one writes."""
    main = trainer.is_world_process_zero()
    live = open_live(reports) if main else None
    if main:
        trainer.add_callback(live_curves(live))
    started = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - started
    if not main:
        return {}
    save_checkpoint(trainer.model, tokenizer, out)
    live.step = result.global_step  # next_step left it one past the last logged step
    live.summary.update(counts, steps=result.global_step, train_wall_s=round(wall, 2),
                        train_loss_mean=result.training_loss)
    live.make_summary()
    live.end()
    return json.loads(Path(live.metrics_file).read_text())


def _is_curve(key: str, value) -> bool:
    return (isinstance(value, (int, float)) and math.isfinite(value)
            and any(fnmatch.fnmatchcase(key, pattern) for pattern in CURVES))


def _prompt_tokens(tokenizer, prompt) -> int:
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _plain(value):
    """Parquet's numpy arrays of structs -> lists of dicts, recursively (what TRL and `datasets` take)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value
