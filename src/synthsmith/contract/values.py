"""Value sets: every closed set of names the pipeline uses, declared once.

params.yaml's Literals, the tables' documented values and the stages' checks all import these.
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
UNSOLVED_BY_STRONG_MODEL = "unsolved_by_strong_model"  # solvability filter (stages/solvability.py)
DISCARD_REASONS = (NO_TESTS, NO_CANDIDATES, NO_PASSING_CANDIDATE, TOO_FEW_LABELLED_TESTS,
                   GOLDEN_VALIDATION_DISAGREE, DEGENERATE_OUTPUTS, WEAK_CONSENSUS, CONTESTED_CONSENSUS,
                   UNSOLVED_BY_STRONG_MODEL)

VerifyMethod = Literal["strict", "paper"]
VERIFY_METHODS: tuple[str, ...] = get_args(VerifyMethod)
