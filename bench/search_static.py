"""Static pruning in `cnnbp search` vs finding the same verdict by building the net in Keras.

One space over 8x8 digits where most (M, N, POOL) combinations are impossible. The same
random candidates are judged both ways, alternately, in one process: `candidate.check`
(compile + analyse, no TensorFlow) and `keras_builder.build_model` on the unanalysed IR
(the way a tuner learns that a net is impossible: it tries to build it). Prints per-candidate
medians, p95 and the ratio. Usage: python bench/search_static.py [candidates]
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPACE = (ROOT / "tests" / "search" / "conftest.py").read_text().split('"""\\\n', 1)[1] \
    .split('"""', 1)[0]


def main(count: int = 200) -> None:
    import optuna

    from cnnbp.builder import blueprint, build_model
    from cnnbp.builder.search_space import with_values
    from cnnbp.builder.tf_env import import_tensorflow
    from cnnbp.search.candidate import judge
    from cnnbp.search.load import load
    from cnnbp.search.sampling import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.yaml"
        path.write_text(SPACE)
        doc, space = load(str(path), [], [])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    picks = []
    for _ in range(count):
        trial = study.ask()
        picks.append(suggest(trial, space, doc))
        study.tell(trial, 0.0)
    import_tensorflow()
    static, keras_ms, infeasible, agree = [], [], 0, 0
    for values in picks:
        t = time.perf_counter()
        cand = judge(doc, space, values)
        static.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        with mock.patch.object(blueprint, "analyze", lambda net: None):
            net = blueprint.compile_data(with_values(doc, {a.path: values[a.name]
                                                       for a in space.axes})).network
        try:
            model = build_model(net)
            built = min(d for layer in model.layers for d in layer.output.shape[1:]) >= 1
        except Exception:
            built = False
        keras_ms.append((time.perf_counter() - t) * 1e3)
        infeasible += not cand.feasible
        agree += cand.feasible == built
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1]
    s, k = statistics.median(static), statistics.median(keras_ms)
    print(f"{count} candidates, {infeasible} infeasible; verdicts agree on {agree}/{count}")
    print(f"static check   median {s:.2f} ms, p95 {q(static, 95):.2f} ms (target < 5 ms)")
    print(f"Keras build    median {k:.2f} ms, p95 {q(keras_ms, 95):.2f} ms")
    print(f"ratio: the static verdict is {k / s:.0f}x faster than building in Keras")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
