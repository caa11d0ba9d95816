"""Graph surgery on QDQ models: weights folded into float initializers (fold_weights), one layer
quantized alone in the fp32 graph (OneLayer, for sensitivity.py), and layers made fp32 with their
inputs (float_inputs, for Int8Quantizer.build(also_fp32=...)).

Why inputs too: onnxruntime's nodes_to_exclude keeps an excluded layer's weights float but still
feeds it the Q -> DQ copy of its input when its producer's output is quantized; and where the
quantizer removed a Relu/Clip (the QuantizeLinear's range clips instead), the tensor that
QuantizeLinear reads is the unclipped one. float_inputs rewires such a layer to the float tensor
the QuantizeLinear reads, re-inserting the fp32 graph's removed activation from `originals` (the
quantizer's pre-processed fp32 graph, whose node and tensor names the QDQ model keeps), and drops
the Q/DQ nodes left without a consumer."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

ACTIVATIONS = ("Relu", "Clip")  # the ones onnxruntime's QDQ quantizer removes (QDQRemovableActivation)


class FloatInputs:
    """Index of one QDQ graph (edited in place) and of its fp32 original."""

    def __init__(self, model: onnx.ModelProto, originals: onnx.ModelProto | None):
        self.model = model
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.names = {i.name for i in model.graph.initializer}
        orig = originals.graph if originals is not None else onnx.GraphProto()
        self.orig_producer = {o: n for n in orig.node for o in n.output}
        self.orig_inits = {t.name: t for t in orig.initializer}
        self.added: dict[str, str] = {}  # float tensor -> its re-inserted activation's output
        self.inserted: list[onnx.NodeProto] = []  # not yet in the graph (see insert)

    def float_source(self, tensor: str) -> str | None:
        """The float tensor a DequantizeLinear output `tensor` stands for: a Q -> DQ pair's float
        input, or an initializer's original (None: no DQ output, or nothing float to stand for it)."""
        dq = self.producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        if dq.input[0] in self.names:  # a weight or bias (pre-processing may share one between layers)
            return self._original(tensor, dq.input[0])
        q = self.producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            return None
        src = q.input[0]
        act = self.orig_producer.get(src)
        now = self.producer.get(src)
        if act is None or act.op_type not in ACTIVATIONS or (now is not None and now.op_type == act.op_type):
            return src
        return self._activation(src, act)

    def _original(self, tensor: str, quantized: str) -> str | None:
        original = self.orig_inits.get(tensor) or self.orig_inits.get(quantized.removesuffix("_quantized"))
        if original is None:
            return None
        name = f"{tensor}.fp32"
        if name not in self.names:
            copy = onnx.TensorProto()
            copy.CopyFrom(original)
            copy.name = name
            self.model.graph.initializer.append(copy)
            self.names.add(name)
        return name

    def _activation(self, src: str, act: onnx.NodeProto) -> str | None:
        if src in self.added:
            return self.added[src]
        for name in act.input[1:]:
            if name and name not in self.names:
                if name not in self.orig_inits:
                    return None  # a Clip bound not held in an initializer: keep the quantized input
                self.model.graph.initializer.append(self.orig_inits[name])
                self.names.add(name)
        node = onnx.NodeProto()
        node.CopyFrom(act)
        node.name = f"{act.name or act.op_type}.fp32"
        node.input[0], node.output[0] = src, f"{src}.fp32"
        self.producer[node.output[0]] = node
        self.added[src] = node.output[0]
        self.inserted.append(node)
        return node.output[0]

    def insert(self) -> None:
        """Put the re-inserted activations in the graph, each right after the node making its input
        (topological order; first for a graph input)."""
        after: dict[str, list[onnx.NodeProto]] = {}
        for node in self.inserted:
            after.setdefault(node.input[0], []).append(node)
        nodes = [n for src, ns in after.items() if src not in self.producer for n in ns]
        for n in self.model.graph.node:
            nodes.append(n)
            nodes += [a for o in n.output for a in after.get(o, [])]
        del self.model.graph.node[:]
        self.model.graph.node.extend(nodes)
        self.inserted = []

    def rewire(self, node: onnx.NodeProto) -> None:
        for i, tensor in enumerate(node.input):
            src = self.float_source(tensor)
            if src is not None:
                node.input[i] = src


def drop_dead(model: onnx.ModelProto) -> None:
    """Remove Q/DQ nodes whose outputs nothing reads, then initializers nothing reads."""
    g = model.graph
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [i for i, n in enumerate(g.node) if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        for i in reversed(dead):
            del g.node[i]
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def float_inputs(model: onnx.ModelProto, names: Iterable[str], originals: onnx.ModelProto | None
                 ) -> onnx.ModelProto:
    """A copy of `model` whose nodes `names` read float inputs (see the module's docstring)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    wanted = set(names)
    surgeon = FloatInputs(out, originals)
    for node in out.graph.node:
        if node.name in wanted:
            surgeon.rewire(node)
    surgeon.insert()
    drop_dead(out)
    return out


def _dequantized(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    """What DequantizeLinear `node` gives from its initializers ((q - zp) * scale, per axis for a
    vector of scales), or None if it reads something else."""
    if node.input[0] not in inits or node.input[1] not in inits:
        return None
    q = numpy_helper.to_array(inits[node.input[0]])
    if q.dtype.kind not in "iu":
        return None
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    zp = (numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] in inits
          else np.zeros_like(scale, dtype=np.int64))
    if scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.int64) - zp.astype(np.int64)).astype(np.float32) * scale).astype(np.float32)


def fold_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """`model` with every DequantizeLinear of an initializer (weights, biases) replaced by a float
    initializer of its output -> (folded model, {that tensor: the quantized initializer's name})."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    folded, sources, nodes = [], {}, []
    for n in g.node:
        w = _dequantized(n, inits) if n.op_type == "DequantizeLinear" else None
        if w is None:
            nodes.append(n)
        else:
            folded.append(numpy_helper.from_array(w, n.output[0]))
            sources[n.output[0]] = n.input[0]
    used = {i for n in nodes for i in n.input} | {o.name for o in g.output}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:], out.graph.initializer[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend([t for t in g.initializer if t.name in used] + folded)
    return out, sources


class OneLayer:
    """The fp32 graph with one layer quantized exactly as in a QDQ model: its input through that
    model's QuantizeLinear -> DequantizeLinear (same scale and zero point) and its weights and bias
    the dequantized values of that model's initializers."""

    def __init__(self, qdq: onnx.ModelProto, fp32: onnx.ModelProto):
        self.fp32 = fp32
        folded, self.sources = fold_weights(qdq)
        self.producer = {o: n for n in folded.graph.node for o in n.output}
        self.inits = {t.name: t for t in folded.graph.initializer}
        self.qnodes = {n.name: n for n in folded.graph.node}
        self.index = {n.name: i for i, n in enumerate(fp32.graph.node)}

    def quantized(self, name: str) -> str:
        """What of layer `name` the QDQ model quantizes: "weights+input", "weights" or "input"."""
        node = self.qnodes[name]
        weights = any(t in self.sources for t in node.input[1:])
        inputs = any(self._qdq_pair(t) is not None for t in node.input)
        return "+".join(w for w, on in (("weights", weights), ("input", inputs)) if on)

    def _qdq_pair(self, tensor: str) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
        dq = self.producer.get(tensor)
        q = self.producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        return (q, dq) if q is not None and q.op_type == "QuantizeLinear" else None

    def only(self, name: str) -> onnx.ModelProto:
        out = onnx.ModelProto()
        out.CopyFrom(self.fp32)
        g = out.graph
        node, qnode = g.node[self.index[name]], self.qnodes[name]
        have = {t.name for t in g.initializer}
        added: list[onnx.NodeProto] = []
        for i, tensor in enumerate(qnode.input[: len(node.input)]):
            pair = self._qdq_pair(tensor)
            if tensor in self.sources:  # a weight or bias: its dequantized INT8 values
                node.input[i] = f"{node.input[i]}.int8"
                g.initializer.append(_renamed(self.inits[tensor], node.input[i]))
            elif pair is not None:  # an activation: the model's Q -> DQ pair, on the fp32 tensor
                q, dq = (_renamed_node(n, f"{name}.{n.op_type}.{i}") for n in pair)
                q.input[0], q.output[0] = node.input[i], f"{node.input[i]}.{name}.q"
                dq.input[0], dq.output[0] = q.output[0], f"{node.input[i]}.{name}.dq"
                for param in [*q.input[1:], *dq.input[1:]]:
                    if param and param not in have:
                        g.initializer.append(_renamed(self.inits[param], param))
                        have.add(param)
                node.input[i] = dq.output[0]
                added += [q, dq]
        nodes = list(g.node)
        at = self.index[name]
        del g.node[:]
        g.node.extend(nodes[:at] + added + nodes[at:])
        drop_dead(out)  # the fp32 weights it no longer reads
        return out


def _renamed(t: onnx.TensorProto, name: str) -> onnx.TensorProto:
    out = onnx.TensorProto()
    out.CopyFrom(t)
    out.name = name
    return out


def _renamed_node(n: onnx.NodeProto, name: str) -> onnx.NodeProto:
    out = onnx.NodeProto()
    out.CopyFrom(n)
    out.name = name
    return out
