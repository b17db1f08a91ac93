"""Build time of the generated VGG-16 vs the hand-written Keras VGG-16, in one process.

Builds alternate (after one warm-up of each) so both see the same machine state; prints
medians and the ratio generated/hand-written. Usage: python bench/build_time.py [repeats]
"""
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def timed(fn) -> float:
    import keras
    keras.backend.clear_session()
    gc.collect()
    start = time.perf_counter()
    model = fn()
    elapsed = time.perf_counter() - start
    assert model.count_params() == 138_357_544
    return elapsed


def main(repeats: int = 5) -> None:
    from cnnbp.builder.tf_env import import_tensorflow
    import_tensorflow()
    import handwritten_vgg16

    from cnnbp.builder import build_model, load
    net = load("vgg16").network
    generated = lambda: build_model(net)
    timed(generated), timed(handwritten_vgg16.build)  # warm-up
    g, h = [], []
    for _ in range(repeats):
        g.append(timed(generated))
        h.append(timed(handwritten_vgg16.build))
    mg, mh = statistics.median(g), statistics.median(h)
    print(f"generated VGG-16     median {mg:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in g)})")
    print(f"hand-written VGG-16  median {mh:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in h)})")
    print(f"ratio generated/hand-written: {mg / mh:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
