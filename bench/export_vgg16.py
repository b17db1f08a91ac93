"""Export VGG-16 (138M parameters, 553 MB float32) with `cnnbp export`; time and peak memory.

The export runs as a child process; a watchdog samples its resident memory every 0.2 s and
kills it above the limit (default 14 GiB) so the machine never reaches an out-of-memory kill.
Baseline from issue 4 (same machine kind): plain tf2onnx with the default upb protobuf backend
was killed at 24 GB; with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python it took ~103 s, 11.6 GB.
Usage: python bench/export_vgg16.py [limit_gib]
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


def main(limit: float = 14.0) -> None:
    work = Path(tempfile.mkdtemp())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    build = subprocess.run([sys.executable, str(ROOT / "cli.py"), "build", "vgg16", "-o",
                            str(work / "vgg16.keras")], capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stderr
    cmd = [sys.executable, str(ROOT / "cli.py"), "export", str(work / "vgg16.keras"), "-o",
           str(work / "bundle"), "--no-variants", "--max-batch", "2"]
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
    seconds = time.perf_counter() - start
    status = f"KILLED by the watchdog above {limit} GiB" if killed else f"exit {proc.returncode}"
    print(f"cnnbp export vgg16: {seconds:.1f} s, peak RSS {peak:.2f} GiB, {status}")
    print((out or err).strip().splitlines()[-1] if (out or err).strip() else "")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 14.0)
