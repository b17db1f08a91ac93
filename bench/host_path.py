"""The host path of training (issue 28): `cnnbp train` against a hand-written Keras `fit` on
the same backend, net, data, batch size, optimizer and epochs, on this CPU, where a small net
leaves the host's share (feeding batches, per-step and per-epoch work, what follows the last
epoch) in plain view.

Nets: the shipped `digits` blueprint (8x8x1) and `cifar10_small` (32x32x3), both at batch 256
on seeded random uint8 images in a `savez_compressed` .npz (read into memory, as the hand-
written side holds them), 10% of the training rows held out for validation on both sides,
Adam at a constant 1e-3, no augmentation. Backends: KERAS_BACKEND=jax and tensorflow.

Every measurement is a fresh process (the backend is chosen per process), the two runners
alternating, `--repeats` times:

* `cnnbp train` is the CLI (`python cli.py train ... --quiet`), its whole real path: the data
  summary's statistics, samples.npz, a checkpoint commit per epoch, best.keras and model.keras,
  the test evaluation, metrics.json, the charts and report.html;
* the hand-written script loads the .npz, scales it to float32 once, builds the same layers
  (`build_model`), compiles with Keras's defaults, `fit`s with `validation_split`, then
  `evaluate`s the test rows and saves the model: what a user writes to get a model and a
  test figure.

Per process: the epochs' seconds (each from its start to its end, validation included, as
cnnbp's history.csv records them), images/s over the epochs after the first (the first
compiles), and the seconds outside the epochs = the process's wall time (start to exit,
measured here) minus the sum of its epochs' seconds. The table shows medians and the ratios
cnnbp / hand-written side by side.

Both cnnbp runners start from JAX's persistent compilation cache (builder/jax_cache.py) as
the runner says: `cnnbp` with it off, cold as the hand-written script is; `cnnbp-warm` with a
cache that one unmeasured run per net and backend filled first, as a user's rerun has it.

Usage: python bench/host_path.py [--epochs 3] [--repeats 3] [--backends jax,tensorflow]
       [--nets digits,cifar10_small] [--runners keras,cnnbp,cnnbp-warm] [--json out.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH = 256
LEARNING_RATE = 1e-3
VALIDATION = 0.1


@dataclass(frozen=True)
class Case:
    net: str      # a shipped blueprint
    shape: tuple  # its input
    train: int    # rows in x_train (before the validation hold-out)
    test: int


CASES = {"digits": Case("digits", (8, 8, 1), 28_672, 1_024),
         "cifar10_small": Case("cifar10_small", (32, 32, 3), 1_536, 256)}
SETS = ("training.augment.translate=0", f"training.batch_size={BATCH}",
        "training.optimizer=adam", f"training.learning_rate={LEARNING_RATE}",
        "training.schedule=constant", f"training.validation_split={VALIDATION}",
        "training.early_stopping=0")


def make_data(case: Case, path: Path, seed: int = 0) -> Path:
    """Seeded random images (a template per class plus noise, so the nets learn something)."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (10, *case.shape))

    def images(n):
        y = rng.integers(0, 10, n)
        return np.clip(templates[y] + rng.normal(0, 64, (n, *case.shape)), 0, 255
                       ).astype(np.uint8), y.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = images(case.train), images(case.test)
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def handwritten(case: Case, npz: Path, epochs: int, report: Path) -> None:
    """The hand-written script (run in a child process): load, scale, build, fit, evaluate,
    save; its epochs' seconds go to ``report``."""
    import keras

    from cnnbp.builder import load
    from cnnbp.builder.keras_builder import build_model

    with np.load(npz) as z:
        x, y, x_test, y_test = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    mean, std = x.mean(), x.std()
    scale = lambda a: ((a.astype("float32") - mean) / std).astype("float32")
    x, x_test = scale(x), scale(x_test)
    y, y_test = keras.utils.to_categorical(y, 10), keras.utils.to_categorical(y_test, 10)

    marks: list[float] = []  # each epoch's start and end; the end waits for its last step
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: marks.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: marks.append(float(logs["loss"]) * 0
                                                      + time.perf_counter()))
    keras.utils.set_random_seed(0)
    model = build_model(load(case.net, []).network)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=epochs, validation_split=VALIDATION, verbose=0,
              callbacks=[timer])
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=BATCH, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "model.keras")
    report.write_text(json.dumps({"epoch_seconds": [b - a for a, b in zip(marks[::2], marks[1::2])],
                                  "train_rows": math.ceil(len(x) * (1 - VALIDATION)),
                                  "test_accuracy": accuracy}))


def feed(net: str, shape: tuple, rows: int, batch: int, work: Path, passes: int = 8) -> dict:
    """Milliseconds per training batch drawn on the host, with no training at all: cnnbp's
    array batches (the KERAS_BACKEND=jax path, 1 and 4 threads) from seeded uint8 images held
    in memory, against Keras's own adapter slicing ready float32 arrays (the hand-written
    fit's input). The fastest of ``passes`` epochs each, the three in turn, so other work on
    the machine adds less and falls on all three."""
    import keras
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from cnnbp.builder import load
    from cnnbp.train.images import BadImages
    from cnnbp.train.pipeline import make_pipelines
    from cnnbp.train.sources import load_source
    from cnnbp.train.stats import fit_preprocessing

    case = Case(net, shape, rows, batch)
    npz = make_data(case, work / f"feed-{net}.npz")
    sets = [f"input=[{','.join(map(str, shape))}]", "classes=10", *SETS[:1],
            f"training.batch_size={batch}", "training.validation_split=0"]
    network = load(net, sets).network
    data = load_source(str(npz), network.input_shape, network.classes)
    prep, _ = fit_preprocessing(data, network, BadImages(False), input_shape=list(shape),
                                domain="image", raw_max=data.raw_max, scale=data.scale,
                                class_names=[str(i) for i in range(10)])

    adapters = {}
    for workers in (1, 4):
        train = make_pipelines(data, prep, network, None, "jax", workers).train
        adapters[f"cnnbp, {workers} thread{'s' if workers > 1 else ''}"] = PyDatasetAdapter(
            train, shuffle=False)
    x = data.x_train.astype("float32") * np.float32(2) - np.float32(1)  # ready, as by hand
    adapters["Keras arrays"] = ArrayDataAdapter(
        x, keras.utils.to_categorical(data.y_train, 10), batch_size=batch, shuffle=True)
    times: dict[str, list[float]] = {name: [] for name in adapters}
    for _ in range(passes):  # the three in turn, so the machine's load falls on each
        for name, adapter in adapters.items():
            started, drawn = time.perf_counter(), 0
            for _ in adapter.get_jax_iterator():
                drawn += 1
            times[name].append((time.perf_counter() - started) * 1e3 / drawn)
            adapter.on_epoch_end()
    found = {name: min(t) for name, t in times.items()}
    return found


def interleaved(net: str, rounds: int, work: Path) -> dict:
    """Steady-state epoch seconds in one process, cnnbp's model and pipelines (its ``fit``
    call as ``train`` makes it, without the run-directory callback, whose writer a second
    ``fit`` would find shut) against the hand-written ``fit`` on ready arrays, one epoch each
    in turn after a first (compiling) epoch each: load on the machine falls on both alike."""
    import keras

    from cnnbp.builder import load
    from cnnbp.builder.keras_builder import build_model
    from cnnbp.train.session import compile_model, prepare

    case = CASES[net]
    npz = make_data(case, work / f"{net}.npz")
    session = prepare(load(net, [*SETS, "training.epochs=1"]), str(npz), work / "run")
    ours = compile_model(session)
    with np.load(npz) as z:
        x, y = z["x_train"], keras.utils.to_categorical(z["y_train"], 10)
    x = ((x.astype("float32") - x.mean()) / x.std()).astype("float32")
    theirs = build_model(load(net, []).network)
    theirs.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                   loss="categorical_crossentropy", metrics=["accuracy"])
    seconds: dict[str, list[float]] = {"cnnbp": [], "keras": []}
    for epoch in range(rounds + 1):
        for name in ("cnnbp", "keras"):
            marks: list[float] = []  # the epoch alone, not fit's set-up around it
            timer = keras.callbacks.LambdaCallback(
                on_epoch_begin=lambda epoch, logs: marks.append(time.perf_counter()),
                on_epoch_end=lambda epoch, logs: marks.append(float(logs["loss"]) * 0
                                                              + time.perf_counter()))
            if name == "cnnbp":
                session.pipelines.start_epoch(epoch)
                ours.fit(session.pipelines.train, validation_data=session.pipelines.validation,
                         epochs=epoch + 1, initial_epoch=epoch, verbose=0, shuffle=False,
                         callbacks=[timer])
            else:
                theirs.fit(x, y, batch_size=BATCH, epochs=epoch + 1, initial_epoch=epoch,
                           validation_split=VALIDATION, verbose=0, callbacks=[timer])
            if epoch:  # the first compiles
                seconds[name].append(marks[1] - marks[0])
    session.pipelines.close()
    rate = {"cnnbp": session.pipelines.train_size,
            "keras": math.ceil(len(x) * (1 - VALIDATION))}
    return {k: rate[k] / statistics.median(v) for k, v in seconds.items()}


def measure(runner: str, backend: str, case: Case, npz: Path, epochs: int, work: Path) -> dict:
    """One fresh process of ``runner``; its wall time, epochs' seconds and images/s."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONUNBUFFERED": "1",
           # cold as the hand-written script is, or from a cache an earlier run filled
           "CNNBP_JAX_CACHE": str(work / "jax-cache") if runner == "cnnbp-warm" else "off"}
    report = work / "report.json"
    report.unlink(missing_ok=True)
    run = work / "run"
    if runner.startswith("cnnbp"):
        sets = [*SETS, f"training.epochs={epochs}"]
        cmd = [sys.executable, str(ROOT / "cli.py"), "train", case.net, "--data", str(npz),
               "-o", str(run), "--force", "--quiet", *[a for s in sets for a in ("--set", s)]]
    else:
        cmd = [sys.executable, __file__, "--child", case.net, "--npz", str(npz),
               "--epochs", str(epochs), "--report", str(report)]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{runner} {backend} {case.net} failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    if runner.startswith("cnnbp"):
        metrics = json.loads((run / "metrics.json").read_text())
        with open(run / "history.csv", newline="") as f:
            seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
        rows, accuracy = metrics["train_samples"], metrics["test_accuracy"]
    else:
        got = json.loads(report.read_text())
        seconds, rows, accuracy = got["epoch_seconds"], got["train_rows"], got["test_accuracy"]
    steady = seconds[1:]
    return {"runner": runner, "backend": backend, "net": case.net, "wall": wall,
            "epoch_seconds": seconds, "outside": wall - sum(seconds),
            "images_per_second": rows * len(steady) / sum(steady), "test_accuracy": accuracy}


def table(rows: list[dict], cnnbp: str = "cnnbp") -> str:
    """Medians per backend and net, cnnbp (the ``cnnbp`` runner) beside hand-written, and
    their ratios."""
    lines = ["| backend | net | hand-written images/s | cnnbp images/s | ratio | hand-written "
             "s outside | cnnbp s outside | difference s | hand-written wall s | cnnbp wall s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    keys = dict.fromkeys((r["backend"], r["net"]) for r in rows)
    for backend, net in keys:
        runs = {side: [r for r in rows if r["runner"] == runner and
                       (r["backend"], r["net"]) == (backend, net)]
                for side, runner in (("keras", "keras"), ("cnnbp", cnnbp))}
        if not all(runs.values()):  # a run cut short before this pair's second half
            continue
        med = {runner: {k: statistics.median(r[k] for r in got)
                        for k in ("images_per_second", "outside", "wall")}
               for runner, got in runs.items()}
        k, c = med["keras"], med["cnnbp"]
        lines.append(f"| {backend} | {net} ({len(runs['cnnbp'])}) | {k['images_per_second']:,.0f} | "
                     f"{c['images_per_second']:,.0f} | "
                     f"**{c['images_per_second'] / k['images_per_second']:.2f}** | "
                     f"{k['outside']:.1f} | {c['outside']:.1f} | "
                     f"**{c['outside'] - k['outside']:+.1f}** | {k['wall']:.1f} | "
                     f"{c['wall']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", default="jax,tensorflow")
    p.add_argument("--nets", default="digits,cifar10_small")
    p.add_argument("--runners", default="keras,cnnbp")
    p.add_argument("--json", help="also write every measurement here")
    p.add_argument("--table", metavar="JSON", help="only print the table of a --json file")
    p.add_argument("--interleaved", type=int, metavar="ROUNDS",
                   help="only steady-state epochs in one process, the two fits in turn")
    p.add_argument("--feed", action="store_true",
                   help="only the host's batch feeding, in this process (KERAS_BACKEND=jax)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--npz", help=argparse.SUPPRESS)
    p.add_argument("--report", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        handwritten(CASES[args.child], Path(args.npz), args.epochs, Path(args.report))
        return 0
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    if args.interleaved:
        with tempfile.TemporaryDirectory(prefix="host_path_") as folder:
            for net in args.nets.split(","):
                found = interleaved(net, args.interleaved, Path(folder))
                print(f"{net} ({os.environ.get('KERAS_BACKEND', 'tensorflow')}): median "
                      f"images/s over {args.interleaved} epochs each, cnnbp "
                      f"{found['cnnbp']:,.0f}, hand-written {found['keras']:,.0f}, ratio "
                      f"{found['cnnbp'] / found['keras']:.2f}", flush=True)
        return 0
    if args.feed:
        with tempfile.TemporaryDirectory(prefix="host_path_") as folder:
            for net, shape, rows, batch in (("cifar10_small", (32, 32, 3), 12_800, 256),
                                            ("vgg11", (224, 224, 3), 640, 64)):
                found = feed(net, shape, rows, batch, Path(folder))
                print(f"{net} {'x'.join(map(str, shape))}, batch {batch}: ms per batch " +
                      ", ".join(f"{k} {v:.2f}" for k, v in found.items()), flush=True)
        return 0
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="host_path_") as folder:
        work = Path(folder)
        nets = {net: make_data(CASES[net], work / f"{net}.npz") for net in args.nets.split(",")}
        if "cnnbp-warm" in args.runners.split(","):  # fill the JAX cache once, unmeasured
            for net, npz in nets.items():
                for backend in args.backends.split(","):
                    measure("cnnbp-warm", backend, CASES[net], npz, args.epochs, work)
        for repeat in range(args.repeats):  # outermost: a cut-short run has whole repeats
            for net, npz in nets.items():
                case = CASES[net]
                for backend in args.backends.split(","):
                    for runner in args.runners.split(","):  # alternating, in one repeat
                        row = measure(runner, backend, case, npz, args.epochs, work)
                        rows.append({**row, "repeat": repeat})
                        print(f"{net} {backend} {runner} #{repeat + 1}: "
                              f"{row['images_per_second']:,.0f} images/s, "
                              f"{row['outside']:.1f} s outside the epochs "
                              f"(wall {row['wall']:.1f} s, epochs "
                              f"{', '.join(f'{s:.2f}' for s in row['epoch_seconds'])})",
                              flush=True)
                        if args.json:
                            Path(args.json).write_text(json.dumps(rows, indent=1))
    for runner in ("cnnbp", "cnnbp-warm"):
        if {"keras", runner} <= set(args.runners.split(",")):
            print(f"\n{runner} against the hand-written script:\n" + table(rows, runner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
