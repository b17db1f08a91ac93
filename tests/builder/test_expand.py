"""Unrolling: repeats, flags, and values that vary by repetition."""
import pytest

from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.expand import expand
from cnnbp.builder.pattern import parse

SEED = "[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-SOFTMAX"


def tokens(occ):
    return [o.token for o in occ]


def test_lists_are_indexed_by_the_outermost_repeat():
    occ = expand(parse(SEED), {"M": 2, "N": [1, 2], "K": 1, "POOL": True},
                 {"CONV": {"filters": [8, 16]}})
    assert tokens(occ) == ["CONV", "RELU", "POOL", "CONV", "RELU", "CONV", "RELU", "POOL",
                           "FC", "RELU", "SOFTMAX"]
    assert [o.values["filters"][0] for o in occ if o.token == "CONV"] == [8, 16, 16]


def test_nested_lists_go_one_level_per_repeat():
    occ = expand(parse(SEED), {"M": 2, "N": 2, "K": 0, "POOL": False},
                 {"CONV": {"kernel": [[3, 5], 1]}})
    assert [o.values["kernel"][0] for o in occ if o.token == "CONV"] == [3, 5, 1, 1]
    assert "POOL" not in tokens(occ) and "FC" not in tokens(occ)


def test_flags_may_vary_by_repetition():
    occ = expand(parse(SEED), {"M": 3, "N": 1, "K": 0, "POOL": [True, False, True]}, {})
    assert tokens(occ).count("POOL") == 2


def test_inline_variables_are_looked_up():
    occ = expand(parse("[CONV(F)]*M-SOFTMAX"), {"M": 2, "F": [4, 8]}, {})
    assert [o.values["filters"][0] for o in occ[:2]] == [4, 8]


def test_every_problem_is_reported_at_once():
    with pytest.raises(BlueprintError) as exc:
        expand(parse(SEED), {"N": [1, 2, 3], "M": 2, "POOL": 1}, {})
    text = str(exc.value)
    assert "3 problems" in text
    assert "vars.N: has 3 values, but the repeat *M that encloses it runs 2 times" in text
    assert "vars.POOL: is the flag of the optional at column 20" in text
    assert "variable K is unbound" in text


def test_unknown_token_suggests_the_nearest():
    with pytest.raises(BlueprintError, match=r"unknown token COVN \(did you mean CONV\?\)"):
        expand(parse("COVN-SOFTMAX"), {}, {})


def test_unknown_keyword_lists_valid_ones():
    with pytest.raises(BlueprintError,
                       match=r"CONV has no argument 'strid' \(did you mean stride\?\)"):
        expand(parse("CONV(8, strid=2)-SOFTMAX"), {}, {})


def test_list_outside_any_repeat():
    with pytest.raises(BlueprintError, match="nested one level too deep: no repeat encloses it"):
        expand(parse("CONV-SOFTMAX"), {}, {"CONV": {"filters": [8, 16]}})
