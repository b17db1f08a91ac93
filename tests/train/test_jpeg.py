"""TensorFlow's JPEG decoder for JPEGs at the input size (train.jpeg): Pillow's pixels exactly,
every other file to Pillow, and a file only TensorFlow's decoder rejects still named."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from cnnbp.contract.errors import DataError
from cnnbp.contract.preprocessing import image_bytes

from .test_stream import net, pipelines, rows

SHAPE = (12, 12, 3)


def jpeg(pixels, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", **kw)
    return buf.getvalue()


def noise(seed, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def kinds():
    """(name, bytes, fast?) files a folder may hold, for a 12x12x3 net."""
    cmyk = io.BytesIO()
    Image.fromarray(noise(4)).convert("CMYK").save(cmyk, "JPEG")
    plain = jpeg(noise(0), quality=90)
    return [("420.jpg", plain, True),
            ("444.jpg", jpeg(noise(1), quality=95, subsampling=0), True),
            ("progressive.jpg", jpeg(noise(2), progressive=True), True),
            ("gray.jpg", jpeg(noise(3, (12, 12))), False),          # 1 component, 3 channels
            ("cmyk.jpg", cmyk.getvalue(), False),
            ("large.jpg", jpeg(noise(5, (20, 14, 3))), False),        # needs a resize
            ("truncated.jpg", plain[:-40], False),                    # no end marker
            ("png.jpg", png_bytes(noise(6)), False),
            ("empty.jpg", b"", False), ("one.jpg", b"\xd9", False)]


def png_bytes(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_the_fast_path_takes_only_whole_jpegs_at_the_input_size():
    import tensorflow as tf

    from cnnbp.train.jpeg import split_fast
    named = kinds()
    picked = split_fast(tf.constant([b for _, b, _ in named]), SHAPE).numpy()
    assert {n: bool(p) for (n, _, _), p in zip(named, picked)} == {n: f for n, _, f in named}


@pytest.mark.parametrize("channels", [3, 1])
def test_tensorflow_decodes_exactly_what_pillow_does(channels):
    import tensorflow as tf

    from cnnbp.train.jpeg import decode_fast
    shape = (12, 12, channels)
    files = [jpeg(noise(i, shape if channels == 3 else shape[:2]), quality=q, **kw)
             for i, (q, kw) in enumerate([(90, {}), (95, {"subsampling": 0}), (75, {}),
                                          (90, {"progressive": True}), (50, {"optimize": True})])]
    fast = decode_fast(tf.constant(files), shape).numpy()
    for got, data in zip(fast, files):
        for resize in ("stretch", "center_crop", "letterbox"):
            want = image_bytes(Image.open(io.BytesIO(data)), shape, resize)
            np.testing.assert_array_equal(got, want)


def at_size_folder(root, per_class=6):
    for k, name in enumerate("abc"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            base = np.zeros(SHAPE) + [[[200 if j == k else 30 for j in range(3)]]]
            pixels = np.clip(base + np.random.default_rng(10 * k + i).normal(0, 25, SHAPE),
                             0, 255).astype("uint8")
            (root / name / f"{i}.jpg").write_bytes(jpeg(pixels))
    return root


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_a_folder_at_the_input_size_trains_on_what_serving_sees(tmp_path, resize):
    root = at_size_folder(tmp_path / "d")
    for k, name in enumerate("abc"):  # one file per class that needs a resize: Pillow's
        (root / name / "odd.jpg").write_bytes(jpeg(noise(50 + k, (20, 14, 3))))
    data, prep, p, _ = pipelines(root, "training.cache=none", "training.validation_split=0",
                                 f"training.resize={resize}")
    before = p.bad.decoded
    x, y = rows(p.train)
    odd = sum(f.endswith("odd.jpg") for f in data.train_files)
    assert odd and p.bad.decoded - before == odd  # only the odd files went through Pillow
    expected = [prep.from_image_bytes(open(f, "rb").read())[0] for f in data.train_files]
    for row, label in zip(x, y):  # each row is one file's served input, with that file's label
        gap = [np.abs(row - e).max() for e in expected]
        assert min(gap) < 1e-5 and data.train_labels[int(np.argmin(gap))] == label
    assert sorted(y.tolist()) == sorted(data.train_labels.tolist())


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_the_cache_keeps_what_the_graph_decoded(tmp_path, cache):
    root = at_size_folder(tmp_path / "d")
    data, _, p, _ = pipelines(root, f"training.cache={cache}", "training.validation_split=0")
    first = rows(p.train)[0]
    for f in data.train_files:  # a second epoch that decoded again would fail on these
        open(f, "wb").write(b"\xff\xd8\xff gone")
    second = rows(p.train)[0]
    order = lambda x: x[np.lexsort(x.reshape(len(x), -1).T)]
    np.testing.assert_array_equal(order(first), order(second))
    p.close()


def test_a_jpeg_only_tensorflow_rejects_is_named(tmp_path):
    """Whole-looking (start and end markers) but with a broken header: the graph stops, and
    the scan finds the file."""
    from cnnbp.train.fit import train
    root = at_size_folder(tmp_path / "d", per_class=8)
    good = (root / "b" / "3.jpg").read_bytes()
    broken = good[:2] + b"\xff\xc0\x00\x02" + b"\xaa" * 60 + good[-2:]
    (root / "b" / "3.jpg").write_bytes(broken)
    with pytest.raises(DataError, match=r"b/3\.jpg is not a readable image \(ValueError: "
                                        r"TensorFlow's JPEG decoder: Invalid JPEG data"):
        train(net("training.stats_sample=1000"), str(root), tmp_path / "run", quiet=True)


@pytest.mark.parametrize("skip", [False, True])
def test_a_file_gone_after_the_listing_is_named_or_skipped(tmp_path, skip):
    from cnnbp.train.images import raise_for
    root = at_size_folder(tmp_path / "d")
    data, _, p, _ = pipelines(root, "training.cache=none", "training.validation_split=0",
                              f"training.skip_bad_images={str(skip).lower()}")
    gone = data.train_files[0]
    os.unlink(gone)
    if skip:
        x, _ = rows(p.train)
        assert len(x) == len(data.train_files) - 1 and list(p.bad.files) == [gone]
    else:
        with pytest.raises(DataError, match=rf"{gone.rsplit('/', 1)[-1]} cannot be read"):
            with raise_for(p.bad):
                rows(p.train)
