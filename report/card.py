"""A bundle's ``README.md`` (its model card): what the model is, how it was checked, how to call
it. Every piece of user text (class names, the folder's name, the data source) goes through
``text`` so that a Markdown renderer shows it as text, never as HTML or a link (issue 23).
"""
from __future__ import annotations

import re
from pathlib import Path

from cnnbp.builder import Compiled
from cnnbp.builder.summary import table
from cnnbp.contract import records
from cnnbp.contract.bundle import ParityCase, ParityReport
from cnnbp.contract.metrics import TrainMetrics
from cnnbp.contract.preprocessing import Preprocessing

# HTML's specials become entities (Markdown passes raw HTML through); Markdown's own
# punctuation is backslash-escaped, so no link, image, emphasis or table cell can start.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
# (the characters Python-Markdown and CommonMark both accept escaped; "|" only in a table cell)
_MARKDOWN = set("\\`*_{}[]()#+-.!")


def text(value: object, cell: bool = False) -> str:
    """``value`` as inline Markdown that renders as exactly its characters (in a table
    ``cell``, a pipe too).

    >>> print(text("<b>[x](javascript:alert(1))</b>"))
    &lt;b&gt;\\[x\\]\\(javascript:alert\\(1\\)\\)&lt;/b&gt;
    """
    special = _MARKDOWN | {"|"} if cell else _MARKDOWN
    flat = re.sub(r"\s+", " ", str(value))
    return "".join(_ENTITIES.get(c) or (f"\\{c}" if c in special else c) for c in flat)


def fenced(block: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", block)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, block, fence]


def _cases(cases: list[ParityCase]) -> list[str]:
    return ["", "| inputs | batch | max abs | max rel | top-1 agreement |", "|---|---|---|---|---|",
            *[f"| {c.inputs} | {c.batch} | {c.max_abs:.3g} | {c.max_rel:.3g} | "
              f"{c.top1_agreement:.4f} |" for c in cases]]


def _training(run: Path, compiled: Compiled | None) -> list[str]:
    m = records.read(TrainMetrics, run / "metrics.json", "training metrics")
    lines = ["## Training", "", f"- data: {text(m.data)}",
             f"- split: {m.train_samples:,} training samples (validation held out of "
             f"them), {m.test_samples:,} test samples",
             f"- test accuracy (Keras): {m.test_accuracy:.4f}, loss {m.test_loss:.4f}",
             f"- epochs: {m.epochs}{' (stopped early)' if m.stopped_early else ''}, "
             f"device: {text(m.device)}"]
    if compiled is not None:
        t = compiled.network.training
        lines.append(f"- settings: {text(t.optimizer)}, learning rate {t.learning_rate:g} "
                     f"({text(t.schedule)}), batch {t.batch_size}, weight decay "
                     f"{t.weight_decay:g}, label smoothing {t.label_smoothing:g}, seed {t.seed}")
    lines += ["", "| class | precision | recall | F1 | test samples |", "|---|---|---|---|---|"]
    for cls, f in m.per_class.items():
        f1 = f.f1
        if f1 is None:  # a run written before F1 was recorded
            both = f.precision + f.recall
            f1 = 2 * f.precision * f.recall / both if both else 0.0
        lines.append(f"| {text(cls, cell=True)} | {f.precision:.3f} | {f.recall:.3f} | {f1:.3f} | "
                     f"{f.support} |")
    for name, avg in (("macro average", m.macro_avg), ("weighted average", m.weighted_avg)):
        if avg is not None:
            lines.append(f"| *{name}* | {avg.precision:.3f} | {avg.recall:.3f} | "
                         f"{avg.f1:.3f} | {m.test_samples} |")
    return lines + [""]


def _validation(report: ParityReport) -> list[str]:
    lines = ["## Validation (ONNX Runtime vs Keras)", "",
             f"- model.onnx: opset {report.opset}, bar: max |diff| <= {report.atol:g} and 100% "
             f"top-1 agreement; result: max |diff| {report.max_abs:.3g}, top-1 agreement "
             f"{report.top1_agreement:.4f} — {'passed' if report.passed else 'FAILED'}",
             *_cases(report.cases)]
    for vname, v in report.variants.items():
        extra = f", accuracy change {v.accuracy_change_points:+.2f} points" \
            if v.accuracy_change_points is not None else ""
        if v.note:  # measured, not held to a bar
            extra += f", top-1 agreement {v.top1_agreement:.4f} {text(v.note)}"
        lines.append(f"- variant {vname}: {'kept' if v.kept else 'dropped'}"
                     + (f", max |diff| {v.max_abs:.3g}{extra}" if v.max_abs is not None else
                        f" ({text(v.error or '')})"))
    p = report.pixels
    if p is not None:
        lines += ["", f"- pixels.onnx on raw `{p.input_dtype}` inputs against Keras on the "
                      f"training pipeline's normalisation of the same inputs: bar max |diff| <= "
                      f"{p.atol:g} and 100% top-1 agreement; result: max |diff| "
                      f"{p.max_abs:.3g}, top-1 agreement {p.top1_agreement:.4f} — "
                      f"{'passed' if p.passed else 'FAILED'}", *_cases(p.cases)]
    return lines


def _how_to_call(p: Preprocessing) -> list[str]:
    shape = ", ".join(map(str, p.input_shape))
    classes = len(p.class_names)
    raw = {"image": f"raw pixel values from 0 to {p.raw_max:g} (full white)" if p.raw_max else "",
           "signal": "raw signal values in the training data's own units",
           "tensor": "raw values in the training data's own units"}[p.domain]
    note = ""
    if p.takes_images:
        size = f"({p.input_shape[1]}, {p.input_shape[0]})"
        mode = "L" if p.input_shape[-1] == 1 else "RGB"
        fit = {"stretch": f"im.resize({size}, Image.BILINEAR)",
               "center_crop": f"ImageOps.fit(im, {size}, Image.BILINEAR)",
               "letterbox": f"ImageOps.pad(im, {size}, Image.BILINEAR, color=0)"}[p.resize]
        if p.raw_max == 255:  # the decoded pixels are the raw values
            raw_of = f"np.asarray({fit}, dtype='uint8')"
        elif p.raw_dtype == "uint8":  # whole levels: the nearest one to each pixel
            raw_of = (f"np.rint(np.asarray({fit}, dtype='float64') / 255 * {p.raw_max:g})"
                      ".astype('uint8')")
            note = (f" It takes the levels 0..{p.raw_max:g} as the data holds them, not 8-bit "
                    f"pixels; an image gives the nearest levels, as below (`cnnbp predict` "
                    f"reads an image unrounded, as `pixels / 255 * {p.raw_max:g}`).")
        else:
            raw_of = f"np.asarray({fit}, dtype='float32') / 255 * {p.raw_max:g}"
        load = ["from PIL import Image, ImageOps",
                "im = Image.open('photo.jpg')  # 8-bit gray or RGB; 16-bit or transparent: "
                "see cnnbp.contract.preprocessing.image_bytes",
                f"im.draft('{mode}', {size})  # as cnnbp decodes a JPEG: at the smallest "
                "scale that covers the size", f"im = im.convert('{mode}')",
                f"x = {raw_of}.reshape(1, {shape})"]
    else:
        load = [f"x = np.load('sample.npy').astype('float32').reshape(1, {shape})"]
    return ["", "## How to call it", "",
            f"`pixels.onnx` takes what a client has: input `pixels`, {p.raw_dtype} "
            f"`[batch, {shape}]`, {p.raw_units}. The normalisation is inside the graph.{note} "
            f"Outputs: `probabilities`, float32 `[batch, {classes}]`, and `label_index`, int64 "
            "`[batch, 1]` (the top-1 class); class names are in `labels.txt` (one a line, in "
            "output order) and in the model's `class_names` metadata.", "", "```python",
            "import numpy as np, onnxruntime as ort", *load,
            "session = ort.InferenceSession('pixels.onnx', providers=['CPUExecutionProvider'])",
            "probabilities, index = session.run(None, {'pixels': x})",
            "print(open('labels.txt', encoding='utf-8').read().splitlines()[index[0, 0]], "
            "probabilities.max())",
            "```", "",
            f"`model.onnx` takes the normalised input `input`: float32 `[batch, {shape}]` "
            f"(channels last), `x = (raw / {p.scale:g} - mean) / std` with mean {p.mean} and std "
            f"{p.std} per channel, where `raw` holds {raw}; output `probabilities`.", "",
            "`cnnbp validate` re-runs the checks; `test_data_set_0/` holds ONNX model-zoo test "
            "vectors for `model.onnx` (`onnx_test_runner` reads them).", ""]


def model_card(name: str, report: ParityReport, prep: Preprocessing,
               compiled: Compiled | None = None, run: Path | None = None) -> str:
    """The bundle's README.md: the architecture (when the bundle has its blueprint), the
    training figures (when it came from a run with metrics), the parity results and a client
    that calls ``pixels.onnx``."""
    lines = [f"# {text(name)}", ""]
    if compiled is not None:
        lines += ["## Architecture", "", *fenced(table(compiled.analysis)), ""]
    if run is not None and (run / "metrics.json").is_file():
        lines += _training(run, compiled)
    return "\n".join(lines + _validation(report) + _how_to_call(prep))
