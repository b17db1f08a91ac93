"""How a raw input becomes the model's input: one implementation for training, the export's
metadata, the Triton config, ``/classify`` and ``cnnbp predict``.

    raw      the source's own units: 8-bit pixels, digits' 0..16 gray levels, signal values
    fitted   raw / scale — the units the mean and std were fitted in
    model    (fitted - mean) / std, per channel (channels last), float32

An image file is decoded to pixels (0..255), resized by the ``resize`` policy, and mapped to
raw units with ``raw = pixels / 255 * raw_max``: ``raw_max`` is the raw value of full white
(255 for image folders and uint8 arrays, 16 for digits, 1 for float arrays in [0, 1]); it is
unset where images have no meaning (signals, arbitrary float tensors).

A client that sends raw values (``pixels.onnx``'s and ``/infer``'s ``pixels``) sends them in
``raw_dtype``: uint8 where they are whole numbers within 0..255, float32 otherwise.
"""
from __future__ import annotations

import io
from typing import Literal

import numpy as np
from pydantic import model_validator

from .records import Record

Domain = Literal["image", "signal", "tensor"]
Resize = Literal["stretch", "center_crop", "letterbox"]
FORMULA = "x = (raw / scale - mean) / std, per channel"


class Preprocessing(Record):
    """``preprocess.json`` of a run and a bundle, and the bundle's ``preprocess`` metadata."""

    input_shape: list[int]
    domain: Domain
    raw_max: float | None = None
    resize: Resize = "stretch"
    scale: float = 1.0
    mean: list[float]
    std: list[float]
    class_names: list[str]
    layout: Literal["channels_last"] = "channels_last"
    dtype: Literal["float32"] = "float32"
    formula: str = FORMULA

    @model_validator(mode="before")
    @classmethod
    def _from_older_files(cls, doc):
        # Runs and bundles written before format_version had no domain: images were served as
        # pixels / 255 in fitted units, which raw_max = scale reproduces exactly.
        if isinstance(doc, dict) and "domain" not in doc and "format_version" not in doc:
            shape = doc.get("input_shape")
            signal = isinstance(shape, list) and len(shape) == 2
            doc = {**doc, "domain": "signal" if signal else "image",
                   "raw_max": None if signal else doc.get("scale", 1.0)}
        return doc

    @model_validator(mode="after")
    def _consistent(self):
        channels = self.input_shape[-1] if self.input_shape else 0
        if not 2 <= len(self.input_shape) <= 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape {self.input_shape} is not [L, C] or [H, W, C]")
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean and std need {channels} values (one per channel), got "
                             f"{len(self.mean)} and {len(self.std)}")
        if self.scale <= 0 or any(s <= 0 for s in self.std):
            raise ValueError("scale and every std must be above 0")
        bad = [n for n in self.class_names if not n.strip() or "\n" in n or "\r" in n]
        if bad or not self.class_names:
            raise ValueError(f"class names must be non-empty single lines (labels.txt holds one "
                             f"a line); found {bad[:3] if bad else 'none'}")
        if self.domain == "image" and (len(self.input_shape) != 3 or channels not in (1, 3)
                                       or not self.raw_max):
            raise ValueError("an image domain needs an HxWx1 or HxWx3 input and a raw_max")
        return self

    @classmethod
    def identity(cls, input_shape, classes: int) -> "Preprocessing":
        """For a model that came without a record (a bare .keras file, a foreign ONNX model):
        inputs pass unchanged, classes are numbered, and an image is read as pixels / 255
        (the usual Keras convention for 8-bit images): its raw values are the 8-bit pixels
        (raw_max 255, uint8) and training's units are raw / 255 (scale 255)."""
        shape = [int(d) for d in input_shape]
        image = len(shape) == 3 and shape[-1] in (1, 3)
        return cls(input_shape=shape,
                   domain="signal" if len(shape) == 2 else "image" if image else "tensor",
                   raw_max=255.0 if image else None, scale=255.0 if image else 1.0,
                   mean=[0.0] * shape[-1], std=[1.0] * shape[-1],
                   class_names=[str(i) for i in range(classes)])

    # -- arithmetic ---------------------------------------------------------------------------
    def normalize(self, fitted: np.ndarray) -> np.ndarray:
        """Fitted units (raw / scale) → the model's input."""
        return ((fitted - np.float32(self.mean)) / np.float32(self.std)).astype("float32")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw units → the model's input."""
        return self.normalize(np.asarray(raw, dtype="float32") / np.float32(self.scale))

    def gain_shift(self, unit: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel float32 ``(gain, shift)`` with ``x * gain + shift`` the model's input,
        for values ``x`` that are ``unit`` raw units each (1: raw; ``scale``: already fitted;
        ``raw_max / 255``: 8-bit pixels): ``apply``'s four steps folded once, in float64, so
        a batch takes one multiply and one add. Agrees with ``apply`` to float32 rounding."""
        mean, std = np.float64(self.mean), np.float64(self.std)
        return ((unit / np.float64(self.scale) / std).astype("float32"),
                (-mean / std).astype("float32"))

    @property
    def raw_dtype(self) -> Literal["uint8", "float32"]:
        """The dtype that holds the source's raw values exactly, the one rule for every raw
        input (pixels.onnx, the Triton config, ``/infer``'s ``pixels``, the model card):
        ``uint8`` for images whose full white is a whole raw value from 2 to 255 (8-bit
        pixels, raw_max 255; digits' gray levels 0..16, raw_max 16); ``float32`` for the rest
        (float images in [0, 1], signals, tensors)."""
        m = self.raw_max
        whole = self.takes_images and m is not None and float(m).is_integer() and 2 <= m <= 255
        return "uint8" if whole else "float32"

    @property
    def raw_units(self) -> str:
        """What a raw input (``pixels.onnx``'s ``pixels``) holds, in words a client can act
        on: the metadata's ``input`` entry and the model card say the same."""
        if not self.takes_images:
            return "raw values in the training data's own units, channels last"
        h, w, c = self.input_shape
        m = self.raw_max
        what = "8-bit pixels 0..255" if m == 255 else \
            f"raw values 0..{m:g} (full white {m:g}; from an 8-bit image: " \
            f"pixels / 255 * {m:g}" + (", rounded)" if self.raw_dtype == "uint8" else ")")
        return (f"{what}, channels last ({'gray' if c == 1 else 'RGB'}), resized "
                f"({self.resize}) to {w}x{h}")

    # -- images -------------------------------------------------------------------------------
    @property
    def takes_images(self) -> bool:
        """Whether the net's input is an image (so files are decoded, resized, and ``raw_max``
        applies)."""
        return self.domain == "image"

    def pixels(self, im) -> np.ndarray:
        """A PIL image → HxWxC float32 pixels (0..255) at the net's size."""
        return image_pixels(im, self.input_shape, self.resize)

    def raw_from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """8-bit pixels (0..255) → the source's raw units (``raw_max`` for full white),
        unrounded."""
        return pixels * np.float32(self.raw_max / 255.0)

    def raw_input(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded 8-bit pixels → the raw tensor in ``raw_dtype`` (what ``pixels`` takes):
        ``pixels / 255 * raw_max``, rounded to whole levels where the raw values are uint8
        (unchanged for raw_max 255; digits' level nearest the gray)."""
        if self.raw_dtype == "float32":
            return self.raw_from_pixels(np.asarray(pixels, "float32")).astype("float32")
        raw = np.asarray(pixels, "float64") * (self.raw_max / 255.0)
        return np.clip(np.rint(raw), 0, 255).astype("uint8")

    def from_image_bytes(self, data: bytes, max_pixels: int | None = None,
                         formats: tuple[str, ...] | None = None) -> np.ndarray:
        """Encoded image bytes → one model input ``(1, H, W, C)``.

        The size in the header is checked before any pixel is decoded (``ImageTooLarge`` over
        ``max_pixels``); PIL's own errors for data it cannot read propagate.
        """
        from PIL import Image
        with Image.open(io.BytesIO(data), formats=formats) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise ImageTooLarge(f"{im.width}x{im.height}")
            return self.apply(self.raw_from_pixels(self.pixels(im)))[None]


class ImageTooLarge(ValueError):
    """An image whose header declares more pixels than the caller allows."""


def fit(x_fitted: np.ndarray, **fields) -> Preprocessing:
    """Fit the per-channel mean and std over every sample and position of ``x_fitted``."""
    axes = tuple(range(x_fitted.ndim - 1))
    std = x_fitted.std(axis=axes, dtype="float64")
    return Preprocessing(mean=[float(m) for m in x_fitted.mean(axis=axes, dtype="float64")],
                         std=[float(s) if s > 1e-8 else 1.0 for s in std], **fields)


def image_pixels(im, input_shape, resize: Resize = "stretch") -> np.ndarray:
    """A PIL image → ``input_shape`` (HxWx1 gray or HxWx3 RGB) float32 pixels, 0..255;
    ``image_bytes`` gives the same pixels as uint8."""
    return image_bytes(im, input_shape, resize).astype("float32")


def image_bytes(im, input_shape, resize: Resize = "stretch") -> np.ndarray:
    """A PIL image → ``input_shape`` (HxWx1 gray or HxWx3 RGB) uint8 pixels.

    Training's image loader and serving both call this, so a photo is decoded and resized the
    same way. Every mode PIL opens lands on 8-bit gray or RGB: 16-bit gray is scaled (/257, not
    clipped), CMYK is converted, and transparent pixels (RGBA, LA, palette transparency) are
    composited onto black, the letterbox colour. Resampling is bilinear; ``resize`` is
    ``stretch`` (the default), ``center_crop`` or ``letterbox``.
    """
    from PIL import Image, ImageOps
    h, w, c = input_shape
    mode = "L" if c == 1 else "RGB"
    # A JPEG decodes at the smallest 1/2, 1/4 or 1/8 scale that still covers the net's size
    # (a no-op for other formats): large photos decode several times faster, identically here
    # and in serving.
    im.draft(mode, (w, h))
    im = _eight_bit(im)
    if im.mode != mode:
        im = im.convert(mode)
    if resize == "center_crop":
        im = ImageOps.fit(im, (w, h), Image.Resampling.BILINEAR)
    elif resize == "letterbox":
        im = ImageOps.pad(im, (w, h), Image.Resampling.BILINEAR, color=0)
    elif im.size != (w, h):
        im = im.resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype="uint8").reshape(h, w, c)


def _eight_bit(im):
    """An opened PIL image → mode L, RGB or another mode PIL converts to them faithfully."""
    from PIL import Image
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit gray PNG, 32-bit TIFF
        wide = np.asarray(im, dtype="float64")
        top = 65535.0 if im.mode.startswith("I;16") or wide.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.rint(wide * (255.0 / top)), 0, 255).astype("uint8"), "L")
    if im.mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(im)), 0, 255).astype("uint8"), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, im).convert("RGB")
    return im
