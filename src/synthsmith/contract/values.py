"""Value sets: every closed set of names the pipeline uses, declared once.

params.yaml's Literals, the tables' checked columns and the stages' comparisons all import
these. Each set is a `Literal` type alias (for pydantic and type checkers) and the tuple of its
values (`get_args`), for runtime checks and messages.
"""

from __future__ import annotations

from typing import Literal, get_args

# Why `verify` discards a task, checked in this order.
NO_TESTS = "no_tests"  # runs but no row in TESTS
NO_CANDIDATES = "no_candidates"  # tests but no runs at all
NO_PASSING_CANDIDATE = "no_passing_candidate"  # no clean run on any test, or best golden score 0
TOO_FEW_LABELLED_TESTS = "too_few_labelled_tests"  # fewer than 2 inputs survived the vote
GOLDEN_VALIDATION_DISAGREE = "golden_validation_disagree"  # paper: j* and j+ share no candidate
# strict (stages/verify_strict.py), after too_few_labelled_tests:
DEGENERATE_OUTPUTS = "degenerate_outputs"  # every candidate printed one value on all its tests
WEAK_CONSENSUS = "weak_consensus"  # no two candidates agree on every test
CONTESTED_CONSENSUS = "contested_consensus"  # the largest agreeing group does not lead by the margin
# calibrated (stages/verify_calibrated.py): the estimated chance that the leading group is wrong is
# above the threshold.
LOW_CONFIDENCE = "low_confidence"
UNSOLVED_BY_STRONG_MODEL = "unsolved_by_strong_model"  # solvability filter (stages/solvability.py)
DISCARD_REASONS = (NO_TESTS, NO_CANDIDATES, NO_PASSING_CANDIDATE, TOO_FEW_LABELLED_TESTS,
                   GOLDEN_VALIDATION_DISAGREE, DEGENERATE_OUTPUTS, WEAK_CONSENSUS, CONTESTED_CONSENSUS,
                   LOW_CONFIDENCE, UNSOLVED_BY_STRONG_MODEL)

# What verification says about a task (VERDICTS.outcome): kept; undecided, when its method could
# not decide on thin evidence and more candidates can still be asked for (stage more_candidates);
# discarded, for good. An undecided task's `reason` is why the evidence was not enough.
VerdictOutcome = Literal["kept", "undecided", "discarded"]
VERDICT_OUTCOMES: tuple[str, ...] = get_args(VerdictOutcome)
KEPT, UNDECIDED, DISCARDED = VERDICT_OUTCOMES

# verify.method: stages/verify_strict.py, stages/verify_calibrated.py, or the paper's Algorithm 1
# (stages/verify_paper.py).
VerifyMethod = Literal["strict", "calibrated", "paper"]
VERIFY_METHODS: tuple[str, ...] = get_args(VerifyMethod)

# How a task's statement reads (generate_tasks.style_mix; prompts/styles/<style>.md).
StatementStyle = Literal["codeforces", "atcoder", "leetcode"]
STATEMENT_STYLES: tuple[str, ...] = get_args(StatementStyle)
CODEFORCES, ATCODER, LEETCODE = STATEMENT_STYLES  # leetcode: a `class Solution` signature, function io

# How a program gets its input: stdin to stdout, or one JSON argument a line for an entry point.
IoMode = Literal["stdio", "function"]
IO_MODES: tuple[str, ...] = get_args(IoMode)
STDIO, FUNCTION = IO_MODES


def io_mode(entry_point: str | None) -> IoMode:
    """A task or seed with an entry point is called as a function; any other reads stdin."""
    return FUNCTION if entry_point else STDIO


# What the sandbox says about one run (sandbox/runner.py); only `ok` is a clean run.
SandboxStatus = Literal["ok", "syntax_error", "runtime_error", "timeout", "memory_limit", "output_limit", "killed"]
SANDBOX_STATUSES: tuple[str, ...] = get_args(SandboxStatus)
OK, SYNTAX_ERROR, RUNTIME_ERROR, TIMEOUT, MEMORY_LIMIT, OUTPUT_LIMIT, KILLED = SANDBOX_STATUSES

# Where a test input comes from: the model writes it (prompt) or a model-written CYaRon program (tool).
TestGenerator = Literal["prompt", "tool"]
TEST_GENERATORS: tuple[str, ...] = get_args(TestGenerator)
PROMPT, TOOL = TEST_GENERATORS

# What the input validator (generate_tests.validate_inputs) said of a test input it let through
# (TEST_INPUTS.validation): valid, it accepted it; invalid, it rejected it but rejected every input of
# the task too, so the validator was distrusted and the inputs kept; validator_failed, it crashed or hung
# on it; unvalidated, no validator ran (validate_inputs off, or no usable validator program for the
# task). An input it rejects otherwise is dropped, so never in the table.
InputValidation = Literal["valid", "invalid", "validator_failed", "unvalidated"]
INPUT_VALIDATIONS: tuple[str, ...] = get_args(InputValidation)
VALID, INVALID, VALIDATOR_FAILED, UNVALIDATED = INPUT_VALIDATIONS

# Which weight a test counts with in the vote: input-size quartile, or keywords of its description.
Weighting = Literal["size", "semantic"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)
SIZE, SEMANTIC = WEIGHTINGS

# How the report embeds statements for diversity (minilm needs the optional extra `embeddings`).
Embedder = Literal["tfidf", "minilm"]
EMBEDDERS: tuple[str, ...] = get_args(Embedder)
TFIDF, MINILM = EMBEDDERS

# Where seed problems come from (stages/sources.py).
SeedSource = Literal["shipped", "humaneval", "file"]
SEED_SOURCES: tuple[str, ...] = get_args(SeedSource)
SHIPPED, HUMANEVAL, FILE = SEED_SOURCES

# How model calls are answered: the shipped cassette only, live calls recorded into it, or live.
LlmMode = Literal["replay", "record", "live"]
LLM_MODES: tuple[str, ...] = get_args(LlmMode)

# How an endpoint is called: the lean aiohttp client for an api_base server (auto), litellm, or openai.
Transport = Literal["auto", "litellm", "openai"]
TRANSPORTS: tuple[str, ...] = get_args(Transport)

# How a model's server is asked to keep a JSON answer to the stage's schema (stages/answer_schemas.py):
# not at all; response_format {"type": "json_object", "schema": ...} (llama.cpp, vLLM); or
# {"type": "json_schema", "json_schema": {...}} (OpenAI, vLLM, llama.cpp's llama-server).
JsonOutput = Literal["off", "json_object", "json_schema"]
JSON_OUTPUTS: tuple[str, ...] = get_args(JsonOutput)

# Where the stages' shard tasks run (runtime/runners.py).
RunnerKind = Literal["local", "dask", "ray"]
RUNNER_KINDS: tuple[str, ...] = get_args(RunnerKind)

# How a node entered the feature pool: extracted from a seed, or a breadth / depth evolution.
FeatureOrigin = Literal["extracted", "breadth", "depth"]
FEATURE_ORIGINS: tuple[str, ...] = get_args(FeatureOrigin)
EXTRACTED, BREADTH, DEPTH = FEATURE_ORIGINS

# Where generate_tasks dropped a task (DROPPED_TASKS.step): its plan (stage 1) or its statement (stage 2)
# was rejected, or hygiene dropped the written task (a near-duplicate or contaminated).
TaskDropStep = Literal["plan", "write", "hygiene"]
TASK_DROP_STEPS: tuple[str, ...] = get_args(TaskDropStep)
PLAN, WRITE, HYGIENE = TASK_DROP_STEPS

# Where a model's final answer came from (llm/gateway.py).
ResponseSource = Literal["cassette", "cache", "live"]
RESPONSE_SOURCES: tuple[str, ...] = get_args(ResponseSource)

# Training and evaluation (base_model, train_sft, train_rl, evaluate).
Device = Literal["auto", "cpu", "cuda"]  # auto: cuda when torch sees a GPU
DEVICES: tuple[str, ...] = get_args(Device)
Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Checkpoint = Literal["base", "sft", "rl"]  # the models evaluate compares
CHECKPOINTS: tuple[str, ...] = get_args(Checkpoint)
Split = Literal["train", "heldout"]  # held-out tasks are never trained on
SPLITS: tuple[str, ...] = get_args(Split)
