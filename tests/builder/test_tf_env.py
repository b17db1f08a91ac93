"""What importing the backend does to the process: glibc's malloc arenas are capped."""
import subprocess
import sys

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
