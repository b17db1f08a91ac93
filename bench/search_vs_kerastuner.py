"""`cnnbp search` vs KerasTuner RandomSearch and Hyperband: same space, data and wall clock.

The space is the one in tests/search/conftest.py: [(CONV-RELU)*N-POOL?]*M-FC-RELU-SOFTMAX on
8x8 digits with 3x3 valid convolutions, M in 1..4, N in 1..3, POOL on/off, FC units 8/16/32,
log learning rate 0.003..0.03 — two thirds of the (M, N, POOL) combinations are impossible.
Each tool gets the same wall-clock budget in its own process, one after the other, in one run;
reported: best validation accuracy, trials completed, trials crashed or wasted, and seconds
spent on candidates that could never have worked.
Usage: python bench/search_vs_kerastuner.py [seconds per tool] [epochs per trial]
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_for(cmd, seconds: float) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()  # the budget is spent; what finished is on disk
        proc.wait()
    return time.perf_counter() - started


def cnnbp(tmp: Path, seconds: float, epochs: int) -> dict:
    space = (ROOT / "tests" / "search" / "conftest.py").read_text() \
        .split('"""\\\n', 1)[1].split('"""', 1)[0]
    (tmp / "space.yaml").write_text(space)
    out = tmp / "cnnbp"
    cmd = [str(Path(sys.executable).with_name("cnnbp")), "search", str(tmp / "space.yaml"),
           "--data", "digits", "--trials", "10000", "--epochs", str(epochs), "--quiet",
           "--timeout", str(seconds), "-o", str(out)]
    wall = run_for(cmd, seconds + 60)  # --timeout stops starting trials; let one finish
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    trained = [r for r in rows if r["status"] in ("trained", "pruned")]
    bad = [r for r in rows if r["status"] == "infeasible"]
    return {"tool": "cnnbp search (TPE)", "wall": wall,
            "best": max((float(r["val_accuracy"]) for r in trained), default=float("nan")),
            "completed": len(trained), "wasted": 0, "excluded": len(bad),
            "crashed": sum(r["status"] == "failed" for r in rows),
            "wasted_s": 0.0, "static_s": sum(float(r["check_ms"]) for r in bad) / 1e3}


def kerastuner(tmp: Path, kind: str, seconds: float, epochs: int) -> dict:
    folder, log = tmp / f"kt_{kind}", tmp / f"kt_{kind}.jsonl"
    wall = run_for([sys.executable, "bench/search_kerastuner_worker.py", kind, str(folder),
                    str(epochs), str(log)], seconds)
    best, completed, failed = float("nan"), 0, 0
    for trial in folder.glob("bench/trial_*/trial.json"):
        t = json.loads(trial.read_text())
        if t.get("status") == "COMPLETED" and t.get("score") is not None:
            completed += 1
            best = t["score"] if best != best else max(best, t["score"])
        elif t.get("status") in ("FAILED", "INVALID"):
            failed += 1
    builds = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    wasted = [b for b in builds if not b["built"]]
    return {"tool": f"KerasTuner {'RandomSearch' if kind == 'random' else 'Hyperband'}",
            "wall": wall, "best": best, "completed": completed, "crashed": failed,
            "wasted": len(wasted), "excluded": 0,
            "wasted_s": sum(b["seconds"] for b in wasted), "static_s": 0.0}


def main(seconds: float = 120, epochs: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = [cnnbp(tmp, seconds, epochs), kerastuner(tmp, "random", seconds, epochs),
                   kerastuner(tmp, "hyperband", seconds, epochs)]
    print(f"budget {seconds:g} s per tool, {epochs} epochs per trial, digits 8x8")
    print(f"{'tool':28} {'wall s':>7} {'best val acc':>12} {'completed':>9} {'crashed':>7} "
          f"{'failed builds':>13} {'s on impossible':>15} {'excluded statically':>19}")
    for r in results:
        print(f"{r['tool']:28} {r['wall']:7.1f} {r['best']:12.4f} {r['completed']:9d} "
              f"{r['crashed']:7d} {r['wasted']:13d} {r['wasted_s']:15.3f} "
              f"{r['excluded']:>10d} ({r['static_s']:.3f} s)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 120,
         int(sys.argv[2]) if len(sys.argv) > 2 else 3)
