"""What importing the backend does to the process: glibc's malloc arenas are capped, and a
run on JAX never imports TensorFlow, though it is installed."""
import subprocess
import sys

import numpy as np
import pytest

from cnnbp.builder.tf_env import malloc_arenas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

# A tf.data map on eight threads, then glibc's own count of its arenas (malloc_info's <heap>s).
CHILD = """
import ctypes, os, re, sys, tempfile
if sys.argv[1] == "cnnbp":
    from cnnbp.builder.tf_env import import_keras
    import_keras()
import tensorflow as tf
ds = tf.data.Dataset.range(400).map(
    lambda i: tf.reduce_sum(tf.random.uniform((256, 256))), num_parallel_calls=8)
for _ in ds:
    pass
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp))
libc.fclose(ctypes.c_void_p(fp))
print(len(re.findall("<heap nr=", open(path).read())))
os.unlink(path)
"""


def arenas(how: str, **env) -> int:
    import os
    out = subprocess.run([sys.executable, "-c", CHILD, how], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def test_the_backend_starts_with_one_malloc_arena_per_core():
    pytest.importorskip("tensorflow")
    plain = arenas("plain")
    if plain <= malloc_arenas() + 2:  # too close to the cap to tell the two apart
        pytest.skip(f"TensorFlow alone made only {plain} arenas here: nothing to cap")
    assert arenas("cnnbp") <= malloc_arenas() < plain
    # a user's own setting is left alone
    assert arenas("cnnbp", MALLOC_ARENA_MAX=str(plain + 8)) > malloc_arenas()


# KERAS_BACKEND=jax with TensorFlow installed: train and save a run, seed as Keras does and as
# cnnbp does, and report what was drawn and whether TensorFlow was imported on the way.
JAX_CHILD = r"""
import json, random, sys
import numpy as np
from cnnbp.cli import main
from cnnbp.builder import load
from cnnbp.builder.keras_builder import build_model
from cnnbp.builder.tf_env import set_random_seed
code = main(["train", "digits", "--data", "digits", "-o", sys.argv[1], "--epochs", "1",
             "--quiet"])
loaded = "tensorflow" in sys.modules

def drawn(seed_with):
    seed_with(7)
    return ([w.tolist() for w in build_model(load("digits", []).network).get_weights()],
            random.random(), float(np.random.random()))

ours = drawn(set_random_seed)
ours_loaded = "tensorflow" in sys.modules
import keras
theirs = drawn(keras.utils.set_random_seed)
print(json.dumps({"code": code, "tensorflow_after_train": loaded,
                  "tensorflow_after_seed": ours_loaded, "same_draws": ours == theirs}))
"""


def test_a_jax_run_leaves_tensorflow_unimported_and_seeds_as_keras_does(tmp_path):
    """Keras imports TensorFlow to seed it and to check saved objects against its types
    (2.3-2.9 s of a JAX run): a JAX run trains and saves its models without it, and cnnbp's
    seeding draws the same weights, Python and NumPy numbers as ``keras.utils.set_random_seed``."""
    import json
    import os
    from pathlib import Path
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")  # installed: what Keras would import
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", JAX_CHILD, str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={**os.environ, "KERAS_BACKEND": "jax",
                              "PYTHONPATH": str(root.parent)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "code": 0, "tensorflow_after_train": False, "tensorflow_after_seed": False,
        "same_draws": True}, out.stderr[-3000:]
    assert (tmp_path / "run" / "model.keras").is_file()
    assert (tmp_path / "run" / "best.keras").is_file()


# Two runs on an image folder in one JAX process: the first seeds before TensorFlow is loaded
# (cnnbp's seeding skips its seed; tf.data then imports it), the second after (Keras's seeding,
# TensorFlow's global seed set). Prints whether their histories and final weights are equal.
STREAM_CHILD = r"""
import json, sys
import numpy as np
from cnnbp.cli import main
folder, out = sys.argv[1], sys.argv[2]
sets = ["input=[12, 12, 3]", "classes=2", "class_names=[a, b]", "training.batch_size=8",
        "training.epochs=2", "training.augment.translate=0.2"]
loaded_before = []
for name in ("a", "b"):
    loaded_before.append("tensorflow" in sys.modules)
    code = main(["train", "digits", "--data", folder, "-o", f"{out}/{name}", "--quiet",
                 *[a for s in sets for a in ("--set", s)]])
    assert code == 0, code
history = [open(f"{out}/{n}/history.csv").read().splitlines() for n in "ab"]
strip = lambda rows: [r.rsplit(",", 1)[0] for r in rows]  # all but the seconds
import keras
weights = [keras.saving.load_model(f"{out}/{n}/model.keras").get_weights() for n in "ab"]
print(json.dumps({"loaded_before": loaded_before,
                  "same_history": strip(history[0]) == strip(history[1]),
                  "same_weights": all(np.array_equal(a, b) for a, b in zip(*weights))}))
"""


def test_a_jax_run_streaming_through_tf_data_draws_the_same_without_tensorflows_seed(tmp_path):
    """On JAX cnnbp no longer sets TensorFlow's global seed before tf.data imports it: a run
    on an image folder (tf.data, augmented) trains exactly as one seeded with it, because
    the pipeline draws from its own graph and op seeds."""
    import json
    import os
    from pathlib import Path

    from PIL import Image
    pytest.importorskip("jax")
    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    for k, colour in (("a", 200), ("b", 40)):
        (tmp_path / "pics" / k).mkdir(parents=True)
        for i in range(16):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            pixels[..., 0] = colour
            Image.fromarray(pixels).save(tmp_path / "pics" / k / f"{i}.png")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", STREAM_CHILD, str(tmp_path / "pics"),
                          str(tmp_path)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env={**os.environ, "KERAS_BACKEND": "jax",
                                            "PYTHONPATH": str(root.parent)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "loaded_before": [False, True], "same_history": True, "same_weights": True}
