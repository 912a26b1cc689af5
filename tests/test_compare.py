import pytest

from synthsmith.stages.compare import outputs_match, vote_key


def test_whitespace_and_line_ends_do_not_matter():
    assert vote_key("1 2\n3  \n") == vote_key("1 2 3") == vote_key("1\r\n2\r\n3\r\n")
    assert outputs_match("1 2\n3\n", "1  2\r\n3   \r\n\r\n")


def test_tokens_must_match_exactly_and_in_number():
    assert not outputs_match("1 2", "1 2 3")
    assert not outputs_match("1 2 3", "1 2")
    assert not outputs_match("", "0")
    assert outputs_match("", "  \n")
    assert not outputs_match("YES", "yes")
    assert vote_key("1 2") != vote_key("1 2 3")


@pytest.mark.parametrize("a, b", [
    ("0.30000000000000004", "0.3"),   # relative
    ("1000000.0000004", "1000000.0"),
    ("1e-9", "0.0"),                  # absolute, near zero
    ("-0.0", "0.0"),
    ("0.333333", "0.3333333333"),     # printed with fewer digits
    ("1e5", "100000.0"),
])
def test_floats_within_tolerance_match_and_share_a_key(a, b):
    assert outputs_match(a, b) and outputs_match(b, a)
    assert vote_key(a) == vote_key(b)


@pytest.mark.parametrize("a, b", [("0.1", "0.1001"), ("1.5", "1.6"), ("1e-3", "2e-3"), ("-1.0", "1.0")])
def test_floats_outside_tolerance_differ(a, b):
    assert not outputs_match(a, b) and not outputs_match(b, a)
    assert vote_key(a) != vote_key(b)


def test_tolerance_is_a_parameter():
    assert outputs_match("1.0", "1.01", float_tol=0.1)
    assert not outputs_match("1.0", "1.01", float_tol=1e-6)
    assert vote_key("1.01", float_tol=0.1) == vote_key("1.0", float_tol=0.1)


def test_integer_and_float_tokens_differ():
    # Integers are judged exactly, so "1" is not "1.0" (nor "100000" "1e5") in either function.
    assert not outputs_match("1", "1.0")
    assert vote_key("1") != vote_key("1.0")
    assert not outputs_match("100000", "1e5")
    assert vote_key("100000") != vote_key("1e5")
    assert not outputs_match("12345678901234567890", "12345678901234567891")


def test_rounding_buckets_are_approximate():
    # The documented limitation: a bucket edge can split two matching values.
    assert outputs_match("1.0000049", "1.0000051")
    assert vote_key("1.0000049") != vote_key("1.0000051")


@pytest.mark.parametrize("token", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999"])
def test_non_finite_tokens_compare_exactly_without_crashing(token):
    assert outputs_match(token, token)
    assert vote_key(token) == token
    assert not outputs_match(token, "1.0")
    assert not outputs_match("1.0", token)


def test_words_with_e_or_dots_are_not_numbers():
    assert vote_key("e. hello 1.2.3") == "e. hello 1.2.3"
    assert not outputs_match("1.2.3", "1.2.30")
