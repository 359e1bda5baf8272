"""The ONNX backend (``--target onnx``): standard QuantizeLinear/DequantizeLinear ONNX.

``emit(model, out)`` writes ``out/model.onnx`` (plus ``model.onnx.data`` when
the weights exceed protobuf's 2 GB) and ``out/README.md``; ``run(out, inputs)``
executes it with ONNX Runtime on CPU.  Graph ops map one-to-one onto ONNX ops
(:mod:`._graph`); ``quant.cast`` lowering is in :mod:`._qdq` and
:mod:`._decompose`.  docs/backends.md lists, per format, how it is exported.

Opset 23: 21 brought int4/uint4 and blocked (``block_size``) Q/DQ, 19 float8
with ``saturate``; 23 adds float4e2m1 and 24 float8e8m0 scales, but ONNX
Runtime 1.32 implements neither in DequantizeLinear (checked), so nothing
here needs 24, and 23 is the newest opset whose Q/DQ ONNX Runtime runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper
from xdsl.dialects.func import ReturnOp

from .. import BackendError
from ...model import Model
from ._builder import Builder, value_info
from ._graph import EXPORTERS
from ._qdq import lower_cast

OPSET = 23
IR_VERSION = 10  # the ONNX IR version of opset 23
_PROTO_LIMIT = 1_800_000_000  # bytes of initializers above which they go to model.onnx.data (protobuf caps at 2 GB)

__all__ = ["EXPORTERS", "OPSET", "build", "emit", "run"]


def build(model: Model) -> tuple[onnx.ModelProto, dict[str, object]]:
    """The ONNX model of ``model`` and facts about it (weight bytes, how each cast was exported)."""
    func = model.main
    b = Builder(model.weights)
    inputs = []
    for arg, name in zip(func.args, model.input_names):
        b.bind(arg, b.fresh(name))
        inputs.append(value_info(name, arg.type, name))
    reserved = set(model.output_names)
    b.reserve(reserved)
    counts: dict[str, int] = {}
    outputs: list[onnx.ValueInfoProto] = []
    for op in func.body.ops:
        if isinstance(op, ReturnOp):
            for v, name in zip(op.operands, model.output_names):
                b.nodes.append(helper.make_node("Identity", [b.name(v)], [name], name=b.fresh(f"n_{name}")))
                outputs.append(value_info(name, v.type, name))
            continue
        if op.name == "quant.cast":
            outs = lower_cast(b, op, counts)
        elif op.name in EXPORTERS:
            outs = EXPORTERS[op.name](b, op, [b.name(v) for v in op.operands])
        elif op.name.startswith("dataflow."):
            raise BackendError("dataflow ops are integer hardware kernels: compile them for a hardware target, "
                               "or leave lower-dataflow out of the pipeline for --target onnx")
        else:
            raise BackendError(f"op {op.name} has no ONNX export; use --target pytorch")
        for r, n in zip(op.results, outs):
            b.bind(r, n)
    _prune(b)
    graph = helper.make_graph(b.nodes, "masec", inputs, outputs, initializer=list(b.initializers.values()))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="masec")
    proto.ir_version = IR_VERSION
    fp32 = _fp32_weight_bytes(model)
    return proto, {"weight_bytes": b.initializer_bytes(), "fp32_weight_bytes": fp32, "opset": OPSET, "casts": counts}


def _prune(b: Builder) -> None:
    """Drop initializers no node reads (float scales folded into a stored weight, unused constants)."""
    used = {i for n in b.nodes for i in n.input}
    for name in [k for k in b.initializers if k not in used]:
        del b.initializers[name]


def _fp32_weight_bytes(model: Model) -> int:
    """Bytes of the model's float weights as float32 (quantization scales and zero points excluded)."""
    names: set[str] = set()
    scales: set[str] = set()
    for op in model.main.body.ops:
        if op.name == "graph.weight":
            names.add(op.properties["name"].data)
        elif op.name == "quant.cast":
            for p in op.operands[1:]:
                if getattr(p.owner, "name", None) == "graph.weight":
                    scales.add(p.owner.properties["name"].data)
    total = 0
    for n in names - scales:
        a = model.weights[n]
        total += a.size * 4 if np.issubdtype(a.dtype, np.floating) or a.dtype.kind == "V" else a.nbytes
    return total


def emit(model: Model, out: Path) -> dict[str, object]:
    """Write ``out/model.onnx`` and ``out/README.md``; returns files, weight bytes, fp32 weight bytes and opset."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    proto, facts = build(model)
    files = ["model.onnx"]
    external = int(facts["weight_bytes"]) > _PROTO_LIMIT
    if external:
        files.append("model.onnx.data")
    _atomic(out / "model.onnx", lambda tmp: onnx.save_model(
        proto, tmp, save_as_external_data=external, all_tensors_to_one_file=True, location="model.onnx.data"))
    try:  # by path: a model with external data is too large for an in-memory check
        onnx.checker.check_model(out / "model.onnx" if external else proto)
    except onnx.checker.ValidationError as e:
        raise BackendError(f"the emitted ONNX model does not verify: {str(e).splitlines()[0]}; use --target pytorch") from None
    _atomic(out / "README.md", lambda tmp: Path(tmp).write_text(_readme(facts)))
    files.append("README.md")
    return {"files": files, **facts}


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _readme(facts: Mapping[str, object]) -> str:
    casts = ", ".join(f"{v} {k}" for k, v in sorted(dict(facts["casts"]).items())) or "none"
    return (
        "# masec ONNX export\n\n"
        f"`model.onnx` is standard ONNX (opset {facts['opset']}) with QuantizeLinear/DequantizeLinear; "
        "run it with ONNX Runtime:\n\n"
        "```python\nimport onnxruntime as ort\n"
        "sess = ort.InferenceSession(\"model.onnx\", providers=[\"CPUExecutionProvider\"])\n"
        "outputs = sess.run(None, inputs)  # inputs: dict of numpy arrays keyed by input name\n```\n\n"
        f"Weights: {facts['weight_bytes']} bytes (float32 model: {facts['fp32_weight_bytes']} bytes).  "
        f"quant.cast exports: {casts} (dq: stored quantized, qdq: Q/DQ pair, decomposed: standard ops, "
        "float32: pre-quantized float values; see docs/backends.md of masec).\n"
    )


def run(out: Path, inputs: Mapping[str, np.ndarray], device: str = "cpu", fused: bool = False) -> dict[str, torch.Tensor]:
    """Run ``out/model.onnx`` with ONNX Runtime (CPU); outputs keyed by output name.

    ``fused=True`` lets ONNX Runtime fuse Q/DQ into its integer kernels (how a deployment
    runs it: faster, not bit-faithful to the graph); the default runs the graph as written.
    """
    import onnxruntime as ort

    if device != "cpu":
        raise BackendError(f"the ONNX backend runs on cpu, not {device!r}; use --target pytorch for {device}")
    path = Path(out) / "model.onnx"
    if not path.exists():
        raise BackendError(f"{path} does not exist; run masec compile --target onnx first")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # Basic optimizations (constant folding, no Q/DQ fusion) keep the float arithmetic of the graph as
    # written; the full level fuses DequantizeLinear+MatMul into ONNX Runtime's integer kernels
    # (MatMulNBits, MatMulIntegerToFloat), which requantize activations and differ by about one step.
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_ENABLE_ALL if fused else level.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {}
    for i in sess.get_inputs():
        if i.name not in inputs:
            raise BackendError(f"input {i.name!r} is missing; the model's inputs are {', '.join(x.name for x in sess.get_inputs())}")
        x = inputs[i.name]
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        want = _ORT_TYPES.get(i.type)
        feed[i.name] = x.astype(want) if want is not None and x.dtype != want else x
    names = [o.name for o in sess.get_outputs()]
    return {n: _to_torch(np.asarray(v)) for n, v in zip(names, sess.run(names, feed))}


def _to_torch(a: np.ndarray) -> torch.Tensor:
    """numpy -> torch, including the wide unsigned types torch.from_numpy refuses."""
    wide = {np.dtype(np.uint16): (np.int16, torch.uint16), np.dtype(np.uint32): (np.int32, torch.uint32),
            np.dtype(np.uint64): (np.int64, torch.uint64)}
    if a.dtype in wide:
        signed, dtype = wide[a.dtype]
        return torch.from_numpy(np.ascontiguousarray(a).view(signed)).view(dtype)
    return torch.from_numpy(a)


_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
