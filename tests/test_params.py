"""params.yaml validation: the shipped file loads; each mistake names the key to change."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import shipped_params_with
from pydantic import ValidationError

from synthsmith.contract.params import Params, UserError, load_params

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "params.yaml"


def _error(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        load_params(path)
    return str(caught.value)


def test_shipped_params_load():
    params = load_params(SHIPPED)
    raw = yaml.safe_load(SHIPPED.read_text())
    assert isinstance(params, Params)
    assert params.llm.mode == raw["llm"]["mode"]
    assert params.generate_tasks.num_tasks == raw["generate_tasks"]["num_tasks"]
    assert sum(params.generate_tasks.style_mix.values()) == pytest.approx(1)
    assert list(params.generate_solutions.models) == raw["generate_solutions"]["models"]


def test_omitted_sections_take_defaults(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: [raw.pop(s) for s in ("execute", "verify", "export", "llm", "seeds")])
    params = load_params(path)
    assert params.llm.mode == "replay" and params.execute.time_limit_s == 1.0 and params.seeds.limit is None


def test_params_are_frozen():
    params = load_params(SHIPPED)
    with pytest.raises(ValidationError):
        params.generate_tasks.num_tasks = 3


def test_style_mix_must_sum_to_one(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw["generate_tasks"].update(
        style_mix={"codeforces": 0.6, "atcoder": 0.15, "leetcode": 0.15}))
    message = _error(path)
    assert "generate_tasks.style_mix" in message and str(path) in message and "0.6" in message


def test_style_mix_rejects_negative_weights(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw["generate_tasks"].update(
        style_mix={"codeforces": 1.2, "atcoder": -0.2}))
    assert "generate_tasks.style_mix" in _error(path)


def test_style_mix_rejects_unknown_styles(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw["generate_tasks"].update(style_mix={"codeforces": 0.5, "topcoder": 0.5}))
    assert "generate_tasks.style_mix" in _error(path)


def test_negative_num_tasks_names_the_key(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw["generate_tasks"].update(num_tasks=-3))
    message = _error(path)
    assert "generate_tasks.num_tasks" in message and "-3" in message


@pytest.mark.parametrize("section, key, value", [
    ("execute", "time_limit_s", 0),
    ("llm", "mode", "offline"),
    ("llm", "max_retries", -1),
    ("seeds", "limit", 0),
    ("generate_solutions", "models", []),
    ("extract_features", "temperature", 3.0),
])
def test_out_of_range_values_name_their_key(tmp_path, section, key, value):
    path = shipped_params_with(tmp_path, lambda raw: raw.setdefault(section, {}).update({key: value}))
    assert f"{section}.{key}" in _error(path)


def test_unknown_key_in_a_section_is_rejected(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw["generate_tests"].update(num_inputz=10))
    assert "generate_tests.num_inputz" in _error(path)


def test_unknown_section_is_rejected(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw.update(dedupe={"threshold": 0.9}))
    assert "dedupe" in _error(path)


def test_missing_required_key_names_it(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw["extract_features"].pop("model"))
    assert "extract_features.model" in _error(path)


def test_duplicate_solution_models_are_rejected(tmp_path):
    path = shipped_params_with(tmp_path, lambda raw: raw["generate_solutions"].update(models=["a/m", "a/m"]))
    assert "generate_solutions.models" in _error(path)


@pytest.mark.parametrize("text, kind", [("- just\n- a list\n", "list"), ("42\n", "int"), ("", "NoneType")])
def test_non_mapping_yaml_is_rejected(tmp_path, text, kind):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    message = _error(path)
    assert "expected a mapping" in message and kind in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    message = _error(path)
    assert str(path) in message and "not found" in message


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("llm:\n  mode: [replay\n  cassette: x\n")
    message = _error(path)
    assert str(path) in message and "not valid YAML" in message
