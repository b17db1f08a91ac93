"""Multi-fidelity search: Hyperband stops trials at its rungs, lean trials keep only what a
search needs, and ``--final-epochs`` retrains the winner on training + validation data."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from cnnbp import cli


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def hyperband(tmp_path_factory, keras):
    """Up to 9 epochs a trial, Hyperband from 1 epoch: rungs at 1 and 3 epochs (and 9)."""
    from tests.search.conftest import DIGITS_SPACE
    base = tmp_path_factory.mktemp("hyperband")
    bp = base / "bp.yaml"
    bp.write_text(DIGITS_SPACE.replace("epochs: 1,", "epochs: 9,"))
    out = base / "out"
    assert cli.main(["search", str(bp), "--data", "digits", "--trials", "10", "--quiet",
                     "-o", str(out)]) == 0
    return out


def test_hyperband_stops_trials_at_its_rungs(hyperband):
    """Pruned trials stopped after 1 or 3 epochs (Hyperband's rungs below 9, reduction factor
    3); some trial trained all 9; fewer epochs were trained than 10 full trials take."""
    rows = [r for r in _rows(hyperband) if r["status"] in ("trained", "pruned")]
    assert len(rows) == 10
    epochs = {r["trial"]: int(json.loads((Path(r["run_dir"]) / "trial.json").read_text())
                               ["epochs"]) for r in rows}
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned, "Hyperband stopped no trial"
    assert {epochs[r["trial"]] for r in pruned} <= {1, 3}
    assert all("hyperband pruner after" in r["reason"] for r in pruned)
    assert {epochs[r["trial"]] for r in rows if r["status"] == "trained"} == {9}
    assert sum(epochs.values()) < 10 * 9


def test_a_lean_trial_keeps_what_a_search_needs(hyperband):
    """Every trial: its resolved blueprint, history and result; the model only for a trial
    that could be the best when it ended (the best trial always has it); nothing else."""
    from cnnbp.builder import load_resolved
    rows = {r["trial"]: r for r in _rows(hyperband) if r["status"] in ("trained", "pruned")}
    best = (hyperband / "best.yaml").read_text().split("trial ", 1)[1].split(",", 1)[0]
    for number, r in rows.items():
        folder = Path(r["run_dir"])
        names = sorted(p.name for p in folder.iterdir())
        model = ["labels.txt", "model.keras", "preprocess.json"]
        lean = ["blueprint.yaml", "history.csv", "trial.json"]
        assert names in (lean, sorted(lean + model)), names
        if number == best or r["status"] == "pruned":
            assert (names == sorted(lean + model)) == (number == best), (number, names)
        result = json.loads((folder / "trial.json").read_text())
        assert result["val_accuracy"] == pytest.approx(float(r["val_accuracy"]))
        assert result["pruned"] == (r["status"] == "pruned")
        with open(folder / "history.csv", newline="") as f:
            assert len(list(csv.DictReader(f))) == result["epochs"]
        assert load_resolved(folder).network.name == "digits_search"


def test_keep_makes_full_run_directories(digits_space, tmp_path, keras):
    out = tmp_path / "out"
    assert cli.main(["search", digits_space(), "--data", "digits", "--trials", "2", "--quiet",
                     "--keep", "-o", str(out)]) == 0
    for r in _rows(out):
        if r["status"] in ("trained", "pruned"):
            assert (Path(r["run_dir"]) / "metrics.json").is_file()
            assert (Path(r["run_dir"]) / "state" / "state.json").is_file()


def test_final_epochs_retrains_the_winner_once(digits_space, tmp_path, keras, capsys):
    """OUT/final is a full run of the best trial's net with no validation hold-out and N
    epochs; its test accuracy is in the summary and best.yaml; a rerun does not retrain."""
    from cnnbp.builder import load_resolved
    out = tmp_path / "out"
    args = ["search", digits_space(), "--data", "digits", "--trials", "2", "--quiet",
            "--final-epochs", "2", "-o", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    final = load_resolved(out / "final").network.training
    assert (final.epochs, final.validation_split) == (2, 0)
    line = (f"final: retrained on training + validation data for 2 epochs, test accuracy "
            f"{metrics['test_accuracy']:.4f} ({(out / 'final').resolve()})")
    assert line in printed
    assert (out / "best.yaml").read_text().splitlines()[1] == f"# {line}"
    with open(out / "final" / "history.csv", newline="") as f:
        assert "val_accuracy" not in next(csv.reader(f))  # nothing was held out
    written = (out / "final" / "metrics.json").stat().st_mtime_ns
    assert cli.main(args) == 0
    assert line in capsys.readouterr().out
    assert (out / "final" / "metrics.json").stat().st_mtime_ns == written

    # a claim by a live worker is left to it; one by a dead worker on this host is taken over
    import socket
    import subprocess
    import sys
    import threading

    from cnnbp.search.final import retrain
    from cnnbp.search.opening import load_study
    from cnnbp.search.outputs import FINAL
    study, _ = load_study(out)
    done = study.user_attrs[FINAL]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names no process now
    lock = threading.Lock()
    for pid, retrains in ((os.getpid(), False), (gone.pid, True)):
        claim = {**done, "status": "running", "worker": f"{socket.gethostname()}:{pid}"}
        study.set_user_attr(FINAL, claim)
        said = []
        record = retrain(study, out, "digits", 2, lock, say=said.append)
        assert bool(said) == retrains
        assert record["status"] == ("done" if retrains else "running")
    assert (out / "final" / "metrics.json").stat().st_mtime_ns != written


def test_min_epochs_above_the_epochs_is_refused(digits_space, tmp_path, capsys):
    code = cli.main(["search", digits_space("  min_epochs: 3\n"), "--data", "digits",
                     "--trials", "2", "-o", str(tmp_path / "out")])
    assert code != 0
    err = capsys.readouterr().err
    assert "search.min_epochs is 3 but a trial trains at most training.epochs = 1" in err
    assert not (tmp_path / "out").exists()


def test_equal_accuracies_go_to_the_lower_validation_loss():
    """A 144-image validation set gives many trials the same accuracy: the lower loss wins,
    then the earlier trial; a trial without a loss (recovered) ranks after those with one."""
    from types import SimpleNamespace

    from cnnbp.search.outputs import Row, best
    study = SimpleNamespace(directions=["maximize"])
    row = lambda n, acc, loss=None: Row(n, "trained", {"val_accuracy": acc, **(
        {} if loss is None else {"val_loss": loss})}, {})
    table = [row(0, 1.0), row(1, 1.0, 0.09), row(2, 1.0, 0.03), row(3, 0.99, 0.01),
             row(4, 1.0, 0.03), Row(5, "pruned", {"val_accuracy": 1.0, "val_loss": 0.0}, {})]
    assert best(study, table).number == 2
    assert best(study, [row(0, 1.0), row(1, 1.0)]).number == 0
