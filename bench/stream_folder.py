"""`cnnbp train` on a JPEG folder against the hand-written Keras pipeline, side by side.

Generates a synthetic JPEG folder (10 classes, a coloured shape per class on noise), then runs,
each in its own process, alternating:

  cnnbp       cnnbp train <blueprint> --data DIR  (streamed, parallel PIL decode, cache auto)
  keras       keras.utils.image_dataset_from_directory + Rescaling + prefetch + fit, the same
              net (built from the same blueprint), optimizer, batch size and epochs; it trains
              on 72% of the folder as cnnbp does (80% train, of which 10% validation).

and reports wall time and peak RSS (ru_maxrss of each child) with their ratios, plus the input
pipelines alone (one pass, images/s) and the two decoders (PIL via tf.numpy_function, which
cnnbp uses, against tf.io.decode_image + tf.image.resize).

Usage: python bench/stream_folder.py [--images 6000] [--size 64] [--epochs 1 3] [--dir D]
       [--photo 480x360]   (JPEGs larger than the net's input: both sides resize every image)
The machine is shared: keep --images modest (3,000-8,000).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BLUEPRINT = "cifar10_small"


def generate(root: Path, images: int, size: int, seed: int = 0,
             photo: tuple[int, int] | None = None) -> None:
    """``images`` JPEGs of size×size (noise), or of ``photo`` = (width, height) with blurrier
    noise, as a camera's photos are, each with a coloured ellipse that tells the class."""
    import numpy as np
    from PIL import Image, ImageDraw
    if root.is_dir() and sum(1 for _ in root.glob("*/*.jpg")) == images:
        return
    rng = np.random.default_rng(seed)
    w, h = photo or (size, size)
    for i in range(images):
        k = i % 10
        folder = root / f"class{k}"
        folder.mkdir(parents=True, exist_ok=True)
        if photo:
            coarse = rng.integers(0, 120, (h // 8, w // 8, 3), dtype=np.uint8)
            im = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
        else:
            im = Image.fromarray(rng.integers(0, 120, (h, w, 3), dtype=np.uint8))
        d = ImageDraw.Draw(im)
        x, y = rng.integers(0, w // 2), rng.integers(0, h // 2)
        colour = tuple(int(c) for c in ((k * 37) % 256, (k * 91) % 256, (k * 53 + 128) % 256))
        d.ellipse([x, y, x + w // 2, y + h // 2], fill=colour)
        im.save(folder / f"{i:06d}.jpg", quality=90)


def warm(folder: Path) -> None:
    """Read every file once, so each side starts with the folder in the page cache (this
    machine reclaims it eagerly: a cold read made one side's epoch 11 s instead of 6.5)."""
    for path in folder.glob("*/*.jpg"):
        path.read_bytes()


def measured(cmd: list[str]) -> dict:
    """Run ``cmd`` in a child of a fresh process; wall seconds and that child's peak RSS."""
    probe = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "w = time.perf_counter() - t; "
             "print(json.dumps({'rc': r.returncode, 'wall': w, 'rss_mb': "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
             "'tail': (r.stdout + r.stderr)[-600:]}))")
    out = subprocess.run([PY, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def net(size: int, expr: str | None, *extra):
    """The compiled net both sides train: cifar10_small at the folder's size, or ``expr``."""
    from cnnbp.builder import load, load_expression
    if expr:
        return load_expression(expr, list(extra))
    return load(BLUEPRINT, [f"input=[{size}, {size}, 3]", "class_names=[]", *extra])


def handwritten(folder: str, size: int, epochs: int, batch: int, expr: str | None) -> None:
    """The pipeline a Keras user writes by hand (run in its own process)."""
    import keras

    from cnnbp.builder.keras_builder import build_model
    compiled = net(size, expr)
    t = compiled.network.training
    train, val = keras.utils.image_dataset_from_directory(
        folder, validation_split=0.28, subset="both", seed=0, image_size=(size, size),
        batch_size=batch, label_mode="categorical")
    scale = keras.layers.Rescaling(1 / 255.0)
    train = train.map(lambda x, y: (scale(x), y)).prefetch(-1)
    val = val.map(lambda x, y: (scale(x), y)).prefetch(-1)
    model = build_model(compiled.network)
    model.compile(keras.optimizers.Adam(t.learning_rate), "categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=epochs, verbose=0)


def pipelines_alone(folder: str, size: int, batch: int, expr: str | None = None) -> dict:
    """Images/s of one pass of each input pipeline, no model."""
    import keras

    from cnnbp.train.fit import prepare
    out = {}
    started = time.perf_counter()
    ds = keras.utils.image_dataset_from_directory(folder, image_size=(size, size),
                                                  batch_size=batch, seed=0).prefetch(-1)
    n = sum(int(x.shape[0]) for x, _ in ds)
    out["keras images/s"] = round(n / (time.perf_counter() - started))
    with tempfile.TemporaryDirectory() as tmp:
        compiled = net(size, expr, "training.cache=none", f"training.batch_size={batch}")
        session = prepare(compiled, folder, Path(tmp) / "run")
        started = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _ in session.pipelines.train)
        out["cnnbp images/s"] = round(n / (time.perf_counter() - started))
        session.pipelines.close()
    return out


def decoders(folder: str, size: int) -> dict:
    """PIL (the shared image_pixels) via tf.numpy_function vs TF's decoder, parallel map."""
    import tensorflow as tf

    from cnnbp.train.images import BadImages, decoder
    files = sorted(str(p) for p in Path(folder).glob("*/*.jpg"))
    out = {}
    pil = decoder((size, size, 3), "stretch", BadImages(False))
    tf_decode = lambda p: tf.image.resize(tf.io.decode_image(tf.io.read_file(p), 3,
                                                             expand_animations=False),
                                          (size, size))
    for name, fn in (("PIL numpy_function", lambda p: pil(p, p)[0]), ("tf.io.decode_image", tf_decode)):
        ds = tf.data.Dataset.from_tensor_slices(files).map(fn, num_parallel_calls=-1)
        started = time.perf_counter()
        for _ in ds.batch(256):
            pass
        out[f"{name} images/s"] = round(len(files) / (time.perf_counter() - started))
    return out


def _size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. 480x360) → (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT, e.g. 480x360") from None
    if w < 2 or h < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: each side needs 2 pixels or more")
    return w, h


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--photo", metavar="WxH", type=_size,
                    help="make the folder's JPEGs WxH (larger than the net's --size, so both "
                         "sides resize every image: the case where a cache pays)")
    ap.add_argument("--set", action="append", default=[], dest="sets",
                    help="extra --set for cnnbp train (e.g. training.deterministic=false)")
    ap.add_argument("--expr", help="train this net expression (its INPUT sizes the images) "
                                   "instead of cifar10_small")
    ap.add_argument("--cnnbp-only", action="store_true",
                    help="time cnnbp train alone (e.g. for the peak RSS of a large folder)")
    ap.add_argument("--skip-input", action="store_true", help="skip the input-only timings")
    ap.add_argument("--handwritten", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.handwritten:
        folder, size, epochs, batch, expr = args.handwritten
        return handwritten(folder, int(size), int(epochs), int(batch), expr if expr != "-" else None)
    photo = args.photo
    shape = f"{photo[0]}x{photo[1]}" if photo else f"{args.size}x{args.size}"
    folder = Path(args.dir or Path(tempfile.gettempdir()) / (
        f"cnnbp-bench-{args.images}-{shape}" if photo else f"cnnbp-bench-{args.images}-{args.size}"))
    generate(folder, args.images, args.size, photo=photo)
    mb = sum(p.stat().st_size for p in folder.glob("*/*.jpg")) / 1e6
    what = args.expr or f"{BLUEPRINT} at {args.size}x{args.size}x3"
    print(f"# {args.images} JPEGs {shape}, 10 classes, {mb:.0f} MB; "
          f"net {what}, batch {args.batch}")
    sub = None if args.skip_input else subprocess.run([PY, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                          "from bench.stream_folder import decoders, pipelines_alone; "
                          "import json; print(json.dumps({**decoders(sys.argv[2], int(sys.argv[3])), "
                          "**pipelines_alone(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), "
                          "sys.argv[5] if sys.argv[5] != '-' else None)}))",
                          str(ROOT), str(folder), str(args.size), str(args.batch),
                          args.expr or "-"],
                         capture_output=True, text=True)
    if sub is not None:
        print("input alone:", sub.stdout.strip().splitlines()[-1] if sub.stdout.strip()
              else sub.stderr[-800:])
    print("| epochs | cnnbp wall s | keras wall s | wall ratio (keras/cnnbp) | cnnbp peak RSS MB "
          "| keras peak RSS MB | RSS ratio (cnnbp/keras) |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for epochs in args.epochs:
        with tempfile.TemporaryDirectory() as tmp:
            which = ["-e", args.expr] if args.expr else [
                BLUEPRINT, "--set", f"input=[{args.size}, {args.size}, 3]", "--set",
                "class_names=[]"]
            warm(folder)
            ours = measured([str(Path(PY).parent / "cnnbp"), "train", *which, "--data",
                             str(folder), "-o", f"{tmp}/run", "--epochs", str(epochs),
                             "--batch-size", str(args.batch), "--quiet",
                             *sum((["--set", x] for x in args.sets), [])])
            metrics = Path(tmp) / "run" / "metrics.json"
            if metrics.is_file():
                m = json.loads(metrics.read_text())
                notes.append(f"{epochs} epoch(s): cnnbp fit {m['train_seconds']:.1f} s of "
                             f"{m['wall_seconds']:.1f} s in train(); cache {m.get('cache')}; "
                             f"deterministic {m.get('deterministic')}; "
                             f"test accuracy {m['test_accuracy']:.3f}")
        if args.cnnbp_only:
            print(f"| {epochs} | {ours['wall']:.1f} | – | – | {ours['rss_mb']:.0f} | – | – |"
                  + (f" failed: {ours['tail']}" if ours["rc"] else ""), flush=True)
            continue
        warm(folder)
        theirs = measured([PY, str(Path(__file__).resolve()), "--handwritten", str(folder),
                           str(args.size), str(epochs), str(args.batch), args.expr or "-"])
        for name, r in (("cnnbp", ours), ("keras", theirs)):
            if r["rc"]:
                print(f"{name} failed: {r['tail']}")
        print(f"| {epochs} | {ours['wall']:.1f} | {theirs['wall']:.1f} | "
              f"{theirs['wall'] / ours['wall']:.2f} | {ours['rss_mb']:.0f} | "
              f"{theirs['rss_mb']:.0f} | {ours['rss_mb'] / theirs['rss_mb']:.2f} |", flush=True)
    for note in notes:
        print("#", note)


if __name__ == "__main__":
    main()
