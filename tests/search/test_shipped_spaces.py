"""The shipped search blueprints: their spaces read as the comments say, hold feasible and
excluded nets, and digits_search runs as the README shows."""
from __future__ import annotations

import csv

import optuna
import pytest

from cnnbp import cli
from cnnbp.search.candidate import judge
from cnnbp.search.load import load
from cnnbp.search.sampling import suggest
from cnnbp.search.space_text import describe


@pytest.mark.parametrize("name, stages, budget", [("digits_search", "M: range 1..3", "max_params"),
                                                  ("mnist1d_search", "M: range 1..5",
                                                   "max_macs")])
def test_a_shipped_space_has_both_feasible_and_excluded_nets(name, stages, budget):
    doc, space = load(name, [], [])
    lines = describe(space)
    assert f"{stages} (whole numbers)" in lines
    assert "N: range 1..5 (whole numbers)" in lines and "K: range 0..2 (whole numbers)" in lines
    assert any(line.startswith("CONV.kernel: choice of [3, 5") for line in lines)
    assert any(line.startswith("CONV.filters: per stage (as many as M)") for line in lines)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    verdicts = [judge(doc, space, suggest(study.ask(), space, doc)) for _ in range(100)]
    feasible = [c for c in verdicts if c.feasible]
    assert feasible and any(c.excluded_by == budget for c in verdicts)
    limit = space.budgets[budget]
    measure = "params" if budget == "max_params" else "macs"
    assert all(c.measures[measure] <= limit for c in feasible)


def test_digits_search_runs_as_the_readme_shows(tmp_path, keras, capsys):
    out = tmp_path / "digits"
    assert cli.main(["search", "digits_search", "--data", "digits", "--trials", "1",
                     "--epochs", "2", "--search-set", "min_epochs=1", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "search space, as read:\n  M: range 1..3 (whole numbers)\n" in err
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    trained = [r for r in rows if r["status"] in ("trained", "pruned")]
    assert len(trained) == 1 and int(trained[0]["params"]) <= 50000
    assert (out / "best.yaml").is_file()
