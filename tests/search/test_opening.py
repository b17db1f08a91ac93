"""Opening the shared study: search.json says where it is, and a study made for another
blueprint is refused rather than mixed with this one's trials."""
from __future__ import annotations

import json

import pytest

from cnnbp.contract.errors import RefusedError
from cnnbp.search.load import load
from cnnbp.search.opening import load_study, open_study
from cnnbp.search.settings import Settings
from tests.search.conftest import DIGITS_SPACE


def test_a_study_is_found_again_from_search_json(digits_space, tmp_path):
    doc, space = load(digits_space(), [], [])
    out = tmp_path / "out"
    study, _ = open_study(space, doc, Settings("digits", out, trials=2))
    db = (out / "study.db").resolve()
    assert json.loads((out / "search.json").read_text()) == {
        "storage": f"sqlite:///{db}", "study_name": "search", "objectives": ["accuracy"]}
    again, objectives = load_study(out)
    assert (again.study_name, objectives) == ("search", ("accuracy",))
    assert again._study_id == study._study_id


def test_a_study_made_for_another_blueprint_is_refused(digits_space, tmp_path):
    out = tmp_path / "out"
    doc, space = load(digits_space(), [], [])
    open_study(space, doc, Settings("digits", out, trials=2))
    other, other_space = load(digits_space(text=DIGITS_SPACE.replace("units: 16", "units: 24")),
                              [], [])
    with pytest.raises(RefusedError, match=r"the study 'search' was made for another blueprint "
                                           r"or search space; pick a new -o"):
        open_study(other_space, other, Settings("digits", out, trials=2))
