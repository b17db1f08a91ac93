"""`cnnbp search` against KerasTuner Hyperband: the same space, data and wall budget.

The space is blueprints/digits_search.yaml's: [(CONV-RELU)*N-POOL]*M-DROPOUT-(FC-RELU)*K-SOFTMAX
on scikit-learn's 8x8 digits, M 1..3, N 1..5, K 0..2, filters 16/32/64 per stage, kernel 3 or
5, FC units 32/64/128, learning rate log 0.0005..0.005, at most 50,000 parameters, 15 epochs.
cnnbp runs `cnnbp search digits_search --data digits --trials 10000 --quiet --timeout S
--seed R -o DIR` with its default pruner; KerasTuner runs bench/search_kerastuner_worker.py
(Hyperband, max_epochs 15, factor 3, seed R; the worker's docstring says how it builds, refuses
and logs). Before any run this script checks that the worker's train, validation and test
arrays are cnnbp's own (cnnbp's digits data, mean/std and validation split, imported here).

Same wall budget: each tool's process (its imports included) is killed S seconds after it was
started; only what had finished by then counts: cnnbp's study, written out by
`cnnbp search --refresh DIR` after the kill, and the worker's JSON lines. R repeats, the order
alternating (cnnbp first, then KerasTuner first, ...), seed r for repeat r.

Per tool and repeat: the trial the tool would pick (cnnbp: the one best.yaml names, the trained
trial with the best last-epoch val accuracy, ties broken by the lower val loss; KerasTuner: as
its get_best_trials ranks them, the finished trial with the best epoch's val accuracy, partial
Hyperband rounds included, the first of equals), its val and test accuracy (cnnbp: the final weights; KerasTuner: the best
epoch's weights), how many trials share that val accuracy, nets trained (distinct nets with a
finished training), how many of them reached 15 epochs (cnnbp: trained; KerasTuner: a trial
ending at epoch 15, continued or not), how many stopped before (cnnbp: pruned; KerasTuner: nets
never brought to 15 epochs when the budget ran out), nets refused over the parameter budget
and crashed trials; then the medians over the repeats. The validation set is 144 images, so
val accuracies move in steps of 1/144 and ties are common.
Needs keras-tuner (setup.cfg's bench extra: pip install 'keras-tuner>=1.4,<2').
Usage: python bench/search_vs_kerastuner.py [seconds per tool] [repeats]   (default 600 3)
"""
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
CNNBP = str(Path(sys.executable).with_name("cnnbp"))
EPOCHS = 15
FIELDS = ("best_test", "best_val", "tied", "nets", "full", "stopped", "refused", "crashed")


def same_data() -> None:
    """Refuse to run unless the worker's arrays are the ones cnnbp trains and tests on."""
    import numpy as np
    from search_kerastuner_worker import digits_splits

    from cnnbp.contract.preprocessing import fit
    from cnnbp.train.builtin import digits
    from cnnbp.train.split import split_validation

    d = digits()
    prep = fit(d.x_train, input_shape=[8, 8, 1], class_names=list(d.class_names))
    ours = (*split_validation(prep.normalize(d.x_train), d.y_train, 0.1, 0),
            prep.normalize(d.x_test), d.y_test)
    for name, a, b in zip(("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"),
                          ours, digits_splits()):
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
            raise SystemExit(f"the worker's {name} is not cnnbp's")


def run_for(cmd, seconds: float, log: Path) -> float:
    """Run ``cmd`` and kill its process group ``seconds`` after the start; the wall time."""
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(max(seconds - (time.perf_counter() - started), 0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the budget is spent; what finished is on disk
            proc.wait()
    return time.perf_counter() - started


def pick(rows: list[dict]) -> dict | None:
    """The first row with the highest val_accuracy."""
    return max(rows, key=lambda r: r["val"], default=None)  # max keeps the first of equals


def summary(chosen: dict | None, candidates: list[dict], **counts) -> dict:
    nan = float("nan")
    return {"best_test": chosen["test"] if chosen else nan,
            "best_val": chosen["val"] if chosen else nan,
            "tied": sum(r["val"] == chosen["val"] for r in candidates) if chosen else 0,
            **counts}


def cnnbp(tmp: Path, seconds: float, seed: int) -> dict:
    out = tmp / f"cnnbp_{seed}"
    wall = run_for([CNNBP, "search", "digits_search", "--data", "digits", "--trials", "10000",
                    "--quiet", "--timeout", f"{seconds:g}", "--seed", str(seed), "-o", str(out)],
                   seconds, tmp / f"cnnbp_{seed}.log")
    # the kill may come before the outputs are written: rewrite them from the study
    subprocess.run([CNNBP, "search", "--refresh", str(out)], cwd=ROOT, env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    status = lambda s: [r for r in rows if r["status"] == s]
    trained = [{"val": float(r["val_accuracy"]), "test": float(r["test_accuracy"]),
                "trial": r["trial"]} for r in status("trained")]
    full, pruned = len(trained), len(status("pruned"))
    # cnnbp's own pick, as best.yaml names it (ties on accuracy: the lower validation loss)
    best = (out / "best.yaml").read_text().split("trial ", 1)[1].split(",", 1)[0] \
        if (out / "best.yaml").is_file() else None
    chosen = next((r for r in trained if r["trial"] == best), None)
    return {"wall": wall, **summary(chosen, trained, nets=full + pruned, full=full,
                                    stopped=pruned, refused=len(status("infeasible")),
                                    crashed=len(status("failed")))}


def kerastuner(tmp: Path, seconds: float, seed: int) -> dict:
    log = tmp / f"kt_{seed}.jsonl"
    wall = run_for([sys.executable, "bench/search_kerastuner_worker.py", str(tmp / f"kt_{seed}"),
                    str(log), str(seed)], seconds, tmp / f"kt_{seed}.log")
    lines = []
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written when the worker was killed
            pass
    trained = [{"val": t["val_accuracy"], "test": t["test_accuracy"], **t} for t in lines
               if t["kind"] == "trained"]
    parent = {t["trial"]: t["parent"] for t in trained}

    def root(trial):  # the trial that started the net from epoch 0
        while parent.get(trial) is not None:
            trial = parent[trial]
        return trial

    nets = {t["trial"] for t in trained if t["initial_epoch"] == 0}
    full = {root(t["trial"]) for t in trained if t["epochs"] == EPOCHS}
    return {"wall": wall, **summary(pick(trained), trained, nets=len(nets), full=len(full),
                                    stopped=len(nets - full),
                                    refused=sum(t["kind"] == "refused" for t in lines),
                                    crashed=sum(t["kind"] == "crashed" for t in lines))}


def cell(name: str, value) -> str:
    if name in ("best_test", "best_val"):
        return f"{value:.4f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def main(seconds: float = 600, repeats: int = 3) -> None:
    same_data()
    tools = {"cnnbp search": cnnbp, "KerasTuner Hyperband": kerastuner}
    results = {name: [] for name in tools}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            order = list(tools) if r % 2 == 0 else list(tools)[::-1]
            for name in order:
                results[name].append(tools[name](Path(tmp), seconds, r))
                print(f"repeat {r + 1}/{repeats} {name}: {results[name][-1]}", file=sys.stderr)
    heads = ("test acc of pick", "val acc of pick", "trials at that val", "nets trained",
             "to 15 epochs", "stopped early", "refused > 50k params", "crashed")
    print(f"digits_search, {seconds:g} s wall per tool and repeat, {repeats} repeat(s), "
          "order alternating; each cell: median (per repeat)\n")
    print("| tool | " + " | ".join(heads) + " | wall s |")
    print("|---" * (len(heads) + 2) + "|")
    for name, runs in results.items():
        cells = []
        for f in (*FIELDS, "wall"):
            values = [run[f] for run in runs]
            each = ", ".join(cell(f, v) if f != "wall" else f"{v:.0f}" for v in values)
            median = statistics.median(values)
            cells.append((cell(f, median) if f != "wall" else f"{median:.0f}")
                         + (f" ({each})" if len(runs) > 1 else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 600,
         int(sys.argv[2]) if len(sys.argv) > 2 else 3)
