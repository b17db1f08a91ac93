"""Export VGG-16 (138M parameters, 553 MB float32) with `cnnbp export`; time and peak memory.

The export runs as a child process; a watchdog samples its resident memory every 0.2 s and
kills it above the limit (default 14 GiB) so the machine never reaches an out-of-memory kill.
Baseline from issue 4 (same machine kind): plain tf2onnx with the default upb protobuf backend
was killed at 24 GB; with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python it took ~103 s, 11.6 GB.
Usage: python bench/export_vgg16.py [limit_gib] [--baseline]
(--baseline also runs plain tf2onnx, weights captured as constants, under the same watchdog)
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_gib(pid: int) -> float:
    total = 0
    for p in [pid] + [int(c) for c in Path(f"/proc/{pid}/task").glob("*")
                      for c in (Path(f"/proc/{pid}/task/{c.name}/children").read_text().split()
                                if Path(f"/proc/{pid}/task/{c.name}/children").exists() else [])]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / (1 << 20)


BASELINE = """
import sys
sys.path.insert(0, {root!r})
from cnnbp.builder.tf_env import import_tensorflow
tf = import_tensorflow()
import keras, tf2onnx
m = keras.models.load_model({model!r})
spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="input"),)
serve = tf.function(lambda x: {{"probabilities": m(x, training=False)}}, input_signature=spec)
proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=17)
print("plain tf2onnx: converted", proto.ByteSize(), "bytes")
"""


def watch(cmd, env, limit: float) -> tuple[float, float, str, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak, killed = 0.0, False
    while proc.poll() is None:
        peak = max(peak, rss_gib(proc.pid))
        if peak > limit:
            proc.kill()
            killed = True
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    status = f"KILLED by the watchdog above {limit} GiB" if killed else f"exit {proc.returncode}"
    last = (out or err).strip().splitlines()
    return time.perf_counter() - start, peak, status, last[-1] if last else ""


def main(limit: float = 14.0, baseline: bool = False) -> None:
    work = Path(tempfile.mkdtemp())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    build = subprocess.run([sys.executable, str(ROOT / "cli.py"), "build", "vgg16", "-o",
                            str(work / "vgg16.keras")], capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stderr
    cmd = [sys.executable, str(ROOT / "cli.py"), "export", str(work / "vgg16.keras"), "-o",
           str(work / "bundle"), "--no-variants", "--max-batch", "2"]
    seconds, peak, status, last = watch(cmd, env, limit)
    print(f"cnnbp export vgg16: {seconds:.1f} s, peak RSS {peak:.2f} GiB, {status}")
    print(f"  {last}")
    if baseline:
        code = BASELINE.format(root=str(ROOT), model=str(work / "vgg16.keras"))
        seconds, peak, status, last = watch([sys.executable, "-c", code], env, limit)
        print(f"plain tf2onnx from_function (captured weights): {seconds:.1f} s, peak RSS "
              f"{peak:.2f} GiB, {status}")
        print(f"  {last}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--baseline"]
    main(float(args[0]) if args else 14.0, "--baseline" in sys.argv)
