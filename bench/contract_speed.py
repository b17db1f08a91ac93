"""Export time and server start-up: today's main against the main before the typed contract.

Before issue 8, export re-loaded the run's whole data source to get held-out and calibration
rows (for an image folder: every image decoded again); now it reads the run's ``samples.npz``.
Serving now validates each model's preprocessing record on load. Both sides run as separate
processes from their own checkout (the old one from a git worktree of ``--old``), on the same
image-folder run, alternately, and the medians are compared.

Usage: python bench/contract_speed.py [repeats] [--images N] [--size HxW] [--old COMMIT]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
NET = "INPUT(32x32x3)-CONV(8,3,pad=1)-RELU-POOL-CONV(16,3,pad=1)-RELU-POOL-FC(10)-SOFTMAX"
OLD = "d0d8bd1"  # main before the contract layer


def make_folder(root: Path, images: int, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((height, width, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)


def cli(checkout: Path, *args) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(checkout / "cli.py"), *args], cwd=checkout, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def start_up(checkout: Path, bundles: Path, port: int, *extra: str) -> float:
    """Seconds from spawning `cnnbp serve` to its first 200 on /v2/health/ready."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(checkout / "cli.py"), "serve", str(bundles),
                             "--port", str(port), *extra], cwd=checkout,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                    return time.perf_counter() - started
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{checkout}: serve exited with {proc.returncode}") from None
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repeats", nargs="?", type=int, default=3)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--size", default="48x64", help="HxW of the generated JPEGs")
    ap.add_argument("--old", default=OLD)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old),
                        args.old], check=True)
        try:
            sides = {"old": old, "new": ROOT}
            height, width = map(int, args.size.split("x"))
            make_folder(tmp / "photos", args.images, height, width)
            for name, checkout in sides.items():  # one run each, in that side's own format
                cli(checkout, "train", "-e", NET, "--data", str(tmp / "photos"), "--epochs", "1",
                    "--quiet", "-o", str(tmp / name / "run"))
            export = {name: [] for name in sides}
            serve = {name: [] for name in sides}
            for i in range(args.repeats):
                for name, checkout in sides.items():
                    bundles = tmp / name / f"bundles{i}"  # a new folder: no --force in the old CLI
                    export[name].append(cli(checkout, "export", str(tmp / name / "run"), "-o",
                                            str(bundles / "m"), "--no-variants"))
                    # today's server also opens gRPC (the old one had none): a port of its own
                    extra = ("--grpc-port", str(18800 + i)) if name == "new" else ()
                    serve[name].append(start_up(checkout, bundles, 18700 + i, *extra))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False)
    print(f"{args.images} JPEG images {args.size} -> 32x32x3 net, {args.repeats} alternating "
          "runs each")
    for what, times in (("export --no-variants", export), ("serve start-up", serve)):
        o, n = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"{what}: before {o:.2f} s {[round(t, 2) for t in times['old']]}, "
              f"now {n:.2f} s {[round(t, 2) for t in times['new']]}, ratio {o / n:.2f}x")


if __name__ == "__main__":
    main()
