"""Data sources: shapes, splits, files on disk, and clear errors — nothing downloads."""
import time

import numpy as np
import pytest
from PIL import Image

from cnnbp.contract.errors import DataError
from cnnbp.train.sources import check_against, load_source
from tests.conftest import free_port


def test_digits_is_the_bundled_set_split_80_20():
    d = load_source("digits")
    assert d.x_train.shape == (1437, 8, 8, 1) and d.x_test.shape == (360, 8, 8, 1)
    assert len(d.x_train) + len(d.x_test) == 1797
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0 and d.scale == 16.0
    assert sorted(set(d.y_test.tolist())) == list(range(10))


def test_mnist1d_is_generated_locally_with_the_published_sizes():
    state = np.random.get_state()[1].copy()
    d = load_source("mnist1d")
    assert d.x_train.shape == (4000, 40, 1) and d.x_test.shape == (1000, 40, 1)
    assert np.array_equal(np.random.get_state()[1], state), "global NumPy RNG was disturbed"


def test_npz_adds_the_channel_axis(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.random((20, 6, 6)), y_train=np.arange(20) % 3,
             x_test=rng.random((5, 6, 6)), y_test=np.arange(5) % 3, class_names=["a", "b", "c"])
    d = load_source(str(path))
    assert d.x_train.shape == (20, 6, 6, 1) and d.class_names == ("a", "b", "c")


def test_npz_missing_keys(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4)), y_train=np.zeros(2))
    with pytest.raises(DataError, match="lacks x_test, y_test"):
        load_source(str(path))


def write_images(root, classes, per_class, size=(10, 12)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((size[1], size[0], 3)) * 255).astype("uint8")
            Image.fromarray(pixels).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_image_folder_is_resized_and_split(tmp_path):
    write_images(tmp_path, ["cat", "dog"], 10)
    d = load_source(str(tmp_path), (8, 8, 1))
    assert len(d.train_files) == 16 and len(d.test_files) == 4  # listed, not decoded
    assert sorted(d.test_labels.tolist()) == [0, 0, 1, 1]  # stratified
    assert not set(d.train_files) & set(d.test_files)
    assert d.class_names == ("cat", "dog") and d.scale == 255.0
    assert load_source(str(tmp_path), (8, 8, 1)).test_files == d.test_files  # seeded


def test_image_folder_with_train_and_test(tmp_path):
    write_images(tmp_path / "train", ["a", "b", "c"], 4)
    write_images(tmp_path / "test", ["a", "b", "c"], 2)
    d = load_source(str(tmp_path), (8, 8, 3))
    assert len(d.train_files) == 12 and len(d.test_files) == 6
    assert all("/test/" in f for f in d.test_files)


def test_an_empty_class_folder_is_named(tmp_path):
    write_images(tmp_path, ["a", "b"], 2)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder \S+/c has no images"):
        load_source(str(tmp_path), (8, 8, 3))


def test_other_files_are_ignored_and_counted(tmp_path):
    write_images(tmp_path, ["a", "b"], 3)
    (tmp_path / "a" / "README.txt").write_text("x")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"x")
    d = load_source(str(tmp_path), (8, 8, 3))
    assert len(d.train_files) + len(d.test_files) == 6 and "1 other file(s) ignored" in d.source


def test_unknown_source():
    with pytest.raises(DataError, match="'nope' is not a data source: use digits, mnist1d"):
        load_source("nope")


def test_online_dataset_fails_fast_offline(tmp_path, monkeypatch):
    port = free_port()  # a loopback port with nothing listening
    monkeypatch.setenv("CNNBP_DATASET_HOST", f"127.0.0.1:{port}")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(DataError, match="cifar10 must be downloaded from 127.0.0.1"):
        load_source("cifar10")
    assert time.perf_counter() - started < 5


def test_shape_and_class_checks_name_the_fix():
    d = load_source("digits")
    with pytest.raises(DataError, match=r"samples are 8x8x1 but the blueprint's input is "
                                             r"32x32x3.*--set input=\[8, 8, 1\]"):
        check_against(d, (32, 32, 3), 10)
    with pytest.raises(DataError, match="has 10 classes but the blueprint has classes: 5"):
        check_against(d, (8, 8, 1), 5)


def test_one_hot_labels_are_read_as_classes(tmp_path):
    y = np.array([0, 2, 1, 2, 0, 1])
    np.savez(tmp_path / "d.npz", x_train=np.zeros((6, 4, 4), "float32"), y_train=np.eye(3)[y],
             x_test=np.zeros((2, 4, 4), "float32"), y_test=np.eye(3)[[1, 0]])
    d = load_source(str(tmp_path / "d.npz"))
    assert d.y_train.tolist() == y.tolist() and d.y_test.tolist() == [1, 0]
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((6, 4, 4), "float32"),
             y_train=np.full((6, 3), 0.5), x_test=np.zeros((2, 4, 4), "float32"),
             y_test=np.zeros(2))
    with pytest.raises(DataError, match=r"y_train has shape \[6, 3\]: neither class indices"):
        load_source(str(tmp_path / "bad.npz"))


def test_a_npz_of_x_and_y_is_split_like_a_folder(tmp_path):
    y = np.repeat(np.arange(4), 10)
    np.savez(tmp_path / "xy.npz", x=np.zeros((40, 6, 6), "uint8"), y=y)
    d = load_source(str(tmp_path / "xy.npz"))
    assert len(d.x_train) == 32 and len(d.x_test) == 8
    assert sorted(d.y_test.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]  # stratified
    assert "split 80/20" in d.source


def test_channels_first_samples_get_the_transpose_to_make(tmp_path):
    np.savez(tmp_path / "cf.npz", x_train=np.zeros((4, 3, 8, 8), "float32"), y_train=np.zeros(4),
             x_test=np.zeros((2, 3, 8, 8), "float32"), y_test=np.zeros(2))
    d = load_source(str(tmp_path / "cf.npz"))
    with pytest.raises(DataError, match=r"looks channels-first .* x.transpose\(0, 2, 3, 1\)"):
        check_against(d, (8, 8, 3), 1)


def test_every_format_pillow_reads_is_listed_and_decodes(tmp_path):
    from cnnbp.contract.preprocessing import image_pixels
    formats = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "webp": "WEBP", "gif": "GIF",
               "tiff": "TIFF"}
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for suffix, fmt in formats.items():
            Image.new("RGB", (10, 10), (200, 40, 40)).save(tmp_path / cls / f"x.{suffix}", fmt)
    d = load_source(str(tmp_path), (8, 8, 3))
    files = d.train_files + d.test_files
    assert sorted(p.rsplit(".", 1)[1] for p in files) == sorted(list(formats) * 2)
    for f in files:
        with Image.open(f) as im:
            assert image_pixels(im, (8, 8, 3))[0, 0, 0] > 150  # red, whatever the format
