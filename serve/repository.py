"""Bundles on disk → loaded models: one bundle, a folder of bundles, or a Triton repository."""
from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from cnnbp.contract.bundle import served
from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.preprocessing import ImageTooLarge, Preprocessing

from .protocol import DTYPES, BadRequest, TensorSpec, short_repr

log = logging.getLogger("cnnbp.serve")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
IMAGE_FORMATS = ("PNG", "JPEG")  # what the README promises; PIL's other parsers stay unused
MAX_IMAGE_PIXELS = 25_000_000  # a 6000x4000 photo; a decoded RGB frame of 75 MB at most


def _too_many_pixels(size: str, limit: int) -> BadRequest:
    return BadRequest(f"image of {size} pixels exceeds the limit of {limit:,} pixels "
                      "(--max-image-pixels): send a smaller image", 413)


def cuda_device_present() -> bool:
    """True when a CUDA driver and device exist (checked without ONNX Runtime's error dump)."""
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    import ctypes
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def make_session(path: Path):
    """An ONNX Runtime session on CUDA when usable, else CPU; returns (session, provider)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if "CUDAExecutionProvider" in ort.get_available_providers() and cuda_device_present():
        try:
            s = ort.InferenceSession(str(path), options,
                                     providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            if s.get_providers()[0] == "CUDAExecutionProvider":
                return s, "CUDAExecutionProvider"
        except Exception as exc:  # a broken CUDA install: say so once, serve on CPU
            log.warning("CUDA provider unusable (%s); using CPU", exc)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]), \
        "CPUExecutionProvider"


@dataclass
class ServedModel:
    """One loaded model: its ONNX Runtime session, preprocessing and labels."""

    name: str
    path: Path
    session: object
    provider: str
    input_shape: tuple[int, ...]
    prep: Preprocessing
    batcher: object = field(default=None, repr=False)
    call_seconds: float = 0.0  # median time of one batch-1 call, measured at load
    # the graph's input: "input" (model.onnx, normalised) or "pixels" (pixels.onnx, as a Triton
    # repository holds it: the normalisation is in the graph, so only raw tensors can be fed);
    # the protocol calls any other name of a foreign model's input "input"
    feed: str = "input"
    output: str | None = None  # the scores' output name, when the graph has several outputs

    @property
    def raw(self) -> bool:
        """Whether the graph takes raw values (pixels.onnx, as in a Triton repository)."""
        return self.feed == "pixels"

    def measure(self) -> None:
        """Time batch-1 calls (the median after a warm-up) into ``call_seconds``: the batcher
        runs a model this fast on the event loop."""
        import time
        x = np.zeros((1, *self.input_shape), DTYPES[self.inputs[0].datatype])
        times = []
        for _ in range(20):
            start = time.perf_counter()
            self.run(x)
            times.append(time.perf_counter() - start)
        self.call_seconds = float(np.median(times[5:]))

    @property
    def labels(self) -> list[str]:
        """The class names, in output order."""
        return self.prep.class_names

    def run(self, x: np.ndarray) -> np.ndarray:
        """The scores ``[rows, classes]`` of ``x`` (blocking: an ONNX Runtime call)."""
        return self.session.run(self.output and [self.output], {self.feed: x})[0]

    @cached_property
    def inputs(self) -> tuple[TensorSpec, TensorSpec]:
        """What ``/infer`` takes, one per request: ``input``, model.onnx's normalised tensor, or
        ``pixels``, the bundle's pixels.onnx input (the source's raw values, UINT8 or FP32 as
        ``Preprocessing.raw_dtype`` says), normalised here as training normalised it."""
        kind = {"uint8": "UINT8", "float32": "FP32"}[self.prep.raw_dtype]
        pixels = TensorSpec("pixels", kind, self.input_shape,
                            "8-bit pixels" if self.prep.raw_max == 255 else "raw values")
        if self.raw:
            return (pixels,)
        return TensorSpec("input", "FP32", self.input_shape, "normalised"), pixels

    @cached_property
    def _gain_shift(self) -> tuple[np.ndarray, np.ndarray]:
        # training's own fold of the preprocessing (train/pipeline.py): one multiply and one add
        return self.prep.gain_shift(1.0)  # per raw unit, as pixels.onnx's graph

    def model_input(self, name: str, x: np.ndarray) -> np.ndarray:
        """The tensor of input ``name`` (one of ``inputs``) → model.onnx's input."""
        if name == "input" or self.raw:
            return x
        gain, shift = self._gain_shift
        return x.astype("float32") * gain + shift

    def metadata(self) -> dict:
        """The V2 model metadata (GET /v2/models/NAME)."""
        return {"name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx",
                # either input, not both: "input" first, as clients that read inputs[0] expect
                "inputs": [{"name": s.name, "datatype": s.datatype, "shape": [-1, *s.shape]}
                           for s in self.inputs],
                "outputs": [{"name": "probabilities", "datatype": "FP32",
                             "shape": [-1, len(self.labels)]}],
                # an extension field: the class of each output column, and how inputs are made
                "parameters": {"class_names": self.labels, "preprocess": self.prep.to_json(),
                               "inputs": "send one of " + " or ".join(
                                   s.describe() for s in self.inputs)}}

    def from_image(self, data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
        """PNG/JPEG bytes → one model input, decoded, resized and scaled as in training.

        The size in the header is checked before any pixel is decoded (413 over
        ``max_pixels``). Blocking: the server runs it off the event loop.
        """
        from PIL import Image, UnidentifiedImageError
        if not self.prep.takes_images:
            kind = "1-D signals" if self.prep.domain == "signal" else "tensors, not images"
            how = 'send JSON {"signal": [...]}' if self.prep.domain == "signal" else \
                "send the normalized tensor to /v2/models/NAME/infer"
            raise BadRequest(f"model {self.name!r} takes {kind}: {how}")
        try:
            return self._pixels(data, max_pixels) if self.raw else \
                self.prep.from_image_bytes(data, max_pixels, IMAGE_FORMATS)
        except ImageTooLarge as exc:
            raise _too_many_pixels(str(exc), max_pixels) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels("over the limit", max_pixels) from None
        except UnidentifiedImageError:  # its text holds an object address: not for clients
            raise BadRequest("cannot decode the image: the body is not a PNG or JPEG file") \
                from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL's corrupt-data errors
            raise BadRequest(f"cannot decode the image: corrupt or truncated PNG/JPEG ({exc})") \
                from None
        except Exception as exc:  # any other failure inside a decoder is still bad data
            log.debug("image decoder failed", exc_info=exc)
            raise BadRequest("cannot decode the image: corrupt PNG/JPEG data") from None

    def _pixels(self, data: bytes, max_pixels: int) -> np.ndarray:
        """Image bytes → ``(1, H, W, C)`` raw values in the raw dtype, decoded and resized as in
        training (``Preprocessing.raw_input``: digits' levels are rounded)."""
        from PIL import Image
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
            if im.width * im.height > max_pixels:
                raise ImageTooLarge(f"{im.width}x{im.height}")
            return self.prep.raw_input(self.prep.pixels(im))[None]

    def from_signal(self, values) -> np.ndarray:
        """A raw 1-D signal (list of numbers, or of channel lists) → one normalized sample."""
        if len(self.input_shape) != 2:
            raise BadRequest(f"model {self.name!r} takes images, not 1-D signals: send a PNG or "
                             "JPEG body")
        n = self.input_shape[0]
        if not isinstance(values, list) or len(values) != n:  # before NumPy copies a huge list
            got = f"{len(values)} values" if isinstance(values, list) else short_repr(values)
            raise BadRequest(f"signal must be a list of {n} numbers (or of {n} lists of "
                             f"{self.input_shape[-1]} channel values) for model {self.name!r}; "
                             f"got {got}")
        try:
            x = np.asarray(values, dtype="float32")
        except (ValueError, TypeError, OverflowError):
            raise BadRequest("signal must be a list of numbers") from None
        if x.ndim == 1:
            x = x[:, None]
        if x.shape != tuple(self.input_shape):
            raise BadRequest(f"signal has shape {list(x.shape)}; model {self.name!r} takes "
                             f"{list(self.input_shape)}")
        if not np.isfinite(x).all():
            raise BadRequest("signal contains NaN or Inf")
        return x[None] if self.raw else self.prep.apply(x)[None]


def discover(root: str | Path) -> dict[str, Path]:
    """Model name → model.onnx for every bundle under ``root``."""
    root = Path(root)
    if (root / "model.onnx").is_file():
        found = {root.resolve().name: root / "model.onnx"}
    else:
        found = {}
        for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            if (d / "model.onnx").is_file():
                found[d.name] = d / "model.onnx"
            elif (d / "config.pbtxt").is_file():  # Triton layout: the highest version wins
                versions = sorted((v for v in d.iterdir() if v.name.isdigit()
                                   and (v / "model.onnx").is_file()), key=lambda v: int(v.name))
                if versions:
                    found[d.name] = versions[-1] / "model.onnx"
    if not found:
        raise ArtifactError(root, "holds no bundle (model.onnx) and no Triton model repository "
                                  "(<name>/config.pbtxt, <name>/1/model.onnx)")
    bad = [n for n in found if not NAME.match(n)]
    if bad:
        raise ArtifactError(root, f"model names (folder names) must be letters, digits, '_', '.', "
                                  f"'-': {bad}")
    return found


def load(root: str | Path) -> dict[str, ServedModel]:
    """Every model under ``root`` (a bundle, a folder of bundles or a Triton repository),
    loaded and timed, by name."""
    models = {}
    for name, path in discover(root).items():
        import onnx
        proto = onnx.load(str(path), load_external_data=False)
        meta = {p.key: p.value for p in proto.metadata_props}
        session, provider = make_session(path)
        feed = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        output = "probabilities" if "probabilities" in outputs else outputs[0]
        shape = tuple(int(d) for d in session.get_inputs()[0].shape[1:])
        classes = int(next(o for o in session.get_outputs() if o.name == output).shape[-1])
        prep = served(meta, path, list(shape), classes)
        models[name] = ServedModel(name, path, session, provider, shape, prep,
                                   feed=feed, output=output)
        models[name].measure()
        log.info("serving %s from %s on %s", name, path,
                 "the GPU (CUDAExecutionProvider)" if provider.startswith("CUDA")
                 else "the CPU (CPUExecutionProvider; no usable CUDA device)")
    return models
