"""The shipped JSON Schema: generated from the vocabulary, and every shipped blueprint obeys it."""
import json

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from cnnbp.builder.schema import SCHEMA_FILE, generate
from tests.conftest import ROOT, SHIPPED


def test_shipped_schema_equals_the_generator():
    assert json.loads(SCHEMA_FILE.read_text()) == generate(), \
        "blueprints/blueprint.schema.json is stale: run `make schema`"


def test_schema_is_valid_draft_2020_12():
    Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_blueprint_validates_against_the_file(name):
    data = YAML(typ="safe", pure=True).load((ROOT / "blueprints" / f"{name}.yaml").read_text())
    errors = list(Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).iter_errors(data))
    assert errors == []


def test_schema_rejects_unknown_layer_argument():
    validator = Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    bad = {"name": "x", "pattern": "FC-SOFTMAX", "layers": {"CONV": {"filterz": 3}}}
    assert any(e.validator == "additionalProperties" for e in validator.iter_errors(bad))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_vgg_style_blueprints_are_short(name):
    lines = (ROOT / "blueprints" / f"{name}.yaml").read_text().splitlines()
    assert len(lines) <= 25
