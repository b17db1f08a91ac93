"""The ``training:`` section: its schema names every field of ``ir.Training``, defaults fill
what is left out, and the checks that need the net name their key."""
from dataclasses import fields

import pytest

from cnnbp.builder import ir
from cnnbp.builder.errors import BlueprintError
from cnnbp.builder.training import schema, training_from


def test_the_schema_and_the_record_have_the_same_keys():
    props = schema()["properties"]
    assert set(props) == {f.name for f in fields(ir.Training)}
    assert set(props["augment"]["properties"]) == {f.name for f in fields(ir.Augment)}


def test_a_missing_section_is_the_documented_defaults():
    t = training_from(None, rank=2)
    assert (t.epochs, t.batch_size, t.optimizer, t.learning_rate) == (10, 64, "adam", 1e-3)
    assert training_from({"epochs": 3, "augment": {"flip": "horizontal"}}, 2).augment.flip == \
        "horizontal"


@pytest.mark.parametrize("section, rank, message", [
    ({"augment": {"rotate": 10}}, 1, r"training\.augment\.rotate: rotate needs 2-D images; "
                                     r"this net's input is 1-D \(valid for 1-D: brightness, "
                                     r"contrast, crop, flip, translate\)"),
    ({"augment": {"flip": "vertical"}}, 1, r"training\.augment\.flip: a 1-D signal can only "
                                          r"be flipped horizontally"),
    ({"epochs": 2, "warmup_epochs": 2}, 2, r"training\.warmup_epochs: 2 must be fewer than "
                                           r"the 2 training epochs"),
    ({"optimizer": "adam", "momentum": 0.5}, 2, r"training\.momentum: applies to sgd and "
                                                r"rmsprop only"),
])
def test_checks_that_need_the_net_name_their_key(section, rank, message):
    with pytest.raises(BlueprintError, match=message):
        training_from(section, rank)
