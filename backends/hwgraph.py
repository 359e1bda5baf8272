"""The hardware graph of a lowered model: what the SV and HLS emitters both build from.

``lower-dataflow`` leaves ``dataflow.quantize -> (integer kernels) -> dataflow.dequantize``.
:func:`build` reads that function into a graph of :class:`Node` (one streaming kernel each, its
parameters and constant arrays read from the weight store) and :class:`Stream` (one integer
tensor, streamed one code per beat in row-major order, one item per inference).  It then
decides what the wiring needs, with networkx:

- **forks**: a stream read by several kernels goes through a broadcast;
- **FIFO depths**: where two paths from one fork meet again (a residual add, the two operands
  of an attention matmul), a kernel may need all of one operand before it takes the other, so
  each such input gets a FIFO holding one whole item (``numel`` codes): enough for any kernel
  here, because every kernel produces all of an item's outputs from its own inputs alone;
- **folding**: ``lanes`` (multipliers per MAC kernel, a power of two dividing K) are doubled on
  the slowest linear/matmul until the cycle model stops improving or ``max_lanes`` is reached;
- a **cycle model** per kernel (cycles per item in steady state) that ``masec sim`` measures
  against and ``masec report`` shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import torch
from xdsl.dialects.builtin import IntegerType, Signedness

from . import BackendError

KINDS = {"dataflow.linear": "linear", "dataflow.matmul": "matmul", "dataflow.gather": "gather",
         "dataflow.requant": "requant", "dataflow.add": "add", "dataflow.lut": "lut", "dataflow.softmax": "softmax",
         "dataflow.layer_norm": "layer_norm"}
SOFTMAX_DIV_CYCLES = 48  # the sequential divider of masec_softmax (bits of its quotient), per row
NORM_ROW_CYCLES = 96  # isqrt + reciprocal of masec_layernorm, per row


@dataclass
class Stream:
    name: str
    width: int
    signed: bool
    shape: tuple[int, ...]  # one item (the batch axis removed)
    producer: str  # node name, or "input"
    consumers: list[tuple[str, int]] = field(default_factory=list)  # (node name, input port)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Node:
    name: str
    kind: str
    source: str  # the graph.node name of the layer it came from
    inputs: list[Stream]
    output: Stream
    params: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    lanes: int = 1

    @property
    def wire(self) -> bool:
        """An identity gather (a reshape): no hardware, the stream order is already right."""
        return self.kind == "gather" and bool(self.params.get("identity"))

    def cycles(self) -> int:
        """Steady-state cycles per item (one code per beat in and out, ``lanes`` multipliers)."""
        p = self.params
        n_in, n_out = self.inputs[0].numel, self.output.numel
        if self.kind == "linear":
            rows = n_in // p["K"]
            return rows * max(p["K"], p["N"] * p["K"] // self.lanes, p["N"])
        if self.kind == "matmul":
            return max(p["BATCH"] * p["M"] * p["N"] * p["K"] // self.lanes, n_in, self.inputs[1].numel)
        if self.kind == "gather":
            return 0 if self.wire else max(n_in, n_out)
        if self.kind == "softmax":
            return (n_in // p["N"]) * max(p["N"], SOFTMAX_DIV_CYCLES) + n_out
        if self.kind == "layer_norm":
            return (n_in // p["D"]) * max(p["D"], NORM_ROW_CYCLES) + n_out
        return n_out


@dataclass
class HwGraph:
    input: Stream
    output: Stream
    nodes: list[Node]  # topological order
    streams: dict[str, Stream]
    fifos: dict[tuple[str, int], int]  # (node, port) -> depth
    quantize: object = None  # the dataflow.quantize op (software end)
    last: object = None  # the op whose result the hardware outputs

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def cycles(self) -> dict[str, int]:
        return {n.name: n.cycles() for n in self.nodes if not n.wire}

    def bottleneck(self) -> int:
        return max([*self.cycles().values(), self.input.numel, self.output.numel])


# --------------------------------------------------------------------------- reading the IR


def _prop(op, key: str):
    a = op.properties.get(key)
    if a is None:
        return None
    return a.data if isinstance(getattr(a, "data", None), str) else a.value.data


def _stream_of(value, name: str, producer: str) -> Stream:
    from mase_compiler.dialects.graph import element_type, shape_of

    et = element_type(value.type)
    if not isinstance(et, IntegerType):
        raise BackendError(f"a hardware stream must carry integer codes, found {value.type}")
    shape = shape_of(value.type)
    if shape is None or any(d < 0 for d in shape[1:]):
        raise BackendError(f"hardware streams need static shapes except the batch axis, found {value.type}")
    return Stream(name, et.width.data, et.signedness.data != Signedness.UNSIGNED, tuple(shape[1:]), producer)


def _ident(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()
    return out or "op"


def build(model, max_lanes: int = 8) -> HwGraph:
    """The hardware graph of ``model`` (lowered by ``lower-dataflow``) or a one-line ``BackendError``."""
    from mase_compiler.dialects.graph import node_name

    ops = [op for op in model.main.body.ops if op.name != "func.return"]
    computing = [op for op in ops if op.name not in ("graph.weight", "graph.constant")]
    hint = "lower the model with lower-dataflow first"
    other = [op.name for op in computing if not op.name.startswith("dataflow.")]
    if other:
        raise BackendError(f"the hardware backends take integer dataflow kernels only; {hint}, found {other[0]}")
    quants = [op for op in computing if op.name == "dataflow.quantize"]
    deqs = [op for op in computing if op.name == "dataflow.dequantize"]
    if len(model.main.args) != 1 or len(quants) != 1:
        raise BackendError(f"the hardware backends support models with one input, found {len(model.main.args)} inputs "
                           f"and {len(quants)} dataflow.quantize")
    if len(deqs) != 1:
        raise BackendError(f"the hardware backends support models with one output, found {len(deqs)} dataflow.dequantize")
    quant, deq = quants[0], deqs[0]
    if quant.operands[0] is not model.main.args[0]:
        raise BackendError("dataflow.quantize must read the model input")
    streams: dict[object, Stream] = {quant.results[0]: _stream_of(quant.results[0], "s_in", "input")}
    nodes: list[Node] = []
    used: set[str] = set()
    w = model.weights
    for op in computing:
        if op in (quant, deq):
            continue
        kind = KINDS.get(op.name)
        if kind is None:
            raise BackendError(f"the hardware backends have no component for {op.name}")
        ins = []
        for v in op.operands:
            if v not in streams:
                raise BackendError(f"{op.name} ({node_name(op)}) reads a value that is not a hardware stream")
            ins.append(streams[v])
        base = f"{kind}_{_ident(node_name(op) or kind)}"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        out = _stream_of(op.results[0], f"s_{name}", name)
        streams[op.results[0]] = out
        node = Node(name, kind, node_name(op) or "", ins, out)
        _read_params(node, op, w)
        for port, s in enumerate(ins):
            s.consumers.append((name, port))
        nodes.append(node)
    if deq.operands[0] not in streams:
        raise BackendError("dataflow.dequantize must read a hardware stream")
    output = streams[deq.operands[0]]
    output.consumers.append(("output", 0))
    graph = HwGraph(streams[quant.results[0]], output, nodes, {s.name: s for s in streams.values()}, {},
                    quant, deq.operands[0].owner)
    graph.fifos = _fifo_depths(graph)
    _fold(graph, max_lanes)
    return graph


def _read_params(node: Node, op, w) -> None:
    p, a = node.params, node.arrays
    get = (lambda key: _prop(op, key))
    arr = (lambda key: np.asarray(w[get(key)]).astype(np.int64))
    for key in ("zp_in", "zp_out", "lo", "hi", "zp_a", "zp_b", "shift", "lo_in", "pad", "frac_bits", "numerator",
                "recip_bits", "eps", "multiplier"):
        v = get(key)
        if isinstance(v, int):
            p[key] = v
    x, y = node.inputs[0], node.output
    if node.kind == "linear":
        codes = arr("weight")
        k, n = codes.shape
        p.update(K=k, N=n, requant=int(get("multiplier") is not None), bias=int(get("bias") is not None))
        a["weight"] = codes
        if get("bias") is not None:
            a["bias"] = arr("bias").reshape(-1)
        if get("multiplier") is not None:
            a["multiplier"] = np.broadcast_to(arr("multiplier").reshape(-1), (n,)).copy()
            a["shift"] = np.broadcast_to(arr("shift").reshape(-1), (n,)).copy()
        if x.shape[-1] != k or y.shape[-1] != n:
            raise BackendError(f"dataflow.linear {node.source}: shapes {x.shape} -> {y.shape} do not match weight {codes.shape}")
    elif node.kind == "matmul":
        b = node.inputs[1]
        m, k, n = x.shape[-2], x.shape[-1], b.shape[-1]
        p.update(BATCH=math.prod(x.shape[:-2]), M=m, K=k, N=n, requant=int(get("multiplier") is not None))
        if get("multiplier") is not None:
            p["shift"] = get("shift")
        if b.shape[-2] != k or math.prod(b.shape[:-2]) != p["BATCH"]:
            raise BackendError(f"dataflow.matmul {node.source}: operand shapes {x.shape} and {b.shape} do not match")
    elif node.kind == "gather":
        idx = arr("index").reshape(-1)
        p.update(N_IN=x.numel, N_OUT=y.numel, identity=int(len(idx) == x.numel and np.array_equal(idx, np.arange(x.numel))))
        a["index"] = idx
    elif node.kind == "requant":
        m, s = arr("multiplier").reshape(-1), arr("shift").reshape(-1)
        p["C"] = max(len(m), len(s))
        a["multiplier"], a["shift"] = np.broadcast_to(m, (p["C"],)).copy(), np.broadcast_to(s, (p["C"],)).copy()
    elif node.kind == "add":
        ma, mb = arr("mult_a").reshape(-1), arr("mult_b").reshape(-1)
        p["C"] = max(len(ma), len(mb))
        a["mult_a"], a["mult_b"] = np.broadcast_to(ma, (p["C"],)).copy(), np.broadcast_to(mb, (p["C"],)).copy()
    elif node.kind == "lut":
        a["table"] = arr("table").reshape(-1)
    elif node.kind == "softmax":
        from mase_compiler.numerics.intops import exp2_table

        p["N"] = x.shape[-1]
        a["table"] = exp2_table(p["frac_bits"]).numpy()
    elif node.kind == "layer_norm":
        p["D"] = x.shape[-1]
        a["gamma"], a["beta"] = arr("gamma").reshape(-1), arr("beta").reshape(-1)
    if node.kind in ("requant", "add", "layer_norm") and p.get("C", 1) not in (1, y.shape[-1] if y.shape else 1):
        raise BackendError(f"{op.name} {node.source}: {p['C']} channel parameters for a last axis of {y.shape[-1]}")


def _fifo_depths(graph: HwGraph) -> dict[tuple[str, int], int]:
    g = nx.DiGraph()
    g.add_node("input")
    for n in graph.nodes:
        for s in n.inputs:
            g.add_edge(s.producer, n.name)
    depths: dict[tuple[str, int], int] = {}
    for n in graph.nodes:
        if len(n.inputs) < 2:
            continue
        reach = [nx.ancestors(g, s.producer) | {s.producer} for s in n.inputs]
        for port, s in enumerate(n.inputs):
            if any(reach[port] & reach[q] for q in range(len(n.inputs)) if q != port):
                depths[(n.name, port)] = s.numel
    return depths


def _fold(graph: HwGraph, max_lanes: int) -> None:
    """Double the lanes of the slowest MAC kernel while it is the bottleneck and K allows."""
    macs = [n for n in graph.nodes if n.kind in ("linear", "matmul")]
    while macs:
        slow = max(macs, key=lambda n: n.cycles())
        k = slow.params["K"]
        if slow.lanes * 2 > max_lanes or k % (slow.lanes * 2) or slow.cycles() < graph.bottleneck():
            break
        before = slow.cycles()
        slow.lanes *= 2
        if slow.cycles() >= before:
            slow.lanes //= 2
            break


def golden(graph: HwGraph, model, inputs: np.ndarray | torch.Tensor | None, n_vectors: int = 16,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Input codes and expected output codes, one row per item, from the interpreter's hardware-exact
    kernels; ``inputs`` default to ``n_vectors`` random normal items (``seed``)."""
    from mase_compiler.dialects.graph import shape_of
    from mase_compiler.interpreter import Interpreter

    item = shape_of(model.main.args[0].type)[1:]
    if inputs is None:
        gen = torch.Generator().manual_seed(seed)
        inputs = torch.randn((n_vectors, *item), generator=gen)
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)).reshape(-1, *item)
    seen: dict[str, torch.Tensor] = {}

    def observe(op, ins, outs):
        if op is graph.quantize:
            seen["in"] = outs[0]
        if op is graph.last:
            seen["out"] = outs[0]

    Interpreter(model)({model.input_names[0]: x}, observe=observe)
    n = x.shape[0]
    return seen["in"].to(torch.int64).reshape(n, -1).numpy(), seen["out"].to(torch.int64).reshape(n, -1).numpy()


__all__ = ["HwGraph", "Node", "Stream", "build", "golden"]
