"""The ``search:`` section: parsing, validation with line:column, --search-set, the schema."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.search_space import Choice, FloatRange, IntRange, PerStage
from cnnbp.search.load import load
from tests.search.conftest import DIGITS_SPACE


def test_short_forms_become_ranges_and_choices(digits_space):
    _, space = load(digits_space(), [], [])
    dims = {a.name: a.dim for a in space.axes}
    assert dims["M"] == IntRange(1, 4)
    assert dims["POOL"] == Choice((True, False))
    assert dims["FC.units"] == Choice((8, 16, 32))
    assert dims["learning_rate"] == FloatRange(0.003, 0.03, log=True)
    paths = {a.name: a.path for a in space.axes}
    assert paths["FC.units"] == ("layers", "FC", "units")
    assert paths["learning_rate"] == ("training", "learning_rate")
    assert paths["N"] == ("vars", "N")
    assert space.objectives == ("accuracy",)


def test_per_stage_and_explicit_forms(digits_space):
    text = DIGITS_SPACE.replace("    N: [1, 3]\n", "    N: {per_stage: [1, 2]}\n")
    _, space = load(digits_space("    DROPOUT.rate: {choice: [0.1, 0.2]}\n"
                                 "    CONV.filters: [[4, 8], [8, 16]]\n", text), [], [])
    dims = {a.name: a.dim for a in space.axes}
    assert dims["N"] == PerStage(IntRange(1, 2), "M")
    assert dims["DROPOUT.rate"] == Choice((0.1, 0.2))
    assert dims["CONV.filters"] == Choice(([4, 8], [8, 16]))
    assert [a.name for a in space.axes][-1] == "N"  # after M, whose value sets its length


def _error(path, overrides=(), search_sets=()) -> str:
    with pytest.raises(BlueprintError) as info:
        load(path, list(overrides), list(search_sets))
    return str(info.value)


def test_unknown_variable_gets_did_you_mean_and_its_line(digits_space):
    text = _error(digits_space("    NN: [1, 2]\n"))
    assert ":19:5: search.space.NN: NN is not a variable of the pattern nor a training key " \
           "(did you mean N?); variables: K, M, N, POOL" in text


def test_unknown_layer_argument(digits_space):
    text = _error(digits_space("    FC.unit: [8, 16, 32]\n"))
    assert ":19:5: search.space.FC.unit: FC has no argument unit (did you mean units?)" in text


def test_empty_range_negative_count_and_non_boolean_flag(digits_space):
    text = DIGITS_SPACE.replace("POOL: [true, false]", "POOL: [1, 0, 2]")
    text = _error(digits_space("    K: [-1, 2]\n    weight_decay: {low: 0.1, high: 0.01}\n", text))
    assert "search.space.K: K is a repeat count: its values must be whole numbers >= 0, got -1" \
        in text
    assert "search.space.POOL: POOL is the flag of an optional item: its values must be true " \
           "or false, got 1" in text
    assert "search.space.weight_decay: the range [0.1, 0.01] is empty" in text


def test_a_value_the_schema_refuses_is_reported_at_the_space_entry(digits_space):
    text = _error(digits_space("    CONV.padding: [same, full, valid]\n"))
    assert ":19:5: search.space.CONV.padding: the value 'full' does not fit " \
           "layers.CONV.padding" in text


def test_unknown_section_key_is_a_schema_error(digits_space):
    text = _error(digits_space("  max_parms: 10\n"))
    assert "search.max_parms: unknown key (did you mean max_params?)" in text


def test_search_set_adds_entries_and_budgets(digits_space):
    _, space = load(digits_space(), [], ["N=[2, 3]", "CONV.filters=[4, 8, 16]",
                                         "max_params=5000", "objective=accuracy,macs"])
    dims = {a.name: a.dim for a in space.axes}
    assert dims["N"] == IntRange(2, 3)
    assert dims["CONV.filters"] == Choice((4, 8, 16))
    assert space.budgets == {"max_params": 5000}
    assert space.objectives == ("accuracy", "macs")


def test_search_set_mistake_names_the_flag(digits_space):
    text = _error(digits_space(), search_sets=["FC.units=[0, 0, 8]"])
    assert "search.space.FC.units: (from --search-set FC.units=[0, 0, 8]) lists the same " \
           "value twice" in text


def test_blueprint_without_search_is_refused(write_blueprint):
    path = write_blueprint("name: x\ninput: [8, 8, 1]\nclasses: 10\npattern: FC-SOFTMAX\n")
    assert "search: is missing: add a `search:` section" in _error(path)


def test_check_validates_the_section_too(digits_space):
    from cnnbp import cli
    path = digits_space("    NN: [1, 2]\n")
    assert cli.main(["check", path]) == 2


def test_schema_file_describes_the_section():
    from cnnbp.builder.schema import SCHEMA_FILE
    schema = json.loads(SCHEMA_FILE.read_text())
    section = schema["properties"]["search"]
    assert set(section["properties"]) == {"space", "max_params", "max_macs",
                                          "max_activation_memory", "max_latency_ms", "objective",
                                          "pruner", "min_epochs"}
    assert section["properties"]["pruner"]["enum"] == ["hyperband", "median", "none"]


def test_registering_the_command_imports_neither_tensorflow_nor_optuna():
    code = ("import sys; from cnnbp import cli; p = cli.parser(); "
            "p.parse_args(['search', 'x.yaml', '--data', 'digits', '--trials', '1', '-o', 'o']); "
            "bad = [m for m in ('tensorflow', 'optuna', 'keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
