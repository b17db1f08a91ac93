"""Inference latency, p50/p99: ONNX Runtime fp32 and int8 vs Keras predict vs a tf.function call.

digits and cifar10_small (built from their blueprints; latency does not depend on training),
batch 1 and 64, all in one run on the same inputs. int8 is static QDQ calibrated on random
normalized inputs. Usage: python bench/latency.py [iterations]
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timings(fn, n: int, warmup: int = 10) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        t.append((time.perf_counter() - s) * 1000)
    return float(np.percentile(t, 50)), float(np.percentile(t, 99))


def main(n: int = 200) -> None:
    from cnnbp.builder.tf_env import import_tensorflow
    tf = import_tensorflow()
    import onnx

    from cnnbp.builder import build_model, load
    from cnnbp.export import variants
    from cnnbp.export.onnx_export import to_onnx
    from cnnbp.export.parity import session

    print(f"{'model':14} {'batch':>5}  {'method':22} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("digits", "cifar10_small"):
        net = load(name).network
        model = build_model(net)
        work = Path(tempfile.mkdtemp())
        onnx.save(to_onnx(model), str(work / "fp32.onnx"))
        calib = np.random.default_rng(0).normal(size=(256, *net.input_shape)).astype("float32")
        variants.int8(work / "fp32.onnx", work / "int8.onnx", calib, work)
        fp32, int8 = session(str(work / "fp32.onnx")), session(str(work / "int8.onnx"))
        call = tf.function(lambda x: model(x, training=False))
        for batch in (1, 64):
            x = np.random.default_rng(batch).normal(size=(batch, *net.input_shape)).astype("float32")
            tx = tf.constant(x)
            rows = {
                "onnxruntime fp32": timings(lambda: fp32.run(None, {"input": x}), n),
                "onnxruntime int8": timings(lambda: int8.run(None, {"input": x}), n),
                "tf.function call": timings(lambda: call(tx).numpy(), n),
                "keras predict": timings(lambda: model.predict(x, verbose=0), max(n // 10, 10), 3),
            }
            for method, (p50, p99) in rows.items():
                print(f"{name:14} {batch:>5}  {method:22} {p50:8.3f} {p99:8.3f}")
            speed = rows["tf.function call"][0] / rows["onnxruntime fp32"][0]
            quant = rows["onnxruntime fp32"][0] / rows["onnxruntime int8"][0]
            print(f"{'':14} {'':>5}  -> ORT fp32 is {speed:.1f}x faster than tf.function at p50; "
                  f"int8 is {quant:.2f}x fp32")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
