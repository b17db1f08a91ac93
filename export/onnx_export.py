"""Keras model → ONNX ModelProto with tf2onnx: fixed I/O names, dynamic batch, blueprint names.

``from_function`` on a ``tf.function`` with an explicit input signature: ``from_keras`` can
fail on Keras 3 models (``KeyError: 'keras_tensor_N'``) unless output names are set.
"""
from __future__ import annotations

import hashlib
import json
import re

import numpy as np

INPUT, OUTPUT = "input", "probabilities"
DEFAULT_OPSET = 17  # taken by ONNX Runtime 1.31 and by TensorRT 8.6 and later


def weights_sha256(model) -> str:
    """SHA-256 over every weight array in order (dtype, shape and bytes)."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(f"{w.dtype}{w.shape}".encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def to_onnx(model, opset: int = DEFAULT_OPSET, metadata: dict | None = None):
    """Convert; returns the ModelProto with ``metadata`` in ``metadata_props``."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT),)

    @tf.function(input_signature=spec)
    def serve(x):
        return {OUTPUT: model(x, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    _clean_names(proto, model.name)
    proto.graph.name = model.name
    proto.producer_name = "cnn-blueprint"
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _clean_names(proto, model_name: str) -> None:
    """``digits_1/stage1_conv1_1/BiasAdd`` → ``stage1_conv1/BiasAdd`` on nodes and tensors."""
    prefix = re.compile(rf"^{re.escape(model_name)}(_\d+)?/([A-Za-z0-9_]+?)(_\d+)?/")
    rename = lambda name: prefix.sub(r"\2/", name)
    keep = {INPUT, OUTPUT}
    for node in proto.graph.node:
        node.name = rename(node.name)
        node.input[:] = [n if n in keep else rename(n) for n in node.input]
        node.output[:] = [n if n in keep else rename(n) for n in node.output]
    for init in proto.graph.initializer:
        init.name = rename(init.name)
    for info in proto.graph.value_info:
        info.name = rename(info.name)


def layer_of(tensor_name: str) -> str:
    """The blueprint layer a tensor belongs to: ``stage1_conv1/BiasAdd:0`` → ``stage1_conv1``."""
    return tensor_name.split("/", 1)[0]
