"""Image folders as a stream: cache modes, bad data, the validation split, the statistics, and
training's pixels against serving's."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from cnnbp.builder import load
from cnnbp.contract.errors import DataError
from cnnbp.contract.preprocessing import Preprocessing, image_pixels
from cnnbp.train.images import BadImages
from cnnbp.train.sources import load_source

SHAPE = (12, 12, 3)


def net(*overrides):
    return load("digits", ["input=[12, 12, 3]", "classes=3", "class_names=[a, b, c]",
                           "training.epochs=1", "training.augment.translate=0",
                           "training.batch_size=8", *overrides])


def folder(root, per_class=8, size=(20, 14)):
    """Three classes of small JPEG/PNG images, each class a distinct colour plus noise."""
    rng = np.random.default_rng(1)
    for k, name in enumerate("abc"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            base = np.zeros((size[1], size[0], 3)) + [[[200 if j == k else 30 for j in range(3)]]]
            pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def pipelines(root, *overrides, bad=None):
    from cnnbp.train.pipeline import make_pipelines
    from cnnbp.train.stats import fit_preprocessing
    compiled = net(*overrides)
    data = load_source(str(root), SHAPE)
    bad = bad or BadImages(compiled.network.training.skip_bad_images)
    prep, note = fit_preprocessing(data, compiled.network, bad, input_shape=list(SHAPE),
                                   domain="image", raw_max=255.0, scale=255.0,
                                   class_names=["a", "b", "c"],
                                   resize=compiled.network.training.resize)
    return data, prep, make_pipelines(data, prep, compiled.network, bad), note


def rows(ds):
    xs, ys = zip(*((x, y) for x, y in ds.as_numpy_iterator()))
    return np.concatenate(xs), np.concatenate(ys).argmax(-1)


@pytest.mark.parametrize("mode", ["memory", "disk", "none", "auto"])
def test_every_cache_mode_gives_the_same_examples_as_serving(tmp_path, mode):
    data, prep, p, _ = pipelines(folder(tmp_path / "d"), f"training.cache={mode}",
                                 "training.validation_split=0", "training.epochs=2")
    assert p.cache.startswith("memory" if mode == "auto" else mode)
    x, y = rows(p.train)
    assert x.shape == (len(data.train_files), *SHAPE)
    # Serving's preprocessing of each file, computed independently of the pipeline.
    expected = {f: prep.from_image_bytes(open(f, "rb").read())[0] for f in data.train_files}
    for row in x:  # each streamed example is one file's served input (order is shuffled)
        assert min(np.abs(row - e).max() for e in expected.values()) < 1e-5
    assert sorted(y.tolist()) == sorted(data.train_labels.tolist())
    p.close()


def test_memory_cache_decodes_once_and_none_decodes_every_epoch(tmp_path):
    root = folder(tmp_path / "d")
    for mode, decodes in (("memory", 1), ("none", 2)):
        bad = BadImages(False)
        data, _, p, _ = pipelines(root, f"training.cache={mode}", "training.validation_split=0",
                                  bad=bad)
        before = bad.decoded
        epochs = []
        for epoch in range(2):
            p.start_epoch(epoch)  # what fit's callback does as each epoch begins
            epochs.append(rows(p.train)[0])
        assert bad.decoded - before == decodes * len(data.train_files), mode
        # read back from the cache by place, each epoch in a new order, the same rows
        assert not np.array_equal(epochs[0], epochs[1]), mode
        order = lambda x: x[np.lexsort(x.reshape(len(x), -1).T)]
        np.testing.assert_array_equal(order(epochs[0]), order(epochs[1]))


def test_disk_cache_lives_in_a_temporary_folder_removed_on_close(tmp_path):
    _, _, p, _ = pipelines(folder(tmp_path / "d"), "training.cache=disk")
    rows(p.train)
    from pathlib import Path
    where = Path(p.cache_dir)
    assert any(where.iterdir())
    p.close()
    assert not where.exists()


def test_auto_falls_back_to_disk_over_the_budget():
    from cnnbp.train.cache import choose_cache
    assert choose_cache("auto", 10 << 20, 100, "/tmp") == "memory"
    assert choose_cache("auto", 200 << 20, 100, "/tmp") == "disk"
    assert choose_cache("auto", 1 << 60, 100, "/tmp") == "none"  # no disk that large
    assert choose_cache("none", 1, 100, "/tmp") == "none"
    assert choose_cache("auto", 10 << 20, 100, "/tmp", epochs=1) == "none"  # never read back
    assert choose_cache("memory", 10 << 20, 100, "/tmp", epochs=1) == "memory"  # as asked


def test_validation_split_is_stratified_and_seeded(tmp_path):
    data, _, p, _ = pipelines(folder(tmp_path / "d", per_class=10), "training.validation_split=0.2",
                              "training.cache=none")
    _, yv = rows(p.validation)
    counts = np.bincount(yv, minlength=3)  # 20% of 24 training files, by class
    assert counts.sum() == 5 and counts.min() >= 1 and counts.max() - counts.min() <= 1
    _, _, again, _ = pipelines(tmp_path / "d", "training.validation_split=0.2",
                               "training.cache=none")
    assert np.array_equal(rows(again.validation)[0], rows(p.validation)[0])


def test_statistics_come_from_a_bounded_seeded_sample(tmp_path):
    root = folder(tmp_path / "d")
    _, prep, _, note = pipelines(root, "training.stats_sample=5")
    assert "seeded sample of 5 of" in note
    _, again, _, _ = pipelines(root, "training.stats_sample=5")
    assert again.mean == prep.mean
    _, full, _, note = pipelines(root, "training.stats_sample=100000")
    assert "all" in note
    data = load_source(str(root), SHAPE)
    pixels = np.stack([image_pixels(Image.open(f), SHAPE) for f in data.train_files]) / 255.0
    pixels = pixels.astype("float64")
    np.testing.assert_allclose(full.mean, pixels.mean((0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(full.std, pixels.std((0, 1, 2)), atol=1e-6)


def bad_file(root):
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    good = io.BytesIO()
    Image.new("RGB", (30, 30), (255, 0, 0)).save(good, "PNG")
    (root / "b" / "truncated.png").write_bytes(good.getvalue()[:60])
    return root


def test_a_bad_image_stops_training_with_its_name(tmp_path):
    from cnnbp.train.fit import train
    root = bad_file(folder(tmp_path / "d"))
    with pytest.raises(DataError, match=r"(broken\.jpg|truncated\.png) is not a readable image"
                                        r".*--skip-bad-images"):
        train(net("training.stats_sample=1000"), str(root), tmp_path / "run", quiet=True)


def test_skip_bad_images_trains_and_counts_them(tmp_path):
    from cnnbp.train.fit import train
    root = bad_file(folder(tmp_path / "d"))
    m = train(net("training.skip_bad_images=true", "training.cache=memory",
                  "training.epochs=2"), str(root), tmp_path / "run", quiet=True)
    assert m.epochs == 2
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m.skipped_images == 2 and saved["skipped_images"] == 2
    assert {f.rsplit("/", 1)[-1] for f in saved["skipped_files"]} == {"broken.jpg",
                                                                         "truncated.png"}
    assert saved["cache"].startswith("memory") and "training images" in saved["normalization"]
    assert m.test_samples + m.train_samples >= 22


def test_a_resumed_run_counts_the_skipped_images_again(tmp_path):
    from cnnbp.train.fit import train
    from cnnbp.train.resume import resume
    root = bad_file(folder(tmp_path / "d"))
    first = train(net("training.skip_bad_images=true", "training.epochs=1"), str(root),
                  tmp_path / "run", quiet=True)
    again = resume(tmp_path / "run", quiet=True, epochs=2)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert first.skipped_images == again.skipped_images == saved["skipped_images"] == 2
    assert again.epochs == 2


def odd_images():
    """(name, encoded bytes, the RGB pixel it should decode to) for modes PIL opens oddly."""
    out = []

    def save(im, fmt="PNG", **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    out.append(("gray", save(Image.new("L", (9, 9), 128)), (128, 128, 128)))
    sixteen = Image.fromarray(np.full((9, 9), 65535 // 2, np.uint16))
    out.append(("16-bit", save(sixteen), (128, 128, 128)))  # scaled, not clipped to 255
    rgba = Image.new("RGBA", (9, 9), (255, 255, 255, 0))  # white but fully transparent
    out.append(("rgba", save(rgba), (0, 0, 0)))
    pal = Image.new("P", (9, 9), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    out.append(("palette", save(pal), (10, 200, 30)))
    out.append(("cmyk", save(Image.new("CMYK", (9, 9), (0, 255, 255, 0)), "JPEG", quality=100),
                (255, 0, 0)))
    return out


@pytest.mark.parametrize("name, data, rgb", odd_images(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_odd_image_modes_decode_to_the_right_colour(name, data, rgb):
    px = image_pixels(Image.open(io.BytesIO(data)), (4, 4, 3))
    np.testing.assert_allclose(px[2, 2], rgb, atol=3)


def test_a_huge_image_decodes_small_and_a_bomb_is_named(tmp_path):
    from cnnbp.train.fit import train
    root = folder(tmp_path / "d")
    Image.new("RGB", (4000, 3000), (0, 200, 0)).save(root / "b" / "huge.jpg", quality=50)
    data, prep, p, _ = pipelines(root, "training.cache=none", "training.validation_split=0")
    assert len(rows(p.train)[0]) == len(data.train_files)  # decoded via JPEG draft mode
    Image.MAX_IMAGE_PIXELS, old = 1_000_000, Image.MAX_IMAGE_PIXELS
    try:
        with pytest.raises(DataError, match=r"huge\.jpg is not a readable image "
                                            r"\(DecompressionBombError"):
            train(net("training.stats_sample=100"), str(root), tmp_path / "run", quiet=True)
    finally:
        Image.MAX_IMAGE_PIXELS = old


@pytest.mark.parametrize("resize", ["stretch", "center_crop", "letterbox"])
def test_serving_a_photo_equals_the_training_pipeline(tmp_path, resize):
    """The resize policy travels in preprocess.json and serving applies it to a photo exactly
    as the training stream did to the same file."""
    root = folder(tmp_path / "d", size=(31, 17))
    data, prep, p, _ = pipelines(root, f"training.resize={resize}", "training.cache=none")
    assert prep.resize == resize
    served = Preprocessing.model_validate_json(json.dumps(prep.to_json()))
    x, _ = rows(p.test)
    for f, row in zip(data.test_files, x):
        np.testing.assert_allclose(served.from_image_bytes(open(f, "rb").read())[0], row,
                                   atol=1e-5)


def write_shards(root, with_test: bool):
    """Images of the folder() kind as TFRecord shards of the documented feature spec."""
    import tensorflow as tf
    src = folder(root / "imgs")
    root.joinpath("classes.txt").write_text("a\nb\nc\n")
    files = sorted(src.glob("*/*"))
    parts = {"train-0.tfrecord": files[0::2], "train-1.tfrecord": files[1::2]}
    if with_test:
        parts = {"train-0.tfrecord": files[:-6], "test-0.tfrecord": files[-6:]}
    for name, chosen in parts.items():
        with tf.io.TFRecordWriter(str(root / name)) as w:
            for f in chosen:
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(
                               value=[f.read_bytes()])),
                           "label": tf.train.Feature(int64_list=tf.train.Int64List(
                               value=["abc".index(f.parent.name)]))}
                w.write(tf.train.Example(features=tf.train.Features(
                    feature=feature)).SerializeToString())
    return files


@pytest.mark.parametrize("with_test", [False, True])
def test_tfrecord_shards_stream_like_a_folder(tmp_path, with_test):
    files = write_shards(tmp_path, with_test)
    spec = str(tmp_path / "*.tfrecord")
    data = load_source(spec, SHAPE)
    assert data.class_names == ("a", "b", "c")
    assert len(data.y_train) + len(data.y_test) == len(files) == 24
    assert len(data.y_test) == (6 if with_test else 5)  # test shards, or every 5th record
    from cnnbp.train.fit import train
    m = train(net(), spec, tmp_path / "run", quiet=True)
    assert m.test_samples == len(data.y_test) and m.train_samples > 0


def test_a_file_that_is_not_a_tfrecord_is_named(tmp_path):
    (tmp_path / "x.tfrecord").write_bytes(b"garbage, not records")
    with pytest.raises(DataError, match=r"x\.tfrecord is not a TFRecord file"):
        load_source(str(tmp_path / "*.tfrecord"), SHAPE)


def test_npz_is_memory_mapped_and_trains(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.integers(0, 255, (60, 12, 12, 3), dtype=np.uint8),
             y_train=np.arange(60) % 3, x_test=rng.integers(0, 255, (9, 12, 12, 3), np.uint8),
             y_test=np.arange(9) % 3, class_names=["a", "b", "c"])
    d = load_source(str(path))
    assert isinstance(d.x_train, np.memmap) and d.raw_max == 255.0
    np.testing.assert_array_equal(d.x_train, np.load(path)["x_train"])
    from cnnbp.train.fit import train
    m = train(net(), str(path), tmp_path / "run", quiet=True)
    assert m.train_samples == 54 and m.test_samples == 9
    assert "chunked pass" in m.normalization


def test_a_folder_of_npy_files_is_memory_mapped(tmp_path):
    for k, a in {"x_train": np.zeros((6, 4, 4), "float32"), "y_train": np.arange(6) % 2,
                 "x_test": np.ones((2, 4, 4), "float32"), "y_test": np.arange(2)}.items():
        np.save(tmp_path / f"{k}.npy", a)
    d = load_source(str(tmp_path))
    assert d.x_train.shape == (6, 4, 4, 1) and isinstance(d.x_train.base, np.memmap)


def test_resize_and_cache_flags_reach_the_run(tmp_path, capsys):
    from cnnbp.cli import main
    root = folder(tmp_path / "d", size=(31, 17))
    run = tmp_path / "run"
    assert main(["train", "digits", "--data", str(root), "-o", str(run), "--quiet",
                 "--epochs", "1", "--resize", "letterbox", "--cache", "disk",
                 "--set", "input=[12, 12, 3]", "--set", "classes=3",
                 "--set", "class_names=[a, b, c]", "--set", "training.augment.translate=0"]) == 0
    assert json.loads((run / "preprocess.json").read_text())["resize"] == "letterbox"
    assert json.loads((run / "metrics.json").read_text())["cache"].startswith("disk")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--resize", "stretch"]) == 2
    assert "--resize cannot change it" in capsys.readouterr().err  # a run keeps its policy


@pytest.mark.parametrize("kind", ["resized", "at_size", "skipping"])
def test_samples_npz_rows_are_what_the_test_stream_feeds(tmp_path, kind):
    """``sample_rows`` decodes the first files itself (no tf.data): its rows must still be the
    pipeline's, row for row, on the Pillow path, on TensorFlow's JPEG path, and with a bad
    file skipped."""
    from cnnbp.train.stats import sample_rows

    from .test_jpeg import at_size_folder
    root = at_size_folder(tmp_path / "d") if kind == "at_size" else folder(tmp_path / "d")
    overrides = ["training.skip_bad_images=true"] if kind == "skipping" else []
    data, prep, p, _ = pipelines(root, "training.cache=none", *overrides)
    if kind == "skipping":
        (open(data.test_files[1], "wb")).write(b"not an image")
    compiled = net(*overrides)
    x_test, y_test, x_cal = sample_rows(data, prep, compiled.network, p.bad, 64)
    streamed, labels = rows(p.test)
    expected = len(data.test_files) - (kind == "skipping")
    assert len(x_test) == len(streamed) == expected > 1
    np.testing.assert_allclose(x_test, streamed, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y_test, labels)
    # the calibration rows: the first training files, normalised the same way
    first = np.stack([prep.from_image_bytes(open(f, "rb").read())[0]
                      for f in data.train_files[:len(x_cal)]])
    assert len(x_cal) == min(64, len(data.train_files))
    np.testing.assert_allclose(x_cal, first, rtol=0, atol=1e-5)
    p.close()
