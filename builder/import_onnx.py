"""An ``.onnx`` classifier → ``Imported``: the graph walked from its input to its output.

Layout and shape bookkeeping (``Transpose``, ``Shape``/``Cast`` side branches, a ``Reshape``
of the input) is stepped over; ``Conv``, ``MaxPool``/``AveragePool`` (NCHW by the standard),
the activations, ``BatchNormalization``, ``LRN`` (or the subgraph tf2onnx makes of cnnbp's
LRN layer), ``Flatten``/``Reshape`` to a vector, ``MatMul``+``Add`` or ``Gemm``, and the final
``Softmax`` become layers. An inference graph carries no Dropout, so none is recovered.
"""
from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from . import ir
from .imported import Imported, breaks, window

_ACTIVATIONS = {"Relu": "RELU", "Tanh": "TANH", "Sigmoid": "SIGMOID", "LeakyRelu": "LEAKY_RELU",
                "Elu": "ELU", "Gelu": "GELU"}
_SKIP = ("Transpose", "Identity", "Cast", "Squeeze", "Unsqueeze")
KNOWN = ("Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Relu, Tanh, Sigmoid, "
         "LeakyRelu, Elu, BatchNormalization, LRN, Dropout, Flatten, MatMul+Add, Gemm, Softmax")


def load_model(path: str | Path):
    """The ``onnx.ModelProto`` in ``path``: the one place an ``.onnx`` file is opened (the
    importer and the weights reader both use it). A file protobuf cannot parse, or one that
    parses to no graph at all (protobuf reads many short byte strings as an empty message),
    is an ArtifactError."""
    import onnx

    from cnnbp.contract.errors import ArtifactError
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError…: all mean unreadable
        raise ArtifactError(path, f"is not a readable ONNX model: {exc}") from None
    if not proto.graph.node:
        raise ArtifactError(path, "is not a readable ONNX model: it holds no graph (no nodes)")
    return proto


def read(path: str | Path) -> Imported:
    """Read ``path`` (an ``.onnx`` file); a graph outside the grammar raises BlueprintError
    naming the node that breaks it, an unreadable file ArtifactError."""
    from onnx import numpy_helper
    proto = load_model(path)
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return _Walker(str(path), proto, consts).run()


def users_of(graph) -> dict[str, list]:
    """Each tensor's consumers."""
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def following_bias(next_node, tensor: str, consts: dict, channels: int):
    """``(bias constant's name, the Add's output)`` when an Add of a ``channels``-element
    constant follows ``tensor`` past layout nodes (Transpose, Identity...), as tf2onnx and
    hand-edited graphs write a Conv's or MatMul's bias; else None. ``next_node(tensor)``
    lists a tensor's consumers. The importer and the weights reader both ask this, so a
    bias the one finds the other loads."""
    while True:
        nodes = next_node(tensor)
        if len(nodes) != 1:
            return None
        node = nodes[0]
        if node.op_type == "Add":
            vectors = [i for i in node.input if i in consts and consts[i].size == channels]
            return (vectors[0], node.output[0]) if vectors else None
        if node.op_type not in _SKIP:
            return None
        tensor = node.output[0]


def _f32(value) -> float:
    """A float32 constant as its shortest decimal (1e-4, not 9.999999747378752e-05)."""
    import numpy as np
    return float(str(np.float32(value)))


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Walker:
    def __init__(self, source: str, proto, consts: dict):
        self.source, self.graph, self.consts = source, proto.graph, consts
        self.users = users_of(self.graph)
        self.layers: list[ir.Layer] = []
        self.pads = None
        self.jump: dict[str, str] = {}   # the tensor a bias Add takes -> the Add's output

    def refuse(self, node, message: str) -> NoReturn:
        raise breaks(self.source, node.name or node.op_type, node.op_type, message)

    def next_node(self, tensor: str) -> list:
        """The nodes that take ``tensor``, less the shape arithmetic on the side."""
        return [n for n in self.users.get(tensor, []) if n.op_type != "Shape"]

    def run(self) -> Imported:
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise breaks(self.source, self.graph.name, "graph", f"has {len(inputs)} inputs; a "
                         "blueprint's net has one")
        dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
        first = self.next_node(inputs[0].name)
        nhwc = len(first) == 1 and (first[0].op_type == "Reshape" or (
            first[0].op_type == "Transpose" and list(_attrs(first[0])["perm"])[1] == len(dims) - 1))
        shape = tuple(dims[1:]) if nhwc else tuple(dims[2:]) + (dims[1],)
        if not 2 <= len(shape) <= 3 or any(d is None for d in shape):
            raise breaks(self.source, inputs[0].name, "input", f"has the shape {dims}; a "
                         "blueprint needs a fixed input of LENGTHxCHANNELS or "
                         "HEIGHTxWIDTHxCHANNELS (the batch axis may vary)")
        self.spatial = shape[:-1]
        tensor, output = inputs[0].name, self.graph.output[0].name
        while tensor != output:
            tensor = self.step(tensor)
            tensor = self.jump.pop(tensor, tensor)  # over a bias Add the Conv took
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, ir.Dense) or not last.softmax:
            raise breaks(self.source, output, "output", "is not a softmax over a fully "
                         "connected layer; the pattern ends with its classifier, FC-SOFTMAX")
        name = self.graph.name if self.graph.name not in ("", "main_graph", "torch_jit") \
            else Path(self.source).stem
        return Imported(name, shape, tuple(self.layers), self.source, "ONNX")

    def step(self, tensor: str) -> str:
        nodes = self.next_node(tensor)
        square = [n for n in nodes if n.op_type == "Mul" and list(n.input) == [tensor, tensor]]
        if square:
            return self.lrn_block(tensor, square[0])
        if len(nodes) != 1:
            node = nodes[0] if nodes else None
            if node is None:
                raise breaks(self.source, tensor, "tensor", "is used by no node before the "
                             "graph's output")
            self.refuse(node, f"{tensor} feeds {len(nodes)} nodes "
                        f"({', '.join(n.op_type for n in nodes)}); the pattern describes a "
                        "single chain of layers")
        node = nodes[0]
        op, a = node.op_type, _attrs(node)
        name = node.name.split("/")[0] or op
        if op in _SKIP or (op == "Reshape" and not self.layers):
            pass
        elif op == "Pad":
            self.pad(node)
        elif op == "Conv":
            self.conv(node, a, name)
        elif op in ("MaxPool", "AveragePool"):
            self.pool(node, a, name, "max" if op == "MaxPool" else "avg")
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            self.layers.append(ir.GlobalPool(name, "avg" if "Average" in op else "max", op))
            self.spatial = None
            return self.after_global(node)
        elif op in _ACTIVATIONS:
            alpha = a.get("alpha", {"LeakyRelu": 0.01, "Elu": 1.0}.get(op))
            self.layers.append(ir.Activation(name, _ACTIVATIONS[op],
                                             None if alpha is None else _f32(alpha), op))
        elif op == "BatchNormalization":
            self.layers.append(ir.BatchNorm(name, 0.99, _f32(a.get("epsilon", 1e-5)), op))
        elif op == "LRN":
            size = int(a["size"])  # ONNX divides alpha by size, as Caffe does
            self.layers.append(ir.LRN(name, size, _f32(a.get("alpha", 1e-4) / size),
                                      _f32(a.get("beta", 0.75)), _f32(a.get("bias", 1.0)), op))
        elif op == "Dropout":
            self.layers.append(ir.Dropout(name, float(a.get("ratio", 0.5)), op))
        elif op in ("Flatten", "Reshape"):
            self.layers.append(ir.Flatten(name, op))
            self.spatial = None
        elif op in ("MatMul", "Gemm"):
            return self.dense(node, a, name)
        elif op == "Softmax":
            last = self.layers[-1] if self.layers else None
            if not isinstance(last, ir.Dense) or last.softmax:
                self.refuse(node, "is a softmax that does not follow a fully connected layer")
            self.layers[-1] = ir.Dense(last.name, last.units, last.bias, True, last.origin)
        else:
            hint = ("; a per-channel Mul/Add is how an exporter folds an inference-mode "
                    "BatchNormalization, which the graph no longer tells apart: import the "
                    ".keras file instead") if op in ("Mul", "Add", "Sub") else ""
            self.refuse(node, f"has no token in the pattern grammar; it knows {KNOWN}{hint}")
        if self.layers and isinstance(self.layers[-1], ir.Dense) and self.layers[-1].softmax \
                and op != "Softmax":
            self.refuse(node, "follows the softmax; the pattern ends with its classifier")
        return node.output[0]

    def weight(self, node, index: int):
        name = node.input[index] if len(node.input) > index else ""
        if name and name not in self.consts:
            self.refuse(node, f"takes its weights from {name}, which is computed, not stored")
        return self.consts.get(name) if name else None

    def pad(self, node) -> None:
        a = _attrs(node)
        if a.get("mode", b"constant") not in (b"constant", "constant"):
            self.refuse(node, f"pads by {a['mode']!r}; a blueprint pads with zeros (or -inf "
                        "before a max pool)")
        pads = a.get("pads")
        if pads is None:
            pads = self.weight(node, 1)
        pads = [int(p) for p in pads]
        half = len(pads) // 2
        begin, end = pads[:half], pads[half:]
        padded = {i for i in range(half) if begin[i] or end[i]}
        nchw, nhwc = list(range(2, half)), list(range(1, half - 1))
        spatial = nhwc if padded <= set(nhwc) and not padded <= set(nchw) else nchw
        if not padded <= set(spatial) or self.spatial is None:
            self.refuse(node, "pads the batch or channel axis, or a flat tensor; a blueprint "
                        "pads positions only")
        value = self.weight(node, 2)
        self.pads = tuple((begin[i], end[i]) for i in spatial)
        self.pad_value = float(value.reshape(-1)[0]) if value is not None and value.size else 0.0

    def window(self, node, a: dict, kernel, stride, dilation, max_pool: bool):
        if self.spatial is None:
            self.refuse(node, "works over positions, but the net is already flat here")
        rank = len(kernel)
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        pads = list(a.get("pads", [0] * 2 * rank))
        explicit = tuple((pads[i], pads[i + rank]) for i in range(rank))
        if self.pads is not None:
            if any(explicit[i] != (0, 0) for i in range(rank)):
                self.refuse(node, "pads twice (a Pad node, then its own pads)")
            explicit = self.pads
            if (self.pad_value == float("-inf")) != max_pool or \
                    (not max_pool and self.pad_value != 0):
                self.refuse(node, f"follows a Pad with {self.pad_value}; a blueprint pads max "
                            "pooling with -inf and convolutions and average pooling with 0")
        self.pads = None
        given = "same" if auto in ("SAME_UPPER",) else explicit
        if a.get("ceil_mode"):
            from .shapes import window_extent
            if given == "same" or any(x != y for x, y in explicit):
                self.refuse(node, "rounds up with unequal padding; a blueprint pads both sides "
                            "alike")
            ext = [window_extent(n, k, s, x, y, 1, ceil=True)
                   for n, k, s, (x, y) in zip(self.spatial, kernel, stride, explicit)]
            padding = "valid" if not any(x for x, _ in explicit) else explicit
            self.spatial = tuple(e.length for e in ext)
            return padding, None if all(e.tiles for e in ext) else "ceil"
        w = window(self.spatial, kernel, stride, dilation, given,
                   lambda message: self.refuse(node, message), ceil_first=max_pool)
        self.spatial = w.spatial
        return w.padding, w.rounding

    def conv(self, node, a: dict, name: str) -> None:
        kernel_array = self.weight(node, 1)
        kernel = tuple(int(k) for k in a.get("kernel_shape", kernel_array.shape[2:]))
        rank = len(kernel)
        stride = tuple(int(s) for s in a.get("strides", [1] * rank))
        dilation = tuple(int(d) for d in a.get("dilations", [1] * rank))
        padding, rounding = self.window(node, a, kernel, stride, dilation, False)
        bias = len(node.input) > 2 and bool(node.input[2])
        if not bias:  # tf2onnx may leave the bias as an Add after the Conv (and a Transpose)
            bias = self.bias_add(node.output[0], int(kernel_array.shape[0]))
        self.layers.append(ir.Conv(name, int(kernel_array.shape[0]), kernel, stride, padding,
                                   dilation, int(a.get("group", 1)), bias, rounding, "Conv"))

    def bias_add(self, tensor: str, channels: int) -> bool:
        """Whether an Add of a ``channels`` vector follows ``tensor`` (past layout nodes);
        the walk then jumps over it."""
        found = following_bias(self.next_node, tensor, self.consts, channels)
        if found is not None:
            self.jump[tensor] = found[1]
        return found is not None

    def pool(self, node, a: dict, name: str, mode: str) -> None:
        kernel = tuple(int(k) for k in a["kernel_shape"])
        stride = tuple(int(s) for s in a.get("strides", kernel))
        padding, rounding = self.window(node, a, kernel, stride, (1,) * len(kernel),
                                        mode == "max")
        self.layers.append(ir.Pool(name, mode, kernel, stride, padding, rounding, node.op_type))

    def after_global(self, node) -> str:
        """Step over the Reshape/Squeeze/Flatten that drops a global pool's 1x1 axes."""
        tensor = node.output[0]
        while True:
            nodes = self.next_node(tensor)
            if len(nodes) == 1 and nodes[0].op_type in _SKIP + ("Reshape", "Flatten"):
                tensor = nodes[0].output[0]
            else:
                return tensor

    def dense(self, node, a: dict, name: str) -> str:
        w = self.weight(node, 1)
        if node.op_type == "Gemm":
            units = w.shape[0] if a.get("transB") else w.shape[1]
            bias = len(node.input) > 2 and bool(node.input[2])
            out = node.output[0]
        else:
            units, bias, out = w.shape[1], False, node.output[0]
            after = self.next_node(out)
            if len(after) == 1 and after[0].op_type == "Add" and \
                    any(i in self.consts for i in after[0].input):
                bias, out = True, after[0].output[0]
        if self.spatial is not None:
            self.layers.append(ir.Flatten(f"{name}_flatten", "implicit"))
            self.spatial = None
        self.layers.append(ir.Dense(name, int(units), bias, False, node.op_type))
        return out

    def lrn_block(self, tensor: str, square) -> str:
        """tf2onnx's form of cnnbp's LRN layer: x / (bias + alpha * window sum of x²)^beta."""
        seen, frontier, found = set(), [square], {}
        while frontier:
            node = frontier.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            const = [_f32(self.consts[i].reshape(-1)[0]) for i in node.input
                     if i in self.consts and self.consts[i].size == 1]
            if node.op_type == "Slice":
                found["size"] = found.get("size", 0) + 1
            elif node.op_type == "Mul" and node is not square and const:
                found["alpha"] = const[0]
            elif node.op_type == "Add" and const:
                found["bias"] = const[0]
            elif node.op_type == "Pow" and const:
                found["beta"] = const[0]
            if node.op_type == "Div":
                found["out"] = node.output[0]
                continue
            for out in node.output:
                frontier.extend(self.users.get(out, []))
        if set(found) != {"size", "alpha", "bias", "beta", "out"}:
            self.refuse(square, "squares its input but is not the local response "
                        "normalization cnnbp writes (x / (k + alpha * sum of squares)^beta)")
        name = square.name.split("/")[0] or "lrn"
        self.layers.append(ir.LRN(name, found["size"], found["alpha"], found["beta"],
                                  found["bias"], "LRN subgraph"))
        return found["out"]
