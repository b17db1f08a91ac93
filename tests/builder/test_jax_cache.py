"""JAX's persistent compilation cache: where it lives, that a second process loads what the
first compiled (and trains to the same numbers), that a user's own setting or ``off`` is
obeyed, and that a folder it cannot write is named once, not at every program."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbp.builder import jax_cache

ROOT = Path(__file__).resolve().parents[2]

# A small Keras net trained for one epoch under KERAS_BACKEND=jax, through import_keras (the
# path every cnnbp run takes); it counts JAX's own log lines for cache hits and misses.
CHILD = r"""
import json, logging, sys
counts = {"hit": 0, "miss": 0}
class Count(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Persistent compilation cache hit"):
            counts["hit"] += 1
        elif message.startswith("PERSISTENT COMPILATION CACHE MISS"):
            counts["miss"] += 1
compiler = logging.getLogger("jax._src.compiler")
compiler.setLevel(logging.DEBUG)
compiler.addHandler(Count())
from cnnbp.builder.tf_env import import_keras, set_random_seed
keras = import_keras()
import_keras()  # as a run does, several times: the cache is set up once
import jax
import numpy as np
set_random_seed(0)
x = np.random.default_rng(0).normal(size=(40, 6, 6, 1)).astype("float32")
y = keras.utils.to_categorical(np.arange(40) % 3, 3)
model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
model.compile("adam", "categorical_crossentropy")
loss = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"]
print(json.dumps({"cache": jax.config.jax_compilation_cache_dir, "loss": loss,
                  "weights": [w.tolist() for w in model.get_weights()], **counts}))
"""


def _child(tmp_path: Path, **env) -> dict:
    settings = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT.parent),
                "XDG_CACHE_HOME": str(tmp_path / "xdg"), **env}
    for name in [k for k, v in settings.items() if v is None]:
        del settings[name]
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          env=settings, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*-cache")} if folder.exists() else set()


def test_a_second_process_loads_every_program_and_trains_the_same(tmp_path):
    pytest.importorskip("jax")
    cache = tmp_path / "cache"
    cold = _child(tmp_path, CNNBP_JAX_CACHE=str(cache))
    assert cold["cache"] == str(cache) and cold["hit"] == 0 and cold["miss"] > 0, cold
    written = _entries(cache)
    assert len(written) == cold["miss"], (len(written), cold["miss"])
    warm = _child(tmp_path, CNNBP_JAX_CACHE=str(cache))
    assert (warm["hit"], warm["miss"]) == (cold["miss"], 0), warm
    assert _entries(cache) == written
    assert (warm["loss"], warm["weights"]) == (cold["loss"], cold["weights"])
    assert (cache / ".lockfile").exists()  # capped, so JAX locks it around reads and writes


def test_off_and_the_users_own_folder_are_obeyed(tmp_path):
    pytest.importorskip("jax")
    off = _child(tmp_path, CNNBP_JAX_CACHE="off")
    assert off["cache"] is None, off
    assert not (tmp_path / "xdg" / "cnnbp").exists()
    theirs = tmp_path / "theirs"
    mine = _child(tmp_path, CNNBP_JAX_CACHE=None, JAX_COMPILATION_CACHE_DIR=str(theirs),
                  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")  # else small nets go unsaved
    assert mine["cache"] == str(theirs) and len(_entries(theirs)) == mine["miss"] > 0, mine
    assert not (tmp_path / "xdg" / "cnnbp").exists()  # the default folder was not made
    assert (mine["loss"], mine["weights"]) == (off["loss"], off["weights"])


@pytest.mark.parametrize("where", ["a-file/jax", "/sys"])  # not a folder; root cannot write
def test_a_folder_that_cannot_be_written_is_named_once_and_the_run_goes_on(tmp_path, where):
    pytest.importorskip("jax")
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / where  # an absolute ``where`` stays itself
    blocked = _child(tmp_path, CNNBP_JAX_CACHE=str(folder))
    assert blocked["cache"] is None, blocked
    assert blocked["stderr"].count(f"{folder}: cannot keep the JAX compilation cache there") \
        == 1 and "CNNBP_JAX_CACHE" in blocked["stderr"], blocked["stderr"]
    assert "persistent compilation cache" not in blocked["stderr"], blocked["stderr"]


def test_the_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(jax_cache.ENV, raising=False)
    assert jax_cache.folder() == tmp_path / "home" / ".cache" / "cnnbp" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert jax_cache.folder() == tmp_path / "xdg" / "cnnbp" / "jax"
    monkeypatch.setenv(jax_cache.ENV, "~/mine")
    assert jax_cache.folder() == tmp_path / "home" / "mine"
    for off in ("off", "OFF", "0", "false", "no", "none"):
        monkeypatch.setenv(jax_cache.ENV, off)
        assert jax_cache.folder() is None
    for on in ("on", "1", "True", "yes"):  # the default folder, not one named "1" here
        monkeypatch.setenv(jax_cache.ENV, on)
        assert jax_cache.folder() == tmp_path / "xdg" / "cnnbp" / "jax"
