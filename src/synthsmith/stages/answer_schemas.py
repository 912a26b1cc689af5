"""JSON Schemas of the answers the JSON-speaking stages parse, for servers that constrain decoding
to a schema (llama.cpp, vLLM, OpenAI: `llm.models.<model>.json_output`). The stages' own checks stay
the judge: a schema only keeps a weak model from wandering off the format."""

from __future__ import annotations

from synthsmith.stages.extract_features import CATEGORIES

# Bounded names and lists: a grammar cannot make a weak model close a string or a list, a bound can.
_NAME = {"type": "string", "minLength": 1, "maxLength": 60}
_NAMES = {"type": "array", "items": _NAME, "minItems": 1, "maxItems": 6}
_LEAVES = _NAMES
_GROUPS = {"type": "object", "additionalProperties": _LEAVES, "minProperties": 1}  # {sub-category: [leaf, ...]}

FEATURES = {"type": "object", "properties": {category: _GROUPS for category in CATEGORIES},
            "required": list(CATEGORIES), "additionalProperties": False}

EVOLUTION = {"type": "object", "properties": {
    "breadth": {"type": "array", "items": {"type": "object", "properties": {
        "node": {"type": "string", "maxLength": 200}, "siblings": _NAMES},
        "required": ["node", "siblings"]}},
    "depth": {"type": "array", "items": {"type": "object", "properties": {
        "leaf": {"type": "string", "maxLength": 200}, "children": _NAMES},
        "required": ["leaf", "children"]}},
}, "required": ["breadth", "depth"]}

PLAN = {"type": "object", "properties": {
    "feature_roles_tree": {"type": "object"},
    "selected_features_tree": {"type": "object", "additionalProperties": _GROUPS, "minProperties": 1},
    "integration_strategy": {"type": "string", "minLength": 1, "maxLength": 400},
}, "required": ["feature_roles_tree", "selected_features_tree", "integration_strategy"]}

TEST_CASES = {"type": "object", "properties": {"test_cases": {"type": "array", "minItems": 1, "maxItems": 12, "items": {
    "type": "object", "properties": {"idx": {"type": "integer"}, "description": {"type": "string", "maxLength": 200},
                                     "input_string": {"type": "string", "maxLength": 400}},
    "required": ["idx", "description", "input_string"]}}}, "required": ["test_cases"]}
