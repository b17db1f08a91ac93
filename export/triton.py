"""A Triton model repository for a bundle: ``<repo>/<name>/config.pbtxt``, ``labels.txt`` and
``1/model.onnx``, which is the bundle's ``pixels.onnx``: Triton has no image preprocessing
(triton-inference-server #2738, #6652), so the model it serves takes raw pixels itself.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from cnnbp.contract.errors import UsageError

MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_model_name(name: str, option: str = "--triton") -> None:
    """Refuse a model name that config.pbtxt (a quoted protobuf string) and the KServe
    manifest's comments could not hold as it is: letters, digits, '_', '.', '-' only."""
    if not MODEL_NAME.fullmatch(name) or name in (".", ".."):
        raise UsageError(f"{option}: the model is named after the bundle's folder, {name!r}, "
                         "which Triton and KServe cannot take: a model name may hold only "
                         "letters, digits, '_', '.' and '-'; choose an -o folder named that way")


def config_pbtxt(name: str, input_shape, classes: int, max_batch_size: int = 64,
                 kind: str = "KIND_CPU", count: int = 1, queue_delay_us: int = 100,
                 input_type: str = "TYPE_UINT8") -> str:
    """Triton's model configuration (text protobuf) for ``pixels.onnx``; dims exclude the
    batch axis. ``label_filename`` lets Triton's classification extension (``class_count``)
    answer with class names."""
    dims = lambda shape: ", ".join(str(d) for d in shape)
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{
    name: "pixels"
    data_type: {input_type}
    dims: [ {dims(input_shape)} ]
  }}
]
output [
  {{
    name: "probabilities"
    data_type: TYPE_FP32
    dims: [ {classes} ]
    label_filename: "labels.txt"
  }},
  {{
    name: "label_index"
    data_type: TYPE_INT64
    dims: [ 1 ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {queue_delay_us}
}}
instance_group [
  {{
    kind: {kind}
    count: {count}
  }}
]
"""


def write_repository(repo: Path, name: str, bundle: Path, input_shape, classes: int,
                     max_batch_size: int, kind: str, keep_old: Path | None = None) -> Path:
    """Copy the bundle's raw-input model into a Triton layout; returns the model's folder.

    An existing folder of that name is replaced atomically, or moved to ``keep_old``.
    """
    from cnnbp.contract.atomic import atomic_path, write_text
    from cnnbp.contract.bundle import Bundle

    from .pixels import FILE
    check_model_name(name)
    prep = Bundle(bundle).preprocessing()
    target = repo / name
    with atomic_path(target, keep_old=keep_old) as tmp:
        (tmp / "1").mkdir(parents=True)
        shutil.copy2(bundle / FILE, tmp / "1" / "model.onnx")
        if (bundle / "model.onnx.data").is_file():  # a large model's weights, which
            shutil.copy2(bundle / "model.onnx.data", tmp / "1" / "model.onnx.data")  # it names
        shutil.copy2(bundle / "labels.txt", tmp / "labels.txt")
        write_text(tmp / "config.pbtxt", config_pbtxt(
            name, input_shape, classes, max_batch_size, kind,
            input_type={"uint8": "TYPE_UINT8", "float32": "TYPE_FP32"}[prep.raw_dtype]))
    return target
