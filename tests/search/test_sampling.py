"""Search-space axes → Optuna's suggest calls: ranges, choices, lists carried as JSON, and
per-stage axes as long as the stage count sampled before them."""
from __future__ import annotations

import optuna
import pytest

from cnnbp.search.load import load
from cnnbp.search.sampling import suggest
from tests.search.conftest import DIGITS_SPACE

PER_STAGE = DIGITS_SPACE.replace("    N: [1, 3]\n", "    N: {per_stage: [1, 3]}\n") + \
    "    CONV.filters: [[4, 8], [8, 16]]\n"


def test_a_fixed_trial_gets_exactly_its_values(digits_space):
    doc, space = load(digits_space(text=PER_STAGE), [], [])
    trial = optuna.trial.FixedTrial({"M": 3, "POOL": False, "FC.units": 16,
                                     "learning_rate": 0.01, "CONV.filters": "[8, 16]",
                                     "N[0]": 1, "N[1]": 3, "N[2]": 2})
    assert suggest(trial, space, doc) == {"M": 3, "POOL": False, "FC.units": 16,
                                          "learning_rate": 0.01, "CONV.filters": [8, 16],
                                          "N": [1, 3, 2]}


@pytest.mark.parametrize("seed", range(5))
def test_sampled_values_stay_inside_the_space(digits_space, seed):
    doc, space = load(digits_space(text=PER_STAGE), [], [])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values = suggest(study.ask(), space, doc)
    assert 1 <= values["M"] <= 4 and len(values["N"]) == values["M"]
    assert all(1 <= n <= 3 for n in values["N"])
    assert values["POOL"] in (True, False) and values["FC.units"] in (8, 16, 32)
    assert 0.003 <= values["learning_rate"] <= 0.03
    assert values["CONV.filters"] in ([4, 8], [8, 16])


def test_a_per_stage_axis_without_a_sampled_count_reads_vars(digits_space):
    text = PER_STAGE.replace("    M: [1, 4]\n", "")  # M stays vars.M = 1
    doc, space = load(digits_space(text=text), [], [])
    trial = optuna.trial.FixedTrial({"POOL": True, "FC.units": 8, "learning_rate": 0.003,
                                     "CONV.filters": "[4, 8]", "N[0]": 2})
    assert suggest(trial, space, doc)["N"] == [2]
