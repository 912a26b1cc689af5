"""Test session setup: Prefect and litellm never touch the user's home or the network.

The environment is set at import time, before any test module imports prefect or litellm.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="synthsmith-test-prefect-")
os.environ.pop("PREFECT_API_URL", None)
# Shard results of test runs (and of the stage processes they start) stay out of the checkout.
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = tempfile.mkdtemp(prefix="synthsmith-test-results-")  # tests start their own server, never use the user's
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"  # no log flush to a server the session already stopped
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # export tests load Parquet with `datasets`, never the Hub

import pytest  # noqa: E402
import yaml  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    """A test on the session's Prefect server is a slow one, marked or not: `-m "not slow"` never
    starts the server."""
    for item in items:
        if "prefect_server" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def llm_request():
    """Build one LLM_REQUESTS row from a model and a prompt (a single user message)."""
    from synthsmith.llm.requests import make_request

    def build(prompt: str, model: str = "test/model", **sampling) -> dict:
        return make_request(model, [{"role": "user", "content": prompt}], **sampling)

    return build


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real Prefect server on loopback for the whole session; flows in-process and stage
    subprocesses (which inherit os.environ) talk to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from synthsmith.runtime.server import prefect_api

    with prefect_api(tmp_path_factory.mktemp("prefect-home")) as env:
        previous = {key: os.environ.get(key) for key in env}
        os.environ.update(env)  # for stage subprocesses
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):  # for this process,
            yield env  # whose settings were read when prefect was imported
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def shipped_params_with(directory: Path, change) -> Path:
    """The shipped params.yaml with `change(raw)` applied to its parsed form, written to directory."""
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    change(raw)
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A random 2-layer Llama (hidden 32) with SmolLM2's tokenizer and chat template, saved like a
    base checkpoint: seconds to train, the real tokenizer's template and special tokens."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, set_seed

    from synthsmith.train.models import _packaged_smollm2, save_checkpoint

    directory, gguf = _packaged_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    set_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    base = tmp_path_factory.mktemp("tiny") / "base"
    save_checkpoint(LlamaForCausalLM(config), tokenizer, base)
    return base


def processes_named(name: str) -> list[int]:
    """Host pids whose command name (/proc/PID/comm, set by the job with prctl) is `name`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/comm").read().strip() == name:
                found.append(int(pid))
        except OSError:
            pass
    return found
