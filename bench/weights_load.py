"""Load time of VGG-16 weights into the shipped ``vgg16`` blueprint, per source format.

Writes ``keras.applications.VGG16(weights=None)``'s weights as ``.weights.h5``, ``.keras`` and
a PyTorch-style ``.onnx`` (tests/builder/test_weights.torch_like_onnx) into a temporary folder,
then times ``builder.weights.read`` (the file → arrays in Keras's layout) and ``load_into``
(read + match + set_weights) on one built model, alternating formats; prints the medians.
The files were just written, so they are read from the page cache: this is the loader's cost,
not the disk's. Usage: python bench/weights_load.py [repeats]
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT.parent), str(ROOT)]


def main(repeats: int = 3) -> None:
    from cnnbp.builder.tf_env import import_keras
    keras = import_keras()
    from cnnbp.builder import load
    from cnnbp.builder.keras_builder import build_model
    from cnnbp.builder.weights import load_into
    from cnnbp.builder.weights_read import read
    from cnnbp.builder.weights_source import with_source
    from tests.builder.test_weights import torch_like_onnx

    app = keras.applications.VGG16(weights=None)
    folder = Path(tempfile.mkdtemp(prefix="weights_load_"))
    files = {".weights.h5": folder / "vgg16.weights.h5", ".keras": folder / "vgg16.keras",
             ".onnx": folder / "vgg16.onnx"}
    app.save_weights(str(files[".weights.h5"]))
    app.save(str(files[".keras"]))
    torch_like_onnx(app, files[".onnx"])
    del app
    model = build_model(load("vgg16").network)
    times = {k: ([], []) for k in files}
    for _ in range(repeats):
        for kind, path in files.items():
            start = time.perf_counter()
            read(path)
            times[kind][0].append(time.perf_counter() - start)
            compiled = with_source(load("vgg16"), None, str(path))
            start = time.perf_counter()
            load_into(model, compiled)
            times[kind][1].append(time.perf_counter() - start)
    for kind, path in files.items():
        r, total = (statistics.median(t) for t in times[kind])
        print(f"{kind:12s} {path.stat().st_size / 2**20:6.0f} MiB  read {r:5.2f} s  "
              f"read+match+set {total:5.2f} s  (median of {repeats})")
    for path in files.values():
        path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
