"""Parsing model answers (synthsmith.llm.answers) and merging feature names (synthsmith.stages.names)."""

from __future__ import annotations

import pytest

from synthsmith.llm.answers import (
    Rejected,
    between_markers,
    count_tokens,
    json_object,
    marked_json_object,
    reasoning_and_code,
)
from synthsmith.stages.names import normalise


def _reason(call, *args) -> str:
    with pytest.raises(Rejected) as caught:
        call(*args)
    return caught.value.reason


# between_markers

def test_between_markers_returns_the_text_inside():
    assert between_markers('Sure! <begin>{"a": 1}<end> Hope this helps.') == '{"a": 1}'


def test_between_markers_spans_first_begin_to_last_end():
    assert between_markers("<begin>x<end> and <end>") == "x<end> and "


@pytest.mark.parametrize("text", ["no markers at all", "<begin> never closed", "only closes <end>",
                                  "<end> reversed <begin>"])
def test_between_markers_rejects_missing_or_reversed_markers(text):
    assert _reason(between_markers, text) == "missing_markers"


def test_between_markers_accepts_custom_markers():
    assert between_markers("[[inside]]", "[[", "]]") == "inside"


# json_object

def test_json_object_parses_strict_json():
    assert json_object(' {"a": [1, 2], "b": {"c": "d"}} ') == {"a": [1, 2], "b": {"c": "d"}}


@pytest.mark.parametrize("text", ['```json\n{"a": 1, "b": [2, 3]}\n```', '```\n{"a": 1, "b": [2, 3]}\n```'])
def test_json_object_strips_code_fences(text):
    assert json_object(text) == {"a": 1, "b": [2, 3]}


def test_json_object_repairs_trailing_commas():
    assert json_object('{"a": 1, "b": [2, 3,],}') == {"a": 1, "b": [2, 3]}


def test_json_object_repairs_inside_a_fence():
    assert json_object("```json\n{'a': 'x', \"b\": 2,}\n```") == {"a": "x", "b": 2}


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"just a string"', "42", "{}", "", "no json here at all"])
def test_json_object_rejects_anything_but_a_non_empty_object(text):
    assert _reason(json_object, text) == "invalid_json"


# reasoning_and_code

GOOD = "First read n, then print its double.\n\n```python\nn = int(input())\nprint(2 * n)\n```\n"


def test_reasoning_and_code_splits_reasoning_from_the_block():
    reasoning, code = reasoning_and_code(GOOD)
    assert reasoning == "First read n, then print its double."
    assert code == "n = int(input())\nprint(2 * n)\n"


def test_reasoning_and_code_accepts_py_and_python3_tags():
    for tag in ("py", "python3", "Python"):
        assert reasoning_and_code(f"why\n```{tag}\nx = 1\n```")[1] == "x = 1\n"


@pytest.mark.parametrize("text, reason", [
    ("I think the answer is to print 2n.", "no_code_block"),
    ("Reasoning.\n```\nprint(1)\n```", "no_code_block"),  # a fence without a python tag is not a python block
    ("Reasoning.\n```cpp\nint main() {}\n```", "no_code_block"),
    ("Try this:\n```python\nprint(1)\n```\nor this:\n```python\nprint(2)\n```", "multiple_code_blocks"),
    ("```python\nprint(1)\n```", "no_reasoning"),
    ("   \n\n```python\nprint(1)\n```", "no_reasoning"),
    ("Reasoning.\n```python\ndef f(:\n    return\n```", "syntax_error"),
    ("Reasoning.\n```python\nx = '\0'\n```", "syntax_error"),
])
def test_reasoning_and_code_names_each_rejection(text, reason):
    assert _reason(reasoning_and_code, text) == reason


def test_rejected_is_a_value_error_with_its_reason_as_message():
    error = Rejected("too_long")
    assert isinstance(error, ValueError) and str(error) == "too_long" and error.reason == "too_long"
    assert error.detail is None and Rejected("too_long", "shorter, please").detail == "shorter, please"


def _detail(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(Rejected) as caught:
        call(*args, **kwargs)
    return caught.value.reason, caught.value.detail


@pytest.mark.parametrize("text, found", [("no markers at all", "it had neither"),
                                         ("<begin> never closed", "it had <begin> but no <end> after it"),
                                         ("only closes <end>", "it had <end> but no <begin> before it")])
def test_missing_markers_detail_says_which_marker_is_missing(text, found):
    reason, detail = _detail(between_markers, text)
    assert reason == "missing_markers" and "between a line <begin> and a line <end>" in detail and found in detail


def test_marked_json_object_accepts_a_whole_json_answer_without_markers():
    assert marked_json_object('<begin>{"a": 1}<end>') == {"a": 1}
    assert marked_json_object(' {"a": 1} ') == marked_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    for text in ('Here it is: {"a": 1}', '<begin>{"a": 1}', "[1, 2]"):  # text around it, one marker, no object
        reason, detail = _detail(marked_json_object, text)
        assert reason == "missing_markers" and "the JSON object" in detail


@pytest.mark.parametrize("text, found", [("[1, 2]", "a JSON array"), ("{}", "an empty object"),
                                         ("Sure! Here you go.", "no JSON object it could read")])
def test_invalid_json_detail_names_the_expected_shape_and_what_was_found(text, found):
    reason, detail = _detail(json_object, text, '{"test_cases": [...]}')
    assert reason == "invalid_json" and 'shaped like {"test_cases": [...]}' in detail and found in detail


@pytest.mark.parametrize("text, reason, found", [
    ("Reasoning only.", "no_code_block", "no code block at all"),
    ("Plan.\n```\nprint(1)\n```", "no_code_block", "not one opened with ```python"),
    ("Plan.\n```python\nprint(1)\n", "no_code_block", "opened but never closed"),
    ("A.\n```python\nx = 1\n```\nB.\n```python\ny = 2\n```", "multiple_code_blocks", "it had 2"),
    ("```python\nx = 1\n```", "no_reasoning", "it started with the code"),
    ("Plan.\n```python\ndef f(:\n```", "syntax_error", "line 1 of the block"),
])
def test_code_rejections_say_what_was_found_and_what_is_expected(text, reason, found):
    got, detail = _detail(reasoning_and_code, text)
    assert got == reason and found in detail
    expected = "must hold a complete, valid Python 3 program" if reason == "syntax_error" else \
        "then the whole program in one block that opens with a line ```python and closes with a line ```"
    assert expected in detail


# count_tokens

def test_count_tokens_counts_words_and_punctuation():
    assert count_tokens("def f(x): return x+1") == 10  # def f ( x ) : return x + 1
    assert count_tokens("") == 0
    assert count_tokens("   \n\t ") == 0


def test_count_tokens_grows_with_text():
    assert count_tokens("word " * 300) == 300


# normalise

@pytest.mark.parametrize("names", [
    ["BFS", "Breadth First Search", "breadth-first search", "breadth-first searches", " bfs "],
    ["DP", "Dynamic Programming", "dynamic_programming", "  Dynamic   programming  "],
    ["DSU", "Union-Find", "union find", "Disjoint Set", "disjoint set union"],
    ["BIT", "Binary Indexed Tree", "Binary Indexed Trees", "Fenwick tree", "fenwick trees"],
    ["Two Pointers", "two-pointer", "two pointer", "Two-Pointers"],
    ["Prefix Sum", "prefix sums", "prefix-sum"],
    ["LCA", "Lowest Common Ancestor", "lowest common ancestors"],
])
def test_normalise_merges_synonyms_plurals_case_and_spacing(names):
    assert len({normalise(n) for n in names}) == 1


@pytest.mark.parametrize("name, expected", [
    ("Segment Trees", "segment tree"),
    ("Range Queries", "range query"),
    ("Hash Maps", "hash map"),
    ("Matches", "match"),
    ("Bit Masks", "bit mask"),
    ("Boxes", "box"),
    ("Dijkstra's Algorithm.", "dijkstra's algorithm"),
])
def test_normalise_singularises_the_last_word(name, expected):
    assert normalise(name) == expected


@pytest.mark.parametrize("name", ["complexity analysis", "amortized analysis", "upper bounds", "two pointers",
                                  "prefix sums", "bitmasks", "class", "linear basis", "process", "memory access",
                                  "number series", "mathematics", "radius", "gas"])
def test_normalise_keeps_words_whose_s_is_not_a_plural(name):
    assert normalise(name) == name


def test_normalise_leaves_possessives_alone():
    assert normalise("Kadane's") == "kadane's"
    assert normalise("Dijkstra's Algorithms") == "dijkstra's algorithm"


def test_normalise_only_singularises_the_last_word():
    assert normalise("Graphs Algorithms") == "graphs algorithm"
