"""One preprocessing: the arithmetic, the image path, old files, and odd class names."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.preprocessing import Preprocessing, fit, image_pixels
from cnnbp.contract.records import parse

NAMES = ["ankle boot", "a,b", 'say "hi"', "café", "日本", "x'y"]


def test_fit_centres_each_channel_and_round_trips():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5, 2, (50, 4, 4)), rng.normal(-1, 0.5, (50, 4, 4))], -1)
    prep = fit(x.astype("float32"), input_shape=[4, 4, 2], domain="tensor", scale=255.0,
               class_names=NAMES)
    z = prep.normalize(x)
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), [0, 0], atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), [1, 1], rtol=1e-4)
    again = Preprocessing.model_validate_json(json.dumps(prep.to_json(), ensure_ascii=False))
    assert again == prep and again.class_names == NAMES
    np.testing.assert_allclose(again.apply(x * 255.0), z, atol=1e-5)


@pytest.mark.parametrize("raw_max, scale, pixel, model_input", [
    (255.0, 255.0, 255, (1.0 - 0.5) / 0.25),   # an image folder: raw pixels / 255
    (255.0, 1.0, 255, (255.0 - 0.5) / 0.25),   # a uint8 .npz trained in 0..255
    (16.0, 16.0, 255, (1.0 - 0.5) / 0.25),     # digits: 16 gray levels
])
def test_a_white_pixel_lands_where_training_put_full_white(raw_max, scale, pixel, model_input):
    prep = Preprocessing(input_shape=[2, 2, 1], domain="image", raw_max=raw_max, scale=scale,
                         mean=[0.5], std=[0.25], class_names=["a", "b"])
    buf = io.BytesIO()
    Image.new("L", (2, 2), pixel).save(buf, "PNG")
    np.testing.assert_allclose(prep.from_image_bytes(buf.getvalue()),
                               np.full((1, 2, 2, 1), model_input, "float32"), rtol=1e-6)


def test_resize_policies():
    im = Image.new("L", (40, 20), 0)
    im.paste(255, (10, 0, 30, 20))  # a white square in the middle of a black 2:1 frame
    stretch = image_pixels(im, (10, 10, 1), "stretch")
    crop = image_pixels(im, (10, 10, 1), "center_crop")
    box = image_pixels(im, (10, 10, 1), "letterbox")
    assert stretch[5, 0, 0] == 0 and stretch[5, 5, 0] == 255  # squeezed: black edges remain
    assert crop.min() > 200 and stretch.min() == 0  # the centre square fills the frame
    assert box[0, 5, 0] == 0 and box[5, 5, 0] == 255  # black bars above and below


def test_files_from_before_format_versions_load_as_they_were_served():
    old = {"input_shape": [8, 8, 1], "layout": "channels_last", "dtype": "float32",
           "scale": 16.0, "mean": [0.3], "std": [0.4],
           "formula": "x = (raw / scale - mean) / std, per channel", "class_names": ["0", "1"]}
    prep = parse(Preprocessing, old, "preprocess.json", "preprocessing record")
    assert prep.domain == "image" and prep.raw_max == 16.0  # pixels / 255 in fitted units
    assert parse(Preprocessing, old | {"input_shape": [40, 1]}, "p", "r").domain == "signal"


@pytest.mark.parametrize("change, says", [
    ({"mean": [0.1, 0.2]}, "mean and std need 1 values"),
    ({"std": [0.0]}, "every std must be above 0"),
    ({"input_shape": [8]}, r"is not \[L, C\] or \[H, W, C\]"),
    ({"domain": "image", "raw_max": None}, "an image domain needs"),
    ({"domain": "audio"}, "domain"),
])
def test_a_bad_record_names_its_field(change, says):
    doc = {"format_version": 1, "input_shape": [8, 8, 1], "domain": "tensor", "mean": [0.0],
           "std": [1.0], "class_names": ["a"]} | change
    with pytest.raises(ArtifactError, match=says):
        parse(Preprocessing, doc, "preprocess.json", "preprocessing record")


@pytest.mark.parametrize("domain, shape, raw_max, dtype, white", [
    ("image", [2, 2, 1], 255.0, "uint8", 255),     # image folders, uint8 arrays: 8-bit pixels
    ("image", [2, 2, 1], 16.0, "uint8", 16),       # digits: gray levels 0..16, not pixels
    ("image", [2, 2, 3], 1.0, "float32", 1.0),     # float arrays in [0, 1]
    ("signal", [4, 1], None, "float32", None),
    ("tensor", [2, 2, 5], None, "float32", None),
])
def test_raw_values_keep_their_own_dtype(domain, shape, raw_max, dtype, white):
    prep = Preprocessing(input_shape=shape, domain=domain, raw_max=raw_max, mean=[0.0] * shape[-1],
                         std=[1.0] * shape[-1], class_names=["a", "b"])
    assert prep.raw_dtype == dtype
    if white is not None:  # a decoded white pixel is full white in raw units, exactly
        raw = prep.raw_input(np.full(shape, 255, "uint8"))
        assert raw.dtype == dtype and (raw == white).all()
