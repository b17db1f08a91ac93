"""A net's identity for repeats: its resolved blueprint, training values included, but not
its description or search section."""
from __future__ import annotations

from cnnbp.search.trial import net_key

NET = {"name": "n", "input": [8, 8, 1], "classes": 10, "layers": [{"type": "fc", "units": 16}],
       "training": {"epochs": 1, "learning_rate": 0.01}}


def test_description_and_search_section_do_not_change_the_key():
    other = {**NET, "description": "another text", "search": {"space": {"M": [1, 4]}}}
    assert net_key(other) == net_key(NET)
    assert len(net_key(NET)) == 16


def test_a_training_value_or_a_layer_changes_the_key():
    keys = {net_key(NET),
            net_key({**NET, "training": {"epochs": 1, "learning_rate": 0.02}}),
            net_key({**NET, "layers": [{"type": "fc", "units": 32}]})}
    assert len(keys) == 3
