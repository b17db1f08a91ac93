"""What a `cnnbp search` trial costs beyond its training (issue 26), in one process.

1. **Per trial.** `cnnbp search` over `blueprints/digits_search.yaml` on the digits data,
   2-epoch trials, no pruner (every trial trains both epochs), ``--trials T``: its wall time
   (``search.study.run``: proposing, the static checks, the study's storage, each trial's
   build, compile, fit, evaluation and files, and the outputs) divided by T; against a
   hand-written Keras loop that trains the *same* T nets (each trial's resolved blueprint,
   built by cnnbp's builder: the layers are not what is measured) in the same process: the
   data loaded and normalised by hand once, then per net `set_random_seed`, build, `compile`
   (Adam, the trial's learning rate on Keras's `CosineDecay`), `fit` on a `tf.data` pipeline
   (shuffled, batched, the blueprint's translate augmentation as a `RandomTranslation` map),
   `validation_data`, `evaluate` on the test set. The two alternate, `--repeats` times, after
   one warm-up net; medians. Target: search ≤ 1.3× the loop per trial.
2. **Per infeasible candidate.** The proposing step alone against a budget nothing meets
   (``max_params`` 1): each candidate is sampled, checked statically and recorded;
   wall time / candidates, for the first and the last block of ``--infeasible`` of them
   (the sampler slows as its history grows). Target: ≤ 20 ms.
3. **Memory** (``--memory N``): a search of N 1-epoch trials; the peak resident memory of the
   search's process plus that of the trials' process alive at the time (``VmHWM``; trials
   train in a child recycled every 10 trials, ``search/trial_process.py``), after trial 5 and
   after trial N. Target: < 10% growth. Run it first, in a fresh process (``--trials 0``),
   so the hand-written loop's TensorFlow does not count.

Usage: python bench/search_overhead.py [--trials 8] [--repeats 3] [--infeasible 400]
       [--memory 50]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT.parent))

from cnnbp.builder.tf_env import import_keras  # noqa: E402  (TensorFlow's noise filtered)

BLUEPRINT = ROOT / "blueprints" / "digits_search.yaml"


def load(sets: list[str]):
    """The search's blueprint and space with ``sets`` (``--search-set``) applied."""
    from cnnbp.search.load import load as load_search
    return load_search(str(BLUEPRINT), ["training.epochs=2"], sets)


def search(out: Path, trials: int, sets: list[str], on_trial=None):
    """`cnnbp search` in this process; returns (seconds, study)."""
    import optuna

    from cnnbp.search import study as studies
    from cnnbp.search.settings import Settings
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    doc, space = load(sets)
    started = time.perf_counter()
    study = studies.run(space, doc, Settings("digits", out, trials), on_trial=on_trial)
    from cnnbp.search import outputs
    outputs.write_all(study, out, space.objectives)
    return time.perf_counter() - started, study


def trained_nets(study) -> list[dict]:
    """The resolved blueprints of the study's trained trials, in trial order."""
    return [t.user_attrs["blueprint"] for t in sorted(study.trials, key=lambda t: t.number)
            if t.user_attrs.get("status") == "trained"]


class HandWritten:
    """A Keras script's loop over nets: digits loaded and normalised once, by hand."""

    def __init__(self):
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        d = load_digits()
        x = (d.images / 16.0).astype("float32")[..., None]
        x_tr, self.x_te, y_tr, self.y_te = train_test_split(
            x, d.target, test_size=0.2, random_state=0, stratify=d.target)
        mean, std = x_tr.mean(), x_tr.std()
        x_tr, self.x_te = (x_tr - mean) / std, (self.x_te - mean) / std
        order = np.random.default_rng(0).permutation(len(x_tr))
        held = int(round(0.1 * len(x_tr)))
        self.x_val, self.y_val = x_tr[order[:held]], y_tr[order[:held]]
        self.x_tr, self.y_tr = x_tr[order[held:]], y_tr[order[held:]]

    def train(self, resolved: dict) -> float:
        """One net: build, compile, fit, evaluate; returns the test accuracy."""
        import keras
        import tensorflow as tf

        from cnnbp.builder.blueprint import compile_data
        from cnnbp.builder.keras_builder import build_model
        net = compile_data(resolved).network
        t = net.training
        keras.backend.clear_session()
        keras.utils.set_random_seed(t.seed)
        model = build_model(net)
        steps = -(-len(self.x_tr) // t.batch_size)
        rate = keras.optimizers.schedules.CosineDecay(t.learning_rate, steps * t.epochs)
        model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        shift = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=t.seed)
        train = (tf.data.Dataset.from_tensor_slices((self.x_tr, self.y_tr))
                 .shuffle(len(self.x_tr), seed=t.seed).batch(t.batch_size)
                 .map(lambda x, y: (shift(x, training=True), y)).prefetch(2))
        model.fit(train, validation_data=(self.x_val, self.y_val), epochs=t.epochs, verbose=0)
        return model.evaluate(self.x_te, self.y_te, verbose=0)[1]


def per_trial(trials: int, repeats: int) -> dict:
    hand = HandWritten()
    warm = tempfile.mkdtemp(prefix="search_overhead_")
    _, study = search(Path(warm) / "warm", 1, ["pruner=none"])  # TensorFlow started, traced once
    hand.train(trained_nets(study)[0])
    cnnbp_s, hand_s = [], []
    for r in range(repeats):
        seconds, study = search(Path(warm) / f"s{r}", trials, ["pruner=none"])
        nets = trained_nets(study)
        cnnbp_s.append(seconds / len(nets))
        started = time.perf_counter()
        for net in nets:
            hand.train(net)
        hand_s.append((time.perf_counter() - started) / len(nets))
        print(f"repeat {r + 1}: cnnbp search {cnnbp_s[-1]:.3f} s/trial, hand-written loop "
              f"{hand_s[-1]:.3f} s/net ({len(nets)} nets): {cnnbp_s[-1] / hand_s[-1]:.2f}x",
              flush=True)
    return {"cnnbp": statistics.median(cnnbp_s), "hand": statistics.median(hand_s)}


def per_infeasible(count: int, block: int = 50) -> tuple[float, float]:
    """Seconds per infeasible candidate: the first and the last ``block`` of ``count``."""
    import optuna

    from cnnbp.search.opening import open_study
    from cnnbp.search.proposer import Proposer
    from cnnbp.search.settings import Settings
    doc, space = load(["max_params=1"])
    out = Path(tempfile.mkdtemp(prefix="search_infeasible_"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, sampler = open_study(space, doc, Settings("digits", out, 10), 2)
    proposer = Proposer(space, doc, sampler)
    times = []
    for _ in range(count // block):
        started = time.perf_counter()
        assert proposer.propose(study, block) is None  # nothing meets max_params 1
        times.append((time.perf_counter() - started) / block)
    return times[0], times[-1]


def _peak_mb(pid: int | str) -> float:
    """A process's peak resident memory so far (VmHWM), in MB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return 0.0


def _children(pid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                    found.append(entry.name)
            except (OSError, IndexError):
                continue
    return found


def memory(trials: int) -> tuple[float, float]:
    """Peak resident memory in MB of the search (its process and the trials' process
    alive at the time) after trial 5 and after the last trial of a 1-epoch search."""
    peaks: dict[int, float] = {}
    highest = [0.0]

    def on_trial(study, trial):
        if trial.user_attrs.get("status") in ("trained", "pruned"):
            now = _peak_mb("self") + sum(_peak_mb(c) for c in _children(os.getpid()))
            highest[0] = max(highest[0], now)
            peaks[len(peaks) + 1] = highest[0]
    out = Path(tempfile.mkdtemp(prefix="search_memory_")) / "m"
    from cnnbp.search import study as studies
    from cnnbp.search.settings import Settings
    doc, space = load(["pruner=none"])
    doc = {**doc, "training": {**doc["training"], "epochs": 1}}
    studies.run(space, doc, Settings("digits", out, trials), on_trial=on_trial)
    return peaks[5], peaks[max(peaks)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--infeasible", type=int, default=400)
    p.add_argument("--memory", type=int, default=0, metavar="N")
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} cores; backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}")
    if args.memory:  # first: this process has not imported TensorFlow yet
        five, end = memory(args.memory)
        print(f"peak RSS: {five:.0f} MB after trial 5, {end:.0f} MB after trial "
              f"{args.memory}: {100 * (end / five - 1):+.1f}% (target < +10%)", flush=True)
    first, last = per_infeasible(args.infeasible)
    print(f"infeasible candidate: {first * 1e3:.1f} ms each (first 50), {last * 1e3:.1f} ms "
          f"(candidates {args.infeasible - 49}..{args.infeasible}); target <= 20 ms", flush=True)
    if args.trials:
        import_keras()
        r = per_trial(args.trials, args.repeats)
        print(f"per trial, median of {args.repeats}: cnnbp search {r['cnnbp']:.3f} s, "
              f"hand-written loop {r['hand']:.3f} s: {r['cnnbp'] / r['hand']:.2f}x "
              "(target <= 1.3x)")


if __name__ == "__main__":
    main()
