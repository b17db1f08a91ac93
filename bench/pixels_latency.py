"""Latency of pixels.onnx (preprocessing in the graph) against model.onnx, in ONNX Runtime.

digits and cifar10_small, built from their blueprints (latency does not depend on training),
exported as `cnnbp export` does; pixels.onnx made from model.onnx by export.pixels.build with an
image record (raw_max 255). Batch 1 and 64. The sessions are timed in alternating rounds
(the order flipped every round), so drift in the machine's load falls on all alike. Also timed:
pixels.onnx asked for `probabilities` only (its ArgMax skipped), and what a client of
model.onnx must do instead of pixels.onnx: normalise the uint8 pixels in NumPy, then run it.

Usage: python bench/pixels_latency.py [--rounds 30] [--calls 20] [--threads 1]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sessions(work: Path, name: str, threads: int):
    import onnx
    import onnxruntime as ort

    from cnnbp.builder import build_model, load
    from cnnbp.contract.preprocessing import Preprocessing
    from cnnbp.export import pixels
    from cnnbp.export.onnx_export import save_checked, to_onnx

    net = load(name).network
    channels = net.input_shape[-1]
    prep = Preprocessing(input_shape=list(net.input_shape), domain="image", raw_max=255.0,
                         scale=255.0, mean=[0.45] * channels, std=[0.25] * channels,
                         class_names=[str(i) for i in range(net.classes)])
    save_checked(to_onnx(build_model(net)), work / f"{name}.onnx")
    save_checked(pixels.build(onnx.load(str(work / f"{name}.onnx")), prep),
                 work / f"{name}.pixels.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    make = lambda f: ort.InferenceSession(str(work / f), options,
                                          providers=["CPUExecutionProvider"])
    return net, prep, make(f"{name}.onnx"), make(f"{name}.pixels.onnx")


def timed(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30, choices=range(1, 10001), metavar="N")
    ap.add_argument("--calls", type=int, default=20, choices=range(1, 10001), metavar="N")
    ap.add_argument("--threads", type=int, default=1, choices=range(1, 257), metavar="N",
                    help="ONNX Runtime intra-op threads (default 1: steady on a shared machine)")
    args = ap.parse_args()
    from cnnbp.builder.tf_env import import_tensorflow
    import_tensorflow()

    print(f"ONNX Runtime, {args.threads} intra-op thread(s), {args.rounds} alternating rounds "
          f"x {args.calls} calls each")
    print(f"{'model':14} {'batch':>5}  {'p50 model':>10} {'p50 pixels':>10} {'ratio':>6}  "
          f"{'mean model':>10} {'mean pixels':>11} {'ratio':>6}  {'probs only':>10} "
          f"{'ratio':>6}  {'numpy+model p50':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("digits", "cifar10_small"):
            net, prep, model, raw = sessions(Path(tmp), name, args.threads)
            gain, shift = prep.gain_shift(prep.raw_max / 255.0)
            for batch in (1, 64):
                u8 = np.random.default_rng(batch).integers(0, 256, (batch, *net.input_shape),
                                                           dtype="uint8")
                x = u8.astype("float32") * gain + shift
                runs = {"model": lambda: model.run(None, {"input": x}),
                        "pixels": lambda: raw.run(None, {"pixels": u8}),
                        # only what model.onnx gives: ONNX Runtime then skips the ArgMax
                        "probs": lambda: raw.run(["probabilities"], {"pixels": u8}),
                        "numpy": lambda: model.run(None, {"input": u8.astype("float32") * gain
                                                          + shift})}
                np.testing.assert_allclose(runs["pixels"]()[0], runs["model"]()[0], atol=1e-5)
                times = {k: [] for k in runs}
                timed(runs["model"], 10), timed(runs["pixels"], 10)  # warm up
                order = list(runs)
                for r in range(args.rounds):
                    for k in (order if r % 2 == 0 else order[::-1]):
                        times[k] += timed(runs[k], args.calls)
                p50 = {k: float(np.median(v)) for k, v in times.items()}
                mean = {k: float(np.mean(v)) for k, v in times.items()}
                print(f"{name:14} {batch:>5}  {p50['model']:10.4f} {p50['pixels']:10.4f} "
                      f"{p50['pixels'] / p50['model']:6.3f}  {mean['model']:10.4f} "
                      f"{mean['pixels']:11.4f} {mean['pixels'] / mean['model']:6.3f}  "
                      f"{p50['probs']:10.4f} {p50['probs'] / p50['model']:6.3f}  "
                      f"{p50['numpy']:15.4f}")


if __name__ == "__main__":
    main()
