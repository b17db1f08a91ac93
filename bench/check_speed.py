"""`cnnbp check blueprints/vgg16.yaml` vs building VGG-16 in Keras to print its summary.

Both are whole processes (imports included), timed alternately in one run; prints medians and
the ratio. Usage: python bench/check_speed.py [repeats]
"""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - start


def main(repeats: int = 5) -> None:
    check = [sys.executable, "cli.py", "check", "blueprints/vgg16.yaml"]
    keras_summary = [sys.executable, "bench/handwritten_vgg16.py"]
    times = {"check": [], "keras": []}
    for _ in range(repeats):
        times["check"].append(wall(check))
        times["keras"].append(wall(keras_summary))
    c, k = statistics.median(times["check"]), statistics.median(times["keras"])
    runs = {key: ", ".join(f"{t:.3f}" for t in values) for key, values in times.items()}
    print(f"cnnbp check vgg16           median {c:.3f} s  (runs: {runs['check']})")
    print(f"Keras VGG-16 build+summary  median {k:.3f} s  (runs: {runs['keras']})")
    print(f"ratio: check is {k / c:.1f}x faster (target >= 20x, check well under 1 s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
