"""``cnnbp search`` end to end on 8x8 digits: no crashed trial, every exclusion real, outputs,
resume, and a best.yaml that reproduces its trial."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from unittest import mock

import pytest

from cnnbp import cli
from cnnbp.search.proposer import records

PNG = b"\x89PNG\r\n\x1a\n"


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _study(out: Path):
    import optuna
    return optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")


@pytest.fixture(scope="module")
def searched(tmp_path_factory, keras):
    from tests.search.conftest import DIGITS_SPACE
    base = tmp_path_factory.mktemp("search")
    bp = base / "bp.yaml"
    bp.write_text(DIGITS_SPACE)
    out = base / "out"
    assert cli.main(["search", str(bp), "--data", "digits", "--trials", "3", "--quiet",
                     "-o", str(out)]) == 0
    return bp, out


def test_no_trial_crashed_and_only_feasible_nets_trained(searched):
    _, out = searched
    rows = _rows(out)
    statuses = [r["status"] for r in rows]
    assert set(statuses) <= {"trained", "pruned", "infeasible", "repeat"}
    assert statuses.count("trained") + statuses.count("pruned") == 3
    trained = {f"{int(r['trial']):03d}" for r in rows if r["status"] in ("trained", "pruned")}
    assert {p.name for p in (out / "trials").iterdir()} == trained
    for r in rows:
        if r["status"] in ("infeasible", "repeat"):
            assert r["reason"] and not r["run_dir"]
            assert r["status"] == "repeat" or not r["val_accuracy"]
        else:
            assert (Path(r["run_dir"]) / "trial.json").is_file()
            assert 0.0 <= float(r["val_accuracy"]) <= 1.0


def test_every_excluded_candidate_truly_fails_in_keras(searched, keras):
    """Build each excluded net in Keras, skipping only the static analysis: Keras must refuse
    it too, for the reason the analysis gave (a map shrunk to nothing)."""
    from cnnbp.builder import blueprint, build_model
    from cnnbp.builder.search_space import with_values
    from cnnbp.search.load import load
    bp, out = searched
    doc, space = load(str(bp), [], [])
    excluded = records(_study(out))
    assert excluded, "the space should make the sampler propose some impossible nets"
    for rec in excluded[:4]:
        # the space has no budgets: every exclusion is a layer whose output has no pixels
        assert re.match(r"stage\d+_(conv\d+|pool): .*must stay >= 1", rec["reason"]), \
            rec["reason"]
        values = {a.path: rec["params"][a.name] for a in space.axes}
        with mock.patch.object(blueprint, "analyze", lambda net: None):
            net = blueprint.compile_data(with_values(doc, values)).network
        with pytest.raises(ValueError, match="Computed output size would be zero or negative"):
            build_model(net)


def test_outputs_written(searched):
    _, out = searched
    for name in ("history.png", "pareto.png"):
        assert (out / name).read_bytes()[:8] == PNG
    rows = _rows(out)
    study = _study(out)
    assert len(rows) == len(study.trials) + len(records(study))
    assert {"M", "N", "POOL", "FC.units", "learning_rate"} <= set(rows[0])


def test_best_yaml_reproduces_its_trial(searched, tmp_path):
    _, out = searched
    rows = [r for r in _rows(out) if r["status"] == "trained"]
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    assert f"trial {best['trial']}," in (out / "best.yaml").read_text().splitlines()[0]
    assert cli.main(["train", str(out / "best.yaml"), "--data", "digits", "--quiet",
                     "-o", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["test_accuracy"] == float(best["test_accuracy"])


def test_rerun_resumes_and_trains_only_what_is_missing(searched):
    bp, out = searched
    before = {p.name: (p / "trial.json").stat().st_mtime_ns for p in (out / "trials").iterdir()}
    assert cli.main(["search", str(bp), "--data", "digits", "--trials", "4", "--quiet",
                     "-o", str(out)]) == 0
    after = {p.name: (p / "trial.json").stat().st_mtime_ns for p in (out / "trials").iterdir()}
    assert len(after) == 4 and {k: after[k] for k in before} == before
    numbers = [t.number for t in _study(out).trials]
    assert numbers == list(range(len(numbers)))  # one study, no trial run twice


def test_other_space_in_same_folder_is_refused(searched, capsys):
    bp, out = searched
    code = cli.main(["search", str(bp), "--data", "digits", "--trials", "5", "--quiet",
                     "--search-set", "N=[1, 2]", "-o", str(out)])
    assert code == 1
    assert "was made for another blueprint or search space" in capsys.readouterr().err


def test_empty_space_is_refused_before_any_training(digits_space, tmp_path, capsys):
    code = cli.main(["search", digits_space("  max_params: 100\n"), "--data", "digits",
                     "--trials", "2", "--quiet", "-o", str(tmp_path / "out")])
    assert code == 1
    assert "holds no feasible net" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_objectives_give_a_front(digits_space, tmp_path, keras):
    out = tmp_path / "front"
    assert cli.main(["search", digits_space(), "--data", "digits", "--trials", "2", "--quiet",
                     "--objective", "accuracy,macs", "-o", str(out)]) == 0
    study = _study(out)
    assert len(study.directions) == 2
    assert (out / "pareto.png").read_bytes()[:8] == PNG
    first = (out / "best.yaml").read_text().splitlines()[0]
    front = {t.number for t in study.best_trials}
    assert int(first.split("trial ")[1].split(",")[0]) in front


def test_a_budget_exclusion_is_confirmed_by_keras(digits_space, keras):
    from cnnbp.builder import build_model
    from cnnbp.search.candidate import judge
    from cnnbp.search.load import load
    doc, space = load(digits_space("  max_params: 1000\n"), [], [])
    for units in (8, 16, 32):
        values = {"M": 1, "N": 1, "POOL": False, "FC.units": units, "learning_rate": 0.01}
        cand = judge(doc, space, values)
        assert cand.excluded_by == "max_params"
        assert build_model(cand.compiled.network).count_params() > 1000


@pytest.mark.slow
def test_a_killed_search_continues_where_it_stopped(digits_space, tmp_path):
    import subprocess
    import sys

    from tests.search.conftest import wait_for
    bp, out = digits_space(), tmp_path / "out"
    cmd = [str(Path(sys.executable).with_name("cnnbp")), "search", bp, "--data", "digits",
           "--trials", "3", "--quiet", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: list(out.glob("trials/*/trial.json")), "the first finished trial",
                 alive=(proc,))
    finally:
        proc.kill()
        proc.wait()
    first = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/trial.json")}
    assert cli.main(cmd[1:]) == 0
    done = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/trial.json")}
    assert {k: done[k] for k in first} == first  # finished trials are kept, not rerun
    # a kill between the trial's folder and Optuna's tell leaves a FAIL trial whose result
    # is recovered as a new one: count the study's finished trials, not its attributes
    trained = [t for t in _study(out).trials if t.state.name in ("COMPLETE", "PRUNED")
               and t.user_attrs.get("status") in ("trained", "pruned")]
    assert len(trained) == 3
