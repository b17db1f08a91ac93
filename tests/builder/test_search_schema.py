"""The ``search:`` fragment of the blueprint schema: the keys ``search_space`` reads are the
keys the schema allows, and the fragment is the one in the shipped schema file."""
import json

import jsonschema
import pytest

from cnnbp.builder.schema import SCHEMA_FILE
from cnnbp.builder.search_schema import BUDGETS, OBJECTIVES, PRUNERS, SECTION_KEYS, schema


def test_the_section_keys_are_the_schema_properties():
    assert set(schema()["properties"]) == set(SECTION_KEYS) == {
        "space", "objective", "pruner", "min_epochs", *BUDGETS}
    assert schema()["properties"]["objective"]["enum"] == list(OBJECTIVES)
    assert schema()["properties"]["pruner"]["enum"] == list(PRUNERS)


def test_the_shipped_schema_file_holds_the_fragment():
    shipped = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert shipped["properties"]["search"] == schema()


@pytest.mark.parametrize("section, valid", [
    ({"space": {"N": [1, 3]}, "max_params": 1000, "objective": "accuracy,macs"}, True),
    ({"space": {"lr": {"low": 0.1, "high": 1, "log": True}}}, True),
    ({"space": {}}, False),                                   # an empty space
    ({"space": {"N": [1, 3]}, "objective": "macs"}, False),   # not an objective
    ({"space": {"N": [1, 3]}, "max_params": 0}, False),       # a budget below 1
    ({"space": {"N": {"low": 1}}}, False),                    # a range without high
    ({"space": {"N": [1, 3]}, "budget": 5}, False),           # an unknown key
    ({"space": {"N": [1, 3]}, "pruner": "median", "min_epochs": 2}, True),
    ({"space": {"N": [1, 3]}, "pruner": "asha"}, False),      # not a pruner
    ({"space": {"N": [1, 3]}, "min_epochs": 0}, False),       # fewer than one epoch
])
def test_the_fragment_validates_a_section(section, valid):
    errors = list(jsonschema.Draft202012Validator(schema()).iter_errors(section))
    assert (not errors) == valid, errors
