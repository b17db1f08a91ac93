"""``pixels.onnx`` → ``variants/pixels.anysize.onnx``: the same model taking a decoded image of
any size and resizing it in the graph, and the measure of how far that resize is from training's.

    pixels [batch, height, width, C] uint8 8-bit pixels, any height and width
    ─ Cast ─ Resize (linear, antialias, half-pixel; opset 18) ─ Round ─ Clip
    ─ (× raw_max / 255, Round for whole levels, unless raw_max is 255) ─ Cast(raw dtype)
    ─→ pixels.onnx's graph

Training decodes a JPEG at the smallest 1/2, 1/4 or 1/8 scale that covers the net's size
(Pillow's draft) and then resizes with Pillow's bilinear filter, rounding each pass to 8 bits.
A client of this variant hands over the whole decoded image, so the two differ; the agreement
is measured on photos (scikit-learn's two sample photos, at several sizes, as JPEG and PNG) and
recorded beside the variant. Only the ``stretch`` resize policy is offered.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from cnnbp.contract.bundle import VariantResult
from cnnbp.contract.preprocessing import Preprocessing

from .onnx_export import OUTPUT
from .parity import compare, session
from .pixels import PIXELS

FILE = "pixels.anysize.onnx"
OPSET = 18  # Resize's antialias and axes
SIZES = ((640, 427), (320, 213), (150, 100), (61, 47))


def offered(prep: Preprocessing) -> bool:
    """Whether the any-size variant is made: for images resized by stretching (the one resize a
    graph can do as training did)."""
    return prep.takes_images and prep.resize == "stretch"


def build(pixels_path: Path, prep: Preprocessing):
    """The any-size ModelProto; a large model's weights stay in the file pixels.onnx names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper, version_converter

    model = onnx.load(str(pixels_path), load_external_data=False)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < OPSET:
        model = version_converter.convert_version(model, OPSET)
    graph = model.graph
    h, w, c = prep.input_shape
    for node in graph.node:
        node.input[:] = ["resize/pixels" if n == PIXELS else n for n in node.input]
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(PIXELS, TensorProto.UINT8,
                                                     ["batch", "height", "width", c]))
    graph.initializer.extend([numpy_helper.from_array(np.array([h, w], "int64"), "resize/sizes"),
                              numpy_helper.from_array(np.float32(0), "resize/min"),
                              numpy_helper.from_array(np.float32(255), "resize/max")])
    front = [helper.make_node("Cast", [PIXELS], ["resize/float"], "resize/cast",
                              to=TensorProto.FLOAT),
             helper.make_node("Resize", ["resize/float", "", "", "resize/sizes"],
                              ["resize/resized"], "resize/resize", mode="linear", antialias=1,
                              axes=[1, 2], coordinate_transformation_mode="half_pixel"),
             helper.make_node("Round", ["resize/resized"], ["resize/rounded"], "resize/round"),
             helper.make_node("Clip", ["resize/rounded", "resize/min", "resize/max"],
                              ["resize/clipped"], "resize/clip")]
    # 8-bit pixels → pixels.onnx's raw values, as Preprocessing.raw_input maps them
    last = "resize/clipped"
    if prep.raw_max != 255:
        graph.initializer.append(numpy_helper.from_array(np.float32(prep.raw_max / 255.0),
                                                         "resize/unit"))
        front.append(helper.make_node("Mul", [last, "resize/unit"], ["resize/raw"],
                                      "resize/to_raw"))
        last = "resize/raw"
        if prep.raw_dtype == "uint8":  # whole levels: the nearest
            front.append(helper.make_node("Round", [last], ["resize/levels"], "resize/levels"))
            last = "resize/levels"
    if prep.raw_dtype == "uint8":
        front.append(helper.make_node("Cast", [last], ["resize/pixels"], "resize/to_uint8",
                                      to=TensorProto.UINT8))
    else:
        front.append(helper.make_node("Identity", [last], ["resize/pixels"], "resize/as_raw"))
    nodes = front + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def photos(prep: Preprocessing) -> list[tuple[str, bytes]]:
    """(name, encoded file) for each size of each sample photo, as JPEG and as PNG."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    sample = load_sample_images()
    mode = "L" if prep.input_shape[-1] == 1 else "RGB"
    out = []
    for path, pixels in zip(sample.filenames, sample.images):
        for size in SIZES:
            im = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS).convert(mode)
            for fmt in ("JPEG", "PNG"):
                buf = io.BytesIO()
                im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
                out.append((f"{Path(path).stem}-{size[0]}x{size[1]}.{fmt.lower()}",
                            buf.getvalue()))
    return out


def agreement(anysize_path: Path, pixels_path: Path, prep: Preprocessing) -> dict:
    """The variant on each whole decoded photo against pixels.onnx on training's decode and
    resize of the same file: max |diff| of the probabilities and top-1 agreement, overall and
    for PNG alone (no JPEG draft)."""
    from PIL import Image
    anysize, fixed = session(str(anysize_path)), session(str(pixels_path))
    mode = "L" if prep.input_shape[-1] == 1 else "RGB"
    got, want, png = [], [], []
    for name, data in photos(prep):
        with Image.open(io.BytesIO(data)) as im:
            trained = prep.raw_input(prep.pixels(im))[None]
        with Image.open(io.BytesIO(data)) as im:
            whole = np.asarray(im.convert(mode), dtype="uint8")
        whole = whole.reshape(1, *whole.shape[:2], prep.input_shape[-1])
        got.append(anysize.run([OUTPUT], {PIXELS: whole})[0][0])
        want.append(fixed.run([OUTPUT], {PIXELS: trained})[0][0])
        png.append(name.endswith(".png"))
    got, want, png = np.stack(got), np.stack(want), np.array(png)
    every, only_png = compare(want, got), compare(want[png], got[png])
    return {"max_abs": every.max_abs, "top1_agreement": every.top1_agreement,
            "note": f"against Pillow's decode (JPEG draft) and bilinear resize, as in training, "
                    f"on {len(got)} versions of scikit-learn's two sample photos (JPEG and PNG, "
                    f"{SIZES[-1][0]}x{SIZES[-1][1]} to {SIZES[0][0]}x{SIZES[0][1]}); PNG alone: "
                    f"top-1 agreement {only_png.top1_agreement:.4f}, max |diff| "
                    f"{only_png.max_abs:.3g}"}


def make(folder: Path, prep: Preprocessing) -> VariantResult:
    """Write ``variants/pixels.anysize.onnx`` beside a bundle's ``pixels.onnx`` and measure it.
    It has no parity bar to pass (its resize is not training's): it is kept with its measured
    agreement, and dropped only if it cannot be built or run."""
    from .onnx_export import save_checked
    if (folder / "model.onnx.data").is_file():
        return VariantResult(passed=False, kept=False, error="not made for a model whose "
                                                            "weights are stored outside its graph")
    target = folder / "variants" / FILE
    target.parent.mkdir(exist_ok=True)
    try:
        save_checked(build(folder / "pixels.onnx", prep), target)
        found = agreement(target, folder / "pixels.onnx", prep)
    except Exception as exc:  # a variant that cannot be built is reported, not fatal
        target.unlink(missing_ok=True)
        return VariantResult(passed=False, kept=False, error=f"{type(exc).__name__}: {exc}")
    return VariantResult(passed=True, file=f"variants/{FILE}", **found)
