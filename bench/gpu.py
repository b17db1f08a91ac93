"""GPU training speed (issue 10): `cnnbp train` against a hand-written Keras `fit` on the same
backend and a hand-written PyTorch loop, on the same net, data, batch size, optimizer (Adam,
lr 1e-3) and epochs. Two nets: cifar10_small at 32x32x3 and VGG-11 at 224x224x3 (10 classes),
on seeded synthetic uint8 images held in memory.

Each measurement runs in a fresh process (one `cnnbp train` per precision, one Keras process,
one PyTorch process), so a mixed-precision policy, a compile cache or memory that JAX holds
never carries over. images/s is over the epochs after the first, since the first includes
compilation; its seconds are shown separately. "mixed" is fp16 compute with fp32 weights in
all three (Keras mixed_float16; torch autocast fp16 with a GradScaler); "bf16" is bfloat16
compute with fp32 weights and no loss scaling (Keras mixed_bfloat16; torch autocast bf16).
For `cnnbp train` the seconds outside its epochs are split into the process's start and end
(imports, parsing, report.html: process seconds less metrics.json's wall_seconds) and its
run (statistics, samples, checkpoint waits, saved models, test evaluation: wall_seconds less
the epochs).

Measurements run in order of what they decide, both nets at each step, so a spent --budget
skips the least needed: Keras fit (every precision, one process) and cnnbp in float32,
PyTorch, then cnnbp in bf16 (what `training.mixed_precision: auto` picks on such GPUs under
JAX since 2026-12-04), then cnnbp in fp16. Every cnnbp run names its precision explicitly.

On the GPU machine (H200: Python 3.12, JAX, PyTorch, no TensorFlow or Keras, no network):
here, once, `bash bench/gpu_wheels.sh` (fills .whl/, which .git/info/exclude must list), then
one device call with carry [".whl"] and this command:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; \
    KERAS_BACKEND=jax PYTHONUNBUFFERED=1 python3 bench/gpu.py --out $OUT

A call may run 10 minutes at most: --budget (default 540 s) stops starting measurements once
it is spent and records the rest as skipped; results are rewritten to --out after every
measurement (gpu_bench.md, gpu_bench.json, and the processes' output in gpu_bench.log), so
a killed run still returns what it finished. If rows were skipped, run them in a second
call, e.g. with --nets vgg11 (and --runners, --precisions to pick).

Here (2-core CPU, JAX CPU): `KERAS_BACKEND=jax .venv/bin/python bench/gpu.py --quick` makes
everything tiny (a smoke test; its numbers mean nothing for a GPU).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ("gpu_bench.md", "gpu_bench.json", "gpu_bench.log")
NOTES = (
    "images/s: training images per second over the epochs after the first (the first "
    "includes compilation and autotuning; its seconds are in '1st epoch s').",
    "XLA: under JAX every Keras train step is one jitted XLA program; jit_compile=False there "
    "runs the step op by op rather than 'without XLA', so XLA is an option worth timing only "
    "on the TensorFlow backend.",
    "Inputs: cnnbp train reads the .npz through its own pipeline and device settings; the "
    "Keras fit gets NumPy arrays scaled to [0, 1] by hand and Keras's defaults "
    "(steps_per_execution=1); the PyTorch loop keeps the scaled arrays on the device (no "
    "input pipeline at all).",
    "PyTorch fp32 allows TF32 tensor-core math, as JAX's default float32 precision on GPUs "
    "does; 'mixed' is fp16 autocast with a GradScaler, like Keras's mixed_float16; 'bf16' is "
    "bfloat16 autocast without one, like Keras's mixed_bfloat16.",
    "outside s (cnnbp): process seconds less the epochs' seconds; start+end s: imports, "
    "parsing and report.html (process less metrics.json's wall_seconds); run s: statistics, "
    "samples, checkpoint waits, saved models and the test evaluation (wall_seconds less the "
    "epochs).",
)
# --precisions names -> Keras dtype policy, and cnnbp's training.mixed_precision
POLICY = {"fp32": "float32", "bf16": "mixed_bfloat16", "mixed": "mixed_float16"}
SETTING = {"fp32": "false", "bf16": "bfloat16", "mixed": "float16"}


@dataclass(frozen=True)
class Case:
    net: str                      # the table's name for it
    blueprint: str                # a shipped blueprint
    overrides: tuple[str, ...]    # --set keys that shape the net, the same for every runner
    size: int                     # images are size x size x 3
    train: int
    test: int
    batch: int
    epochs: int
    classes: int = 10


# Sized to fit one 10-minute call on an H200: the whole bench (10 processes, three
# precisions) took 430 s there on 2026-12-04. Each process pays start-up and a first compile
# of tens of seconds, which the epochs after the first exclude, so few epochs of whole batches
# suffice. 24,576 = 96 x 256, 4,096 = 64 x 64.
FULL = (Case("cifar10_small", "cifar10_small", (), 32, 24_576, 1_024, 256, 4),
        Case("vgg11", "vgg11", ("classes=10", "input=[224,224,3]"), 224, 4_096, 256, 64, 3))
QUICK = (Case("cifar10_small", "cifar10_small", (), 32, 512, 128, 64, 2),
         Case("vgg11", "vgg11", ("classes=10", "input=[64,64,3]"), 64, 128, 32, 32, 2))


# ---------------------------------------------------------------- data

def make_data(case: Case, path: Path, seed: int = 0) -> Path:
    """Seeded, learnable images: a random 8x8 template per class plus per-image 8x8 noise,
    upscaled to the net's size. The blocks compress well, which matters because the file is
    written with savez_compressed: an uncompressed .npz would be memory-mapped, and
    `cnnbp train` streams memory-mapped arrays instead of holding them in memory."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (case.classes, 8, 8, 3))
    scale = case.size // 8

    def images(n):
        y = rng.integers(0, case.classes, n)
        low = np.clip(templates[y] + rng.normal(0, 48, (n, 8, 8, 3)), 0, 255).astype(np.uint8)
        return low.repeat(scale, axis=1).repeat(scale, axis=2), y.astype(np.int64)

    x_train, y_train = images(case.train)
    x_test, y_test = images(case.test)
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def load_data(path: Path):
    with np.load(path) as z:
        return z["x_train"], z["y_train"]


# ---------------------------------------------------------------- workers (child processes)

def import_cnnbp():
    """This checkout as the ``cnnbp`` package, installed or not (what cli.py does)."""
    if importlib.util.find_spec("cnnbp") is None:
        spec = importlib.util.spec_from_file_location(
            "cnnbp", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        sys.modules["cnnbp"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    from cnnbp.builder import load
    return load


def keras_worker(case: Case, npz: Path, rows: Path, precisions) -> None:
    """The hand-written baseline: build_model + compile + fit on NumPy arrays, nothing else."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    network = import_cnnbp()(case.blueprint, list(case.overrides)).network
    from cnnbp.builder.keras_builder import build_model
    x, y = load_data(npz)
    x = x.astype("float32") / 255.0
    y = keras.utils.to_categorical(y, case.classes)
    device = keras.backend.backend()
    if device == "jax":
        import jax
        d = jax.devices()[0]
        device = f"{d.device_kind if d.platform != 'cpu' else 'CPU'} (jax {jax.__version__})"

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float((logs or {}).get("loss", 0.0))  # a value of the last step: waits for it
            self.seconds.append(time.perf_counter() - self.started)

    for precision in precisions:
        keras.mixed_precision.set_global_policy(POLICY[precision])
        keras.utils.set_random_seed(0)
        model = build_model(network)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        timer = EpochTimes()
        history = model.fit(x, y, batch_size=case.batch, epochs=case.epochs, verbose=0,
                            callbacks=[timer])
        _append(rows, {"variant": "fp32" if precision == "fp32" else POLICY[precision],
                       "precision": precision, "epoch_seconds": timer.seconds,
                       "images_per_epoch": len(x), "device": device,
                       "final_loss": history.history["loss"][-1],
                       "versions": {"keras": keras.__version__,
                                    "backend": keras.backend.backend()}})
        del model
        keras.backend.clear_session()


def torch_worker(case: Case, npz: Path, rows: Path, precisions) -> None:
    import gpu_torch  # beside this file, which is sys.path[0]
    import torch
    network = import_cnnbp()(case.blueprint, list(case.overrides)).network
    x, y = load_data(npz)
    for label, precision, compiled in gpu_torch.variants(torch.cuda.is_available()):
        if precision in precisions:
            _append(rows, gpu_torch.train(network, x, y, case.batch, case.epochs, label,
                                          precision, compiled))
            torch.cuda.empty_cache()


def _append(rows: Path, row: dict) -> None:
    """One JSON line per variant as soon as it is done, so a timeout keeps the earlier ones."""
    with open(rows, "a") as f:
        f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------- the parent

class Bench:
    def __init__(self, out: Path, work: Path, budget: float, quick: bool, precisions):
        self.out, self.work, self.quick, self.precisions = out, work, quick, precisions
        self.deadline = time.monotonic() + budget
        self.rows: list[dict] = []
        self.log = out / "gpu_bench.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.setdefault("KERAS_BACKEND", "jax")
        # cold, as the hand-written side compiles: no figure rests on an earlier run's cache
        self.env.setdefault("CNNBP_JAX_CACHE", "off")

    def child(self, title: str, cmd: list[str]) -> str | None:
        """Run ``cmd`` within the budget; None if it succeeded, else why not."""
        left = self.deadline - time.monotonic()
        if left < 30:
            return "skipped: --budget spent"
        print(f"  {title} ...", end=" ", flush=True)
        started = time.monotonic()
        with open(self.log, "a") as log:
            log.write(f"\n===== {title}: {' '.join(cmd)}\n")
            log.flush()
            mark = log.tell()
            try:
                rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                    cwd=ROOT, timeout=left).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        print(f"{time.monotonic() - started:.0f} s" + ("" if rc == 0 else f" (exit {rc})"),
              flush=True)
        if rc == 0:
            return None
        with open(self.log, errors="replace") as log:
            log.seek(mark)
            tail = log.read().splitlines()[-25:]
        print("    " + "\n    ".join(tail), flush=True)
        return "stopped at --budget" if rc == "timeout" else f"failed (exit {rc}; see gpu_bench.log)"

    def worker(self, kind: str, case: Case, npz: Path) -> None:
        rows = self.work / f"{case.net}-{kind}.jsonl"
        cmd = [sys.executable, __file__, "--worker", kind, "--nets", case.net, "--npz", str(npz),
               "--rows", str(rows), "--precisions", ",".join(self.precisions)]
        problem = self.child(f"{case.net}: {kind}", cmd + (["--quick"] if self.quick else []))
        done = [json.loads(line) for line in rows.read_text().splitlines()] \
            if rows.exists() else []
        runner = "Keras fit" if kind == "keras" else "PyTorch loop"
        for r in done:
            self.add(case, runner, r.pop("variant"), r.pop("precision"), r.pop("epoch_seconds"),
                     r.pop("images_per_epoch"), **r)
        if problem:
            self.add(case, runner, "(the rest)" if done else "–", None, [], 0, note=problem)

    def cnnbp(self, case: Case, npz: Path, precision: str) -> None:
        run = self.work / f"{case.net}-{precision}"
        shutil.rmtree(run, ignore_errors=True)
        sets = [*case.overrides, f"training.epochs={case.epochs}",
                f"training.batch_size={case.batch}", "training.validation_split=0",
                f"training.mixed_precision={SETTING[precision]}"]
        cmd = [sys.executable, str(ROOT / "cli.py"), "train", case.blueprint, "--data", str(npz),
               "-o", str(run), "--quiet", *[a for s in sets for a in ("--set", s)]]
        started = time.monotonic()
        problem = self.child(f"{case.net}: cnnbp train ({precision})", cmd)
        variant = "fp32" if precision == "fp32" else POLICY[precision]
        if problem:
            self.add(case, "cnnbp train", variant, precision, [], 0, note=problem)
            return
        metrics = json.loads((run / "metrics.json").read_text())
        with open(run / "history.csv", newline="") as f:
            seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
        process = time.monotonic() - started
        note = "" if metrics.get("precision") == POLICY[precision] else \
            f"ran under {metrics.get('precision')}"
        self.add(case, "cnnbp train", variant, precision, seconds, metrics["train_samples"],
                 device=metrics["device"], note=note, process_seconds=round(process, 1),
                 outside_seconds=round(process - sum(seconds), 1),
                 start_end_seconds=round(process - metrics["wall_seconds"], 1),
                 run_seconds=round(metrics["wall_seconds"] - sum(seconds), 1),
                 **{k: metrics[k] for k in ("images_per_second", "train_seconds",
                                            "wall_seconds", "test_accuracy", "versions")})
        shutil.rmtree(run, ignore_errors=True)  # a VGG run holds GBs of checkpoints

    def add(self, case: Case, runner: str, variant: str, precision, epoch_seconds,
            images_per_epoch: int, **extra) -> None:
        steady = epoch_seconds[1:]
        rate = images_per_epoch * len(steady) / sum(steady) if steady and sum(steady) else None
        self.rows.append({"net": case.net, "runner": runner, "variant": variant,
                          "precision": precision, "steady_images_per_second": rate,
                          "first_epoch_seconds": epoch_seconds[0] if epoch_seconds else None,
                          "epoch_seconds": epoch_seconds, "images_per_epoch": images_per_epoch,
                          "batch": case.batch, "image_size": case.size, **extra})
        self.write()

    def table(self) -> str:
        base = {(r["net"], r["precision"]): r["steady_images_per_second"] for r in self.rows
                if r["runner"] == "Keras fit"}
        lines = ["| net | runner | variant | images/s | vs Keras fit | 1st epoch s | outside s "
                 "(start+end, run) | device | note |",
                 "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
        for r in self.rows:
            rate, ref = r["steady_images_per_second"], base.get((r["net"], r["precision"]))
            lines.append("| " + " | ".join([
                f"{r['net']} ({r['image_size']}px, batch {r['batch']})", r["runner"], r["variant"],
                f"{rate:,.0f}" if rate else "–",
                f"{rate / ref:.2f}" if rate and ref else "–",
                f"{r['first_epoch_seconds']:.1f}" if r["first_epoch_seconds"] else "–",
                f"{r['outside_seconds']} ({r['start_end_seconds']}, {r['run_seconds']})"
                if "outside_seconds" in r else "–",
                str(r.get("device", "")), str(r.get("note", ""))]) + " |")
        return "\n".join(lines)

    def write(self) -> None:
        text = self.table() + "\n\n" + "\n".join(f"- {n}" for n in NOTES) + "\n"
        (self.out / "gpu_bench.md").write_text(text)
        (self.out / "gpu_bench.json").write_text(json.dumps(
            {"quick": self.quick, "keras_backend": self.env["KERAS_BACKEND"],
             "notes": NOTES, "rows": self.rows}, indent=1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU smoke test")
    p.add_argument("--out", help="where results go (default $OUT, else a temporary folder)")
    p.add_argument("--nets", default=",".join(c.net for c in FULL),
                   help="comma-separated: cifar10_small, vgg11 (default both)")
    p.add_argument("--runners", default="keras,cnnbp,torch", help="comma-separated subset")
    p.add_argument("--precisions",
                   help="fp32,bf16,mixed (default all three; fp32 alone with --quick)")
    p.add_argument("--budget", type=float, default=540,
                   help="seconds after which no measurement starts (default 540)")
    p.add_argument("--worker", choices=["keras", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--npz", help=argparse.SUPPRESS)
    p.add_argument("--rows", help=argparse.SUPPRESS)
    args = p.parse_args()
    cases = [c for c in (QUICK if args.quick else FULL) if c.net in args.nets.split(",")]
    precisions = (args.precisions or ("fp32" if args.quick else "fp32,bf16,mixed")).split(",")

    if args.worker:
        fn = keras_worker if args.worker == "keras" else torch_worker
        fn(cases[0], Path(args.npz), Path(args.rows), precisions)
        return 0

    out = Path(args.out or os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu_bench_"))
    out.mkdir(parents=True, exist_ok=True)
    for name in RESULTS:
        (out / name).unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_bench_work_"))  # data and run dirs: GBs, not $OUT
    bench = Bench(out, work, args.budget, args.quick, precisions)
    runners = args.runners.split(",")
    print(f"KERAS_BACKEND={bench.env['KERAS_BACKEND']}; results in {out}", flush=True)
    try:
        data = {}
        for case in cases:
            print(f"{case.net}: {case.train:,} train images {case.size}x{case.size}x3, "
                  f"batch {case.batch}, {case.epochs} epochs", flush=True)
            data[case.net] = make_data(case, work / f"{case.net}.npz")
        # what decides most first, both nets at each step: a spent --budget skips the rest
        for case in cases:
            if "keras" in runners:
                bench.worker("keras", case, data[case.net])
            if "cnnbp" in runners and "fp32" in precisions:
                bench.cnnbp(case, data[case.net], "fp32")
            if "torch" in runners:
                if importlib.util.find_spec("torch") is None:
                    bench.add(case, "PyTorch loop", "–", None, [], 0,
                              note="skipped: torch is not importable here")
                else:
                    bench.worker("torch", case, data[case.net])
        for precision in [p for p in precisions if p != "fp32"]:
            for case in cases:
                if "cnnbp" in runners:
                    bench.cnnbp(case, data[case.net], precision)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bench.write()
    print()
    print((out / "gpu_bench.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
