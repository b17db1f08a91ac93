"""`cnnbp draw vgg16 -o x.svg` and `-o x.png` vs `cnnbp check vgg16` (issue 13: draw should be
about as fast as check, with no TensorFlow).

Each is a whole process (imports included), timed alternately in one run; prints medians and
the ratios to check. Usage: python bench/draw_speed.py [repeats] [blueprint]
"""
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(repeats: int = 7, blueprint: str = "vgg16") -> None:
    out = Path(tempfile.mkdtemp(prefix="cnnbp-draw-"))
    cli = [sys.executable, "cli.py"]
    cmds = {"check": cli + ["check", blueprint],
            "draw .svg": cli + ["draw", blueprint, "-o", str(out / "net.svg")],
            "draw .png": cli + ["draw", blueprint, "-o", str(out / "net.png")]}
    times = {name: [] for name in cmds}
    for _ in range(repeats):
        for name, cmd in cmds.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["check"])
    for name, runs in times.items():
        m = statistics.median(runs)
        print(f"cnnbp {name:<10} {blueprint}  median {m:.3f} s  ({m / base:.2f}x check; runs: "
              f"{', '.join(f'{t:.3f}' for t in runs)})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7,
         sys.argv[2] if len(sys.argv) > 2 else "vgg16")
