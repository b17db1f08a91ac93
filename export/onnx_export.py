"""Keras model → ONNX ModelProto with tf2onnx: fixed I/O names, dynamic batch, blueprint names.

``from_function`` on a ``tf.function`` with an explicit input signature: ``from_keras`` can
fail on Keras 3 models (``KeyError: 'keras_tensor_N'``) unless output names are set.

The weights never pass through tf2onnx. The function converted is ``model.stateless_call``
with every variable as an extra graph input, so tf2onnx handles a graph of a few kilobytes;
the inputs then become initializers filled from the variables (named by their Keras paths),
and the transposes and reshapes tf2onnx put on them are folded in NumPy. Converting VGG-16's
553 MB of weights as captured constants instead leaked a copy per optimizer pass (issue 4).
"""
from __future__ import annotations

import hashlib
import re

import numpy as np

INPUT, OUTPUT = "input", "probabilities"
DEFAULT_OPSET = 17  # taken by ONNX Runtime 1.31 and by TensorRT 8.6 and later
EXTERNAL_DATA_BYTES = 256 << 20  # larger weights go to model.onnx.data


def weights_sha256(model) -> str:
    """SHA-256 over every weight array in order (dtype, shape and bytes)."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(f"{w.dtype}{w.shape}".encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def to_onnx(model, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None):
    """Convert; returns the ModelProto with ``metadata`` (strings, as
    ``contract.bundle.metadata`` makes them) in ``metadata_props``."""
    import tensorflow as tf
    import tf2onnx

    trainable, fixed = model.trainable_variables, model.non_trainable_variables
    variables = list(trainable) + list(fixed)
    spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT)]
    spec += [tf.TensorSpec(v.shape, v.dtype, name=f"{_WEIGHT}{i}") for i, v in enumerate(variables)]

    @tf.function(input_signature=spec)
    def serve(x, *weights):
        y, _ = model.stateless_call(list(weights[:len(trainable)]),
                                    list(weights[len(trainable):]), x, training=False)
        return {OUTPUT: y}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    _attach_weights(proto, {f"{_WEIGHT}{i}": v for i, v in enumerate(variables)})
    _clean_names(proto, model.name)
    proto.graph.name = model.name
    proto.producer_name = "cnn-blueprint"
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def save_checked(proto, path) -> None:
    """Save, then run the full checker and strict shape inference on the file.

    Working from the file spares the serialized copies that checking an in-memory proto
    makes (553 MB each for VGG-16). Models whose weights exceed EXTERNAL_DATA_BYTES keep them
    in ``model.onnx.data`` beside the graph: saving then streams each tensor out instead of
    serializing one more copy of all of them (and protobuf could not hold 2 GB anyway).
    """
    from pathlib import Path

    import onnx

    path = Path(path)
    big = sum(len(t.raw_data) for t in proto.graph.initializer) > EXTERNAL_DATA_BYTES
    onnx.save(proto, str(path), save_as_external_data=big, all_tensors_to_one_file=True,
              location=f"{path.name}.data")
    onnx.checker.check_model(str(path), full_check=True)
    inferred = path.with_name(f".{path.name}.inferred")
    try:
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred), check_type=True,
                                               strict_mode=True)
    finally:
        inferred.unlink(missing_ok=True)


_WEIGHT = "cnnbp_weight_"
_FOLDABLE = {"Transpose", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze"}


def _attach_weights(proto, variables: dict) -> None:
    """Turn the weight inputs into initializers and fold the constant ops tf2onnx put on them."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    names = {key: v.path for key, v in variables.items()}
    keep = [i for i in graph.input if i.name not in variables]
    del graph.input[:]
    graph.input.extend(keep)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
    for key, v in variables.items():
        graph.initializer.append(numpy_helper.from_array(np.asarray(v.numpy()), names[key]))

    consts = {i.name: i for i in graph.initializer}
    folded = True
    while folded:
        folded = False
        for node in list(graph.node):
            if node.op_type not in _FOLDABLE or not node.input or \
                    not all(n in consts for n in node.input if n):
                continue
            args = [numpy_helper.to_array(consts[n]) for n in node.input if n]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            value = _fold(node.op_type, args, attrs)
            tensor = numpy_helper.from_array(value, node.output[0])
            graph.initializer.append(tensor)
            consts[node.output[0]] = tensor
            graph.node.remove(node)
            folded = True
    used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _fold(op: str, args: list, attrs: dict) -> np.ndarray:
    x = args[0]
    if op == "Transpose":
        return np.ascontiguousarray(np.transpose(x, attrs.get("perm")))
    if op == "Reshape":
        shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(args[1])]
        return x.reshape(shape)
    if op == "Cast":
        from onnx import helper
        return x.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if op == "Squeeze":
        axes = tuple(int(a) for a in (args[1] if len(args) > 1 else attrs.get("axes", [])))
        return np.squeeze(x, axis=axes or None)
    if op == "Unsqueeze":
        for a in sorted(int(a) for a in (args[1] if len(args) > 1 else attrs["axes"])):
            x = np.expand_dims(x, a)
        return x
    return x  # Identity


def _clean_names(proto, model_name: str) -> None:
    """``stage1_conv1_1/BiasAdd`` (or ``digits_1/stage1_conv1_1/…``) → ``stage1_conv1/BiasAdd``."""
    prefix = re.compile(rf"^(?:{re.escape(model_name)}(?:_\d+)?/)?([A-Za-z0-9_]+?)(?:_\d+)?/")
    rename = lambda name: prefix.sub(r"\1/", name)
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
