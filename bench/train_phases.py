"""Where one `cnnbp train` run's wall time and peak memory go: imports, prepare, the epochs,
finish, report. The peak RSS printed after a phase is the process's peak so far.

Usage: python bench/train_phases.py NET DATA OUT EPOCHS
NET is a net expression (``INPUT(...)-...``) or a shipped blueprint (set to 64x64x3 input).
Runs ``train.fit.train`` in this process, as the CLI does, timing each phase.
"""
from __future__ import annotations

import resource
import sys
import time

started = time.perf_counter()
from cnnbp.builder.tf_env import import_keras  # noqa: E402

import_keras()
import cnnbp.report  # noqa: E402
from cnnbp.builder import load, load_expression  # noqa: E402
from cnnbp.train import fit  # noqa: E402

imports = time.perf_counter() - started
imports_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
spent: dict[str, float] = {}
peak: dict[str, float] = {}


def timed(name, fn):
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - began
            peak[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return wrapper


fit.prepare = timed("prepare: file list, statistics, samples.npz, pipelines", fit.prepare)
fit.finish = timed("finish: test evaluation, models, plots, metrics", fit.finish)
cnnbp.report.write_run_report = timed("report.html with the explain figures",
                                      cnnbp.report.write_run_report)


def main() -> None:
    net, data, out, epochs = sys.argv[1:5]
    sets = [f"training.epochs={epochs}"]
    compiled = load_expression(net, sets) if net.upper().startswith("INPUT") else \
        load(net, [*sets, "input=[64, 64, 3]", "class_names=[]"])
    began = time.perf_counter()
    metrics = fit.train(compiled, data, out, quiet=True)
    total = time.perf_counter() - began
    print(f"imports {imports:.1f} s; peak RSS so far {imports_peak:.0f} MB")
    for name, seconds in spent.items():
        print(f"{name} {seconds:.1f} s; peak RSS so far {peak[name]:.0f} MB")
    print(f"fit (the epochs, metrics.train_seconds) {metrics.train_seconds:.1f} s")
    print(f"train() {total:.1f} s; process {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
