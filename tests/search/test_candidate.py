"""Static feasibility and budgets: the verdict on each candidate, and the empty-space refusal."""
from __future__ import annotations

import itertools

import pytest

from cnnbp.contract.errors import RefusedError
from cnnbp.search.candidate import CONSTRAINTS, judge
from cnnbp.search.load import load
from cnnbp.search.probe import probe


def expected_side(m: int, n: int, pool: bool, side: int = 8) -> int:
    """The test's own arithmetic: 3x3 valid conv takes 2 off, a 2x2 pool halves (floor)."""
    for _ in range(m):
        for _ in range(n):
            side -= 2
            if side < 1:
                return side
        if pool:
            side //= 2
            if side < 1:
                return side
    return side


def test_every_combination_is_judged_as_the_arithmetic_says(digits_space):
    doc, space = load(digits_space(), [], [])
    feasible = 0
    for m, n, pool in itertools.product(range(1, 5), range(1, 4), (True, False)):
        cand = judge(doc, space, {"M": m, "N": n, "POOL": pool, "FC.units": 8,
                                  "learning_rate": 0.01})
        side = expected_side(m, n, pool)
        assert cand.feasible == (side >= 1), (m, n, pool, cand.reason)
        feasible += cand.feasible
        if not cand.feasible:
            assert cand.excluded_by == "shape"
            assert "spatial size must stay >= 1" in cand.reason
            assert cand.constraints() == [1.0] + [0.0] * (len(CONSTRAINTS) - 1)
        else:
            assert cand.compiled.network.layers[-1].units == 10
            assert cand.constraints() == [0.0] * len(CONSTRAINTS)
    assert feasible == 8  # M=1 with any N and POOL (6), and (M, N, POOL) = (2, 1, F), (3, 1, F)


def test_a_budget_excludes_with_the_figures(digits_space):
    doc, space = load(digits_space("  max_params: 400\n"), [], [])
    cand = judge(doc, space, {"M": 1, "N": 1, "POOL": True, "FC.units": 8,
                              "learning_rate": 0.01})
    # conv 3*3*1*4 + 4 = 40; flatten 3*3*4 = 36; fc 36*8 + 8 = 296; out 8*10 + 10 = 90
    assert cand.measures["params"] == 426
    assert cand.excluded_by == "max_params"
    assert cand.reason == "426 parameters > max_params 400"
    violation = dict(zip(CONSTRAINTS, cand.constraints()))
    assert violation["max_params"] == pytest.approx(426 / 400 - 1, abs=1e-6)
    assert violation["shape"] == 0.0


def test_macs_and_memory_budgets(digits_space):
    doc, space = load(digits_space("  max_macs: 1000\n"), [], [])
    cand = judge(doc, space, {"M": 1, "N": 1, "POOL": True, "FC.units": 8,
                              "learning_rate": 0.01})
    # conv 6*6*4 * 9 = 1296 MACs already exceed 1000
    assert cand.excluded_by == "max_macs" and cand.measures["macs"] > 1296


def test_space_with_only_impossible_shapes_is_refused_before_training(digits_space):
    doc, space = load(digits_space(), [], ["M=[3, 4]", "POOL=[true]"])
    with pytest.raises(RefusedError) as info:
        probe(space, doc, seed=0)
    text = str(info.value)
    assert "the search space holds no feasible net: none of 500 random candidates" in text
    assert "500 by an impossible shape" in text
    assert "nothing was trained" in text


def test_space_whose_nets_all_exceed_the_budget_is_refused(digits_space):
    doc, space = load(digits_space("  max_params: 100\n"), [], [])
    with pytest.raises(RefusedError) as info:
        probe(space, doc, seed=0)
    assert "by over max_params" in str(info.value)
    assert "parameters > max_params 100" in str(info.value)


def test_probe_finds_the_rare_feasible_corner(digits_space):
    doc, space = load(digits_space(), [], [])
    cand = probe(space, doc, seed=0)
    assert cand.feasible
    assert expected_side(cand.values["M"], cand.values["N"], cand.values["POOL"]) >= 1


def test_static_check_never_imports_tensorflow(digits_space):
    import subprocess
    import sys
    code = ("import sys; from cnnbp.search.load import load; from cnnbp.search.candidate "
            f"import judge; doc, space = load({digits_space()!r}, [], []); "
            "judge(doc, space, {'M': 4, 'N': 3, 'POOL': True, 'FC.units': 8, "
            "'learning_rate': 0.01}); sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
