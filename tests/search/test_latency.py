"""The latency budget: measured with ONNX Runtime only after the static budgets pass, cached."""
from __future__ import annotations

import json
from unittest import mock

from cnnbp.search import latency as latency_module
from cnnbp.search.candidate import CONSTRAINTS, judge
from cnnbp.search.latency import LatencyCache
from cnnbp.search.load import load

VALUES = {"M": 1, "N": 1, "POOL": True, "FC.units": 8, "learning_rate": 0.01}


def test_latency_is_measured_once_per_net_and_can_exclude(digits_space, tmp_path, keras):
    doc, space = load(digits_space("  max_latency_ms: 0.000001\n"), [], [])
    cache = LatencyCache(tmp_path / "latency.json")
    real = latency_module.measure
    with mock.patch.object(latency_module, "measure", side_effect=real) as measure:
        cand = judge(doc, space, VALUES, cache)
        again = judge(doc, space, dict(VALUES, learning_rate=0.02), cache)  # same layers
    assert measure.call_count == 1
    assert cand.measures["latency_ms"] > 0
    assert cand.excluded_by == "max_latency_ms"
    assert cand.reason.endswith("ms batch-1 latency > max_latency_ms 1e-06")
    assert dict(zip(CONSTRAINTS, cand.constraints()))["max_latency_ms"] > 0
    assert again.measures["latency_ms"] == cand.measures["latency_ms"]
    assert list(json.loads((tmp_path / "latency.json").read_text()).values()) == \
        [cand.measures["latency_ms"]]


def test_latency_is_not_measured_for_a_net_over_a_static_budget(digits_space, tmp_path):
    doc, space = load(digits_space("  max_latency_ms: 10\n  max_params: 100\n"), [], [])
    with mock.patch.object(latency_module, "measure") as measure:
        cand = judge(doc, space, VALUES, LatencyCache(tmp_path / "latency.json"))
    assert cand.excluded_by == "max_params" and measure.call_count == 0
