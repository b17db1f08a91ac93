"""A Triton model repository for a bundle: ``<repo>/<name>/config.pbtxt`` and ``1/model.onnx``."""
from __future__ import annotations

import shutil
from pathlib import Path


def config_pbtxt(name: str, input_shape, classes: int, max_batch_size: int = 64,
                 kind: str = "KIND_CPU", count: int = 1, queue_delay_us: int = 100) -> str:
    """Triton's model configuration (text protobuf); dims exclude the batch axis."""
    dims = lambda shape: ", ".join(str(d) for d in shape)
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{
    name: "input"
    data_type: TYPE_FP32
    dims: [ {dims(input_shape)} ]
  }}
]
output [
  {{
    name: "probabilities"
    data_type: TYPE_FP32
    dims: [ {classes} ]
    label_filename: "labels.txt"
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
    """Copy the bundle's model into a Triton layout; returns the model's folder.

    An existing folder of that name is replaced atomically, or moved to ``keep_old``.
    """
    from cnnbp.contract.atomic import atomic_path, write_text
    target = repo / name
    with atomic_path(target, keep_old=keep_old) as tmp:
        (tmp / "1").mkdir(parents=True)
        shutil.copy2(bundle / "model.onnx", tmp / "1" / "model.onnx")
        if (bundle / "model.onnx.data").is_file():  # external weights of a large model
            shutil.copy2(bundle / "model.onnx.data", tmp / "1" / "model.onnx.data")
        shutil.copy2(bundle / "labels.txt", tmp / "labels.txt")
        write_text(tmp / "config.pbtxt", config_pbtxt(name, input_shape, classes,
                                                       max_batch_size, kind))
    return target
