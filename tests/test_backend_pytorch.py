"""The PyTorch backend: emitted model.py is bit-exact with the reference interpreter.

Oracle: ``mase_compiler.interpreter.run`` on the same IR.  FP32 zoo models, the
same models with quant.cast inserted by a small helper of this file (int8, int4
groups, fp8, mxfp4, mxint8, dint4), single ONNX ops that the zoo does not use,
packed weight sizes, and a standalone run of model.py in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from safetensors import safe_open
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, IntegerAttr, StringAttr, f32, i64
from xdsl.ir import Operation, SSAValue

from mase_compiler import zoo
from mase_compiler.backends import BackendError
from mase_compiler.backends import pytorch as pt
from mase_compiler.backends.pytorch import runtime as rt
from mase_compiler.backends.pytorch._codegen import GENERATORS
from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp, format_attr
from mase_compiler.driver import import_model
from mase_compiler.frontends.onnx import import_onnx
from mase_compiler.interpreter import run as interpret
from mase_compiler.interpreter.dtypes import element_type_of
from mase_compiler.interpreter.kernels import KERNELS
from mase_compiler.model import Model
from mase_compiler.numerics import DIntFormat, IntFormat, MinifloatFormat, MXFormat, parse

ZOO = ("bert", "gpt2", "llama", "vit", "cnn")


def assert_same(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype and got[k].shape == ref[k].shape, k
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{k}: {m}")


def emit_and_check(model: Model, out: Path, *inputs: dict[str, np.ndarray]) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    info = pt.emit(model, out)
    for feed in inputs:
        assert_same(interpret(model, feed), pt.run(out, feed))
    return info


@pytest.fixture(scope="module")
def zoo_models(zoo_dir) -> dict[str, tuple[Path, dict[str, np.ndarray]]]:
    return {n: (z.path, z.inputs) for n in ZOO for z in [zoo.export(n, "dynamo", cache_dir=zoo_dir)]}


def second_inputs(name: str) -> dict[str, np.ndarray]:
    return zoo.inputs(name, seed=1, batch=3, seq=5)


# ---- registry -------------------------------------------------------------------------------------
def test_every_interpreter_kernel_has_a_code_generator():
    # dataflow.* kernels are integer hardware kernels: the sv/hls backends emit them, not this one.
    assert sorted(k for k in set(KERNELS) - set(GENERATORS) if not k.startswith("dataflow.")) == []


def test_ir_without_a_generator_is_a_one_line_backend_error(zoo_models, tmp_path, monkeypatch):
    model = import_model(zoo_models["bert"][0])
    monkeypatch.delitem(GENERATORS, "graph.erf")
    with pytest.raises(BackendError) as e:
        pt.emit(model, tmp_path)
    assert str(e.value) == "the pytorch backend has no code generator for graph.erf; run a pass that lowers it first"


# ---- FP32 zoo models ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO)
def test_fp32_zoo_model_is_bit_exact(name, zoo_models, tmp_path):
    path, inputs = zoo_models[name]
    model = import_model(path)
    info = emit_and_check(model, tmp_path, inputs, second_inputs(name))
    assert sorted(Path(f).name for f in info["files"]) == ["README.md", "model.py", "weights.safetensors"]
    # Float weights are stored as they are: the file is the FP32 weights plus a small header.
    assert info["fp32_weight_bytes"] <= info["weight_bytes"] < info["fp32_weight_bytes"] + 16384


def test_model_py_is_readable(zoo_models, tmp_path):
    pt.emit(import_model(zoo_models["gpt2"][0]), tmp_path)
    src = (tmp_path / "model.py").read_text()
    assert "def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:" in src
    assert "= torch.matmul(" in src and "# inner.h.0.attn.c_attn/addmm" in src
    assert "return {'last_hidden_state': " in src
    assert "weights['inner.h.0.attn.c_attn.weight']" in src
    imports = {ln for ln in src.splitlines() if ln.startswith(("import ", "from "))}
    assert imports == {"from __future__ import annotations", "from pathlib import Path", "import torch",
                       "import torch.nn.functional as F", "from mase_compiler.backends.pytorch import runtime as rt",
                       "from mase_compiler.numerics import parse"}


# ---- quantized variants ---------------------------------------------------------------------------
# variant -> (weight format, activation format or None, activation mode: "static" | "dynamic" | None)
VARIANTS = {
    "int8": ("int8:channel", "int8", "static"),
    "int4g32": ("int4:group=32", "int8:token", "dynamic"),
    "fp8": ("fp8_e4m3", "fp8_e4m3", "static"),
    "mxfp4": ("mxfp4", "mxfp4", "dynamic"),
    "mxint8": ("mxint8", "mxint8", "dynamic"),
    "dint4": ("dint4:channel", "int8", "static"),
    "asym": ("int8:channel:asym", "fixed8:frac=4", "dynamic"),  # zero points; a fixed-point activation
    "bf16": ("bf16", "fp6_e2m3", "dynamic"),  # minifloats without scales
}


def _weight_source(v: SSAValue) -> tuple[Operation, list[int]] | None:
    """The graph.weight behind a matmul/conv operand (directly or through one transpose) and the permutation."""
    op = v.owner
    if isinstance(op, Operation) and op.name == "graph.transpose":
        src = op.operands[0].owner
        if isinstance(src, Operation) and src.name == "graph.weight":
            return src, list(op.properties["perm"].get_values())
    if isinstance(op, Operation) and op.name == "graph.weight":
        return op, list(range(len(g.shape_of(v.type))))
    return None


def quantize_ir(model: Model, wspec: str, aspec: str | None, mode: str | None, calib: dict[str, np.ndarray]) -> Model:
    """Insert quant.cast in front of every graph.matmul/graph.conv operand, as docs/quantized-ir.md describes."""
    amax: dict[SSAValue, float] = {}

    def observe(op, operands, results):
        if op.name in ("graph.matmul", "graph.conv"):
            for v, t in zip(op.operands, operands):
                amax[v] = max(amax.get(v, 0.0), float(t.abs().max()))

    interpret(model, calib, observe=observe)
    wfmt = parse(wspec)
    block = model.main.body.block
    casted: dict[SSAValue, SSAValue] = {}
    for op in [o for o in model.main.body.ops if o.name in ("graph.matmul", "graph.conv")]:
        new = list(op.operands)
        for i, v in enumerate(op.operands[:2]):
            src = _weight_source(v)
            if src is not None:
                w_op, perm = src
                # out channel: last dim of a matmul rhs, dim 0 of a conv weight; reduction (K) dim: the other one
                out_dim = perm[-1] if op.name == "graph.matmul" else 0
                k_dim = perm[-2] if op.name == "graph.matmul" else 1
                w_val = w_op.results[0]
                if w_val not in casted:
                    casted[w_val] = _cast_weight(model, block, w_op, wfmt, out_dim, k_dim)
                if v is w_val:
                    new[i] = casted[w_val]
                else:  # re-point the transpose at the cast weight
                    v.owner.operands = [casted[w_val]]
            elif aspec is not None and v in amax:
                new[i] = _cast_activation(block, op, v, parse(aspec), mode, amax[v])
        op.operands = new
    model.verify()
    return model


def _cast_weight(model, block, w_op, fmt, out_dim, k_dim) -> SSAValue:
    name = w_op.properties["name"].data
    w = model.weights.tensor(name)
    axis = None
    params = []
    if isinstance(fmt, (IntFormat, DIntFormat)):
        axis = k_dim if fmt.granularity == "group" else out_dim
        scale, zero_point = fmt.compute_scale(w, axis)
        params = [scale] if zero_point is None else [scale, zero_point]
    elif isinstance(fmt, MinifloatFormat) and fmt.max_value < 1e4:
        params = [(w.abs().max() / fmt.max_value).to(torch.float32).reshape(())]
    elif isinstance(fmt, MXFormat):
        axis = k_dim
    ops = []
    operands = [w_op.results[0]]
    for suffix, p in zip((".scale", ".zero_point"), params):
        model.weights[name + suffix] = p.numpy()
        ttype = g.tensor_type(element_type_of(p.dtype), tuple(p.shape))
        s_op = g.WeightOp.create(properties={"name": StringAttr(name + suffix)}, result_types=[ttype])
        ops.append(s_op)
        operands.append(s_op.results[0])
    props = {"format": format_attr(str(fmt))}
    if axis is not None:
        props["axis"] = IntegerAttr(axis, i64)
    cast = CastOp.create(operands=operands, result_types=[w_op.results[0].type], properties=props)
    block.insert_ops_after([*ops, cast], w_op)
    return cast.results[0]


def _cast_activation(block, op, v, fmt, mode, amax) -> SSAValue:
    ops, operands, props = [], [v], {"format": format_attr(str(fmt))}
    if mode == "static":
        grid_max = fmt.max_value if isinstance(fmt, MinifloatFormat) else fmt.grid_bounds()[1]
        scale = np.float32(amax / grid_max)
        ttype = g.tensor_type(f32, ())
        c = g.ConstantOp.create(properties={"value": DenseIntOrFPElementsAttr.from_list(ttype, [float(scale)])}, result_types=[ttype])
        ops.append(c)
        operands.append(c.results[0])
    elif isinstance(fmt, MXFormat):
        props["axis"] = IntegerAttr(-1 if v is op.operands[0] else -2, i64)  # along the reduction dim of the matmul
    cast = CastOp.create(operands=operands, result_types=[v.type], properties=props)
    block.insert_ops_before([*ops, cast], op)
    return cast.results[0]


# every variant on a transformer (llama) and the CNN (conv weights), a few more models once each
QUANT_CASES = [(m, v) for m in ("llama", "cnn") for v in VARIANTS] + [("bert", "int8"), ("gpt2", "mxfp4"), ("vit", "fp8")]


def _is_weight_cast(op: Operation) -> bool:
    src = op.operands[0].owner if op.operands else None
    return op.name == "quant.cast" and isinstance(src, Operation) and src.name == "graph.weight"


@pytest.mark.parametrize("name, variant", QUANT_CASES)
def test_quantized_model_is_bit_exact(name, variant, zoo_models, tmp_path):
    path, inputs = zoo_models[name]
    wspec, aspec, mode = VARIANTS[variant]
    model = quantize_ir(import_model(path), wspec, aspec, mode, inputs)
    fp32 = interpret(import_model(path), inputs)
    info = emit_and_check(model, tmp_path, inputs, second_inputs(name))
    ref = interpret(model, inputs)
    k = next(iter(ref))
    assert not torch.equal(ref[k], fp32[k])  # the casts did something
    n_weights = sum(1 for op in model.main.body.ops if _is_weight_cast(op))
    assert info["packed_weights"] == n_weights > 0
    if name != "cnn":  # the CNN's 5 KB of weights are smaller than the packed entries' metadata header
        assert info["weight_bytes"] < info["fp32_weight_bytes"]


def _packed_entries(path: Path) -> tuple[dict[str, dict], dict[str, int]]:
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[rt.PACKED_KEY])
        sizes = {k: f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in f.keys()}
    return meta, sizes


@pytest.mark.parametrize("variant, bits", [("mxfp4", 4.25), ("int8", 8.0), ("int4g32", 5.0), ("fp8", 8.0), ("mxint8", 8.25),
                                           ("dint4", 4.0), ("asym", 8.0), ("bf16", 16.0)])
def test_packed_weights_take_their_bit_width(variant, bits, zoo_models, tmp_path):
    path, inputs = zoo_models["llama"]
    model = quantize_ir(import_model(path), *VARIANTS[variant], inputs)
    pt.emit(model, tmp_path)
    meta, sizes = _packed_entries(tmp_path / pt.WEIGHTS_FILE)
    packed = sum(v for k, v in sizes.items() if any(k.startswith(p + ".") for p in meta))
    numel = sum(int(np.prod(m["shape"])) for m in meta.values())
    # Only the element codes and shared scales: per-channel scales and zero points add 2 x 32 bits per output channel.
    assert bits * numel / 8 <= packed <= (bits * numel / 8) * 1.1 + 8 * 64 * len(meta)
    # No FP32 copy of a packed weight (nor of its scale) is stored.
    weight_names = {m.removesuffix(f"@{meta[m]['format']}").split("@")[0] for m in meta}
    assert not weight_names & set(sizes)
    assert not {n + s for n in weight_names for s in (".scale", ".zero_point")} & set(sizes)


def test_mxfp4_weights_file_shrinks_in_proportion(zoo_models, tmp_path):
    path, inputs = zoo_models["llama"]
    for d in ("fp32", "mx"):
        (tmp_path / d).mkdir()
    fp32 = pt.emit(import_model(path), tmp_path / "fp32")
    mx = pt.emit(quantize_ir(import_model(path), *VARIANTS["mxfp4"], inputs), tmp_path / "mx")
    meta, _ = _packed_entries(tmp_path / "mx" / pt.WEIGHTS_FILE)
    quantized_fp32 = 4 * sum(int(np.prod(m["shape"])) for m in meta.values())
    saved = fp32["weight_bytes"] - mx["weight_bytes"]
    # every quantized matrix shrinks to 4.25/32 of its FP32 bytes (header growth is < 4 KB)
    assert abs(saved - quantized_fp32 * (1 - 4.25 / 32)) < 4096


@pytest.mark.parametrize("variant", VARIANTS)
def test_load_time_decode_equals_quantize(variant, zoo_models, tmp_path):
    path, inputs = zoo_models["cnn"]
    model = quantize_ir(import_model(path), *VARIANTS[variant], inputs)
    pt.emit(model, tmp_path)
    loaded = rt.load_weights(tmp_path / pt.WEIGHTS_FILE)
    meta, _ = _packed_entries(tmp_path / pt.WEIGHTS_FILE)
    casts = [op for op in model.main.body.ops if _is_weight_cast(op)]
    assert len(casts) == len(meta)
    for op in casts:
        fmt = op.properties["format"].format
        axis = op.properties["axis"].value.data if "axis" in op.properties else None
        wname = op.operands[0].owner.properties["name"].data
        w = model.weights.tensor(wname)
        params = [model.weights.tensor(p.owner.properties["name"].data) for p in op.operands[1:]]
        ref = fmt.quantize(w, axis=axis) if isinstance(fmt, MXFormat) else (
            fmt.quantize(w, *params) if isinstance(fmt, MinifloatFormat) else fmt.quantize(w, *params, axis=axis))
        key = f"{wname}@{fmt}" + (f"@axis={axis}" if axis is not None else "")
        assert torch.equal(loaded[key], ref)


def test_weight_that_cannot_be_packed_is_cast_in_code(zoo_models, tmp_path):
    """int8 has no NaN code: a weight holding NaN stays float and its cast runs in forward, still exact."""
    path, inputs = zoo_models["cnn"]
    model = quantize_ir(import_model(path), *VARIANTS["int8"], inputs)
    casts = [op for op in model.main.body.ops if _is_weight_cast(op)]
    wname = casts[0].operands[0].owner.properties["name"].data
    w = model.weights[wname].copy()
    w.flat[0] = np.nan
    model.weights[wname] = w
    info = emit_and_check(model, tmp_path, inputs)
    assert info["packed_weights"] == len(casts) - 1
    assert f"weights[{wname!r}]" in (tmp_path / "model.py").read_text()


# ---- single ops the zoo models do not use --------------------------------------------------------
_NP = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64, np.dtype(np.bool_): TensorProto.BOOL}
_rng = np.random.default_rng(0)


def _randn(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def _i64(*v):
    return np.array(v, np.int64)


OP_CASES = [
    ("Trilu", {"x": _randn(2, 4, 5)}, {"upper": 0}, {"k": np.int64(-1)}, 18),
    ("Trilu", {"x": _randn(2, 4, 5), "k": np.array(2, np.int64)}, {}, {}, 18),
    ("Resize", {"x": _randn(1, 2, 3, 4), "roi": None}, {"mode": "linear"}, {"scales": np.float32([1, 1, 2, 1.5])}, 18),
    ("Resize", {"x": _randn(1, 2, 3, 4), "roi": None, "scales": None},
     {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, {"sizes": _i64(1, 2, 5, 7)}, 18),
    ("Resize", {"x": _randn(1, 2, 3, 4), "roi": None}, {"mode": "nearest"}, {"scales": np.float32([1, 1, 2, 3])}, 18),
    ("Pad", {"x": _randn(2, 3, 4)}, {"mode": "reflect"}, {"p": _i64(0, 0, 1, 0, 0, 2)}, 18),
    ("Pad", {"x": _randn(2, 3, 4)}, {"mode": "edge"}, {"p": _i64(1, 0, 0, 0, 0, 2)}, 18),
    ("Pad", {"x": _randn(2, 3, 4)}, {}, {"p": _i64(0, 1, 2, 0, 2, 1), "v": np.float32(1.5)}, 13),
    ("CumSum", {"x": _randn(3, 4)}, {"exclusive": 1, "reverse": 1}, {"a": np.int64(1)}, 18),
    ("ArgMax", {"x": np.float32([[1, 3, 3], [2, 2, 0]])}, {"axis": 1, "select_last_index": 1}, {}, 18),
    ("ArgMin", {"x": _randn(3, 4)}, {"axis": 0, "keepdims": 0}, {}, 18),
    ("GatherElements", {"x": _randn(5, 4, 3), "i": _rng.integers(-4, 4, (5, 2, 3))}, {"axis": 1}, {}, 18),
    ("GatherND", {"x": _randn(5, 4, 3), "i": _i64(1, 3, 0, 2, 2).reshape(5, 1)}, {"batch_dims": 1}, {}, 18),
    ("Tile", {"x": _randn(2, 3)}, {}, {"r": _i64(2, 1)}, 18),
    ("Mod", {"a": _i64(7, -7, 5), "b": _i64(3, 3, -2)}, {}, {}, 18),
    ("Mod", {"a": _randn(4), "b": np.float32([1.5, -2, 0.7, 3])}, {"fmod": 1}, {}, 18),
    ("Div", {"a": _i64(7, -7, 5), "b": _i64(2, 2, -3)}, {}, {}, 18),
    ("Pow", {"a": np.abs(_randn(4)) + 0.1, "b": _randn(4)}, {}, {}, 18),
    ("Clip", {"x": _i64(-5, 0, 9)}, {}, {"lo": np.int64(-2), "hi": np.int64(4)}, 18),
    ("LeakyRelu", {"x": _randn(3, 4)}, {"alpha": 0.2}, {}, 18),
    ("Flatten", {"x": _randn(2, 3, 4)}, {"axis": -1}, {}, 18),
    ("ReduceProd", {"x": _randn(2, 3, 4)}, {"keepdims": 0}, {"axes": _i64(0, 2)}, 18),
    ("ReduceMax", {"x": _randn(2, 3, 4)}, {}, {"axes": _i64(1)}, 18),
    ("ReduceMin", {"x": _randn(2, 3, 4)}, {}, {}, 18),
    ("ReduceSum", {"x": _i64(1, 2, 3, 4).reshape(2, 2)}, {}, {"axes": _i64(1)}, 18),
    ("ConstantOfShape", {"s": _i64(2, 3)}, {"value": onnx.numpy_helper.from_array(np.array([7], np.int64))}, {}, 18),
    ("Range", {"a": np.array(0.5, np.float32), "b": np.array(-2, np.float32), "d": np.array(-0.75, np.float32)}, {}, {}, 18),
    ("Slice", {"x": _randn(5, 6, 7)}, {}, {"s": _i64(-1), "e": _i64(-100), "a": _i64(2), "st": _i64(-2)}, 18),
    ("MaxPool", {"x": _randn(1, 2, 6, 6)}, {"kernel_shape": [3, 3], "pads": [0, 1, 1, 0], "strides": [2, 2]}, {}, 18),
    ("AveragePool", {"x": _randn(1, 2, 5, 5)}, {"kernel_shape": [3, 3], "pads": [1, 1, 0, 0], "count_include_pad": 1}, {}, 18),
    ("Conv", {"x": _randn(1, 2, 5, 5)}, {"pads": [0, 1, 1, 0], "group": 2}, {"w": _randn(4, 1, 3, 3), "b": _randn(4)}, 18),
    ("Conv", {"x": _randn(1, 2, 7)}, {"strides": [2], "dilations": [2]}, {"w": _randn(3, 2, 2)}, 18),
    ("LogSoftmax", {"x": _randn(2, 5)}, {"axis": 0}, {}, 18),
    ("RMSNormalization", {"x": _randn(2, 3, 4)}, {"axis": -1, "epsilon": 1e-5}, {"s": _randn(4)}, 23),
    ("LayerNormalization", {"x": _randn(2, 3, 4)}, {"axis": 1}, {"s": _randn(3, 4), "b": _randn(3, 4)}, 18),
    ("Gelu", {"x": _randn(8)}, {"approximate": "tanh"}, {}, 20),
    ("IsNaN", {"x": np.float32([1, np.nan, np.inf])}, {}, {}, 18),
    ("IsInf", {"x": np.float32([1, np.nan, -np.inf])}, {}, {}, 18),
    ("Sign", {"x": _randn(5)}, {}, {}, 18),
    ("Softplus", {"x": _randn(5)}, {}, {}, 18),
    ("Xor", {"a": np.array([True, False, True]), "b": np.array([True, True, False])}, {}, {}, 18),
    ("Not", {"a": np.array([True, False])}, {}, {}, 18),
    ("Split", {"x": _randn(2, 7)}, {"axis": 1}, {"split": _i64(2, 4, 1)}, 18),
    ("Expand", {"x": _randn(3, 1)}, {}, {"s": _i64(2, 3, 4)}, 18),
    ("Swish", {"x": _randn(6)}, {}, {}, 24),
    ("Equal", {"a": _i64(1, 2, 3), "b": _i64(1, 0, 3)}, {}, {}, 18),
    ("Constant", {}, {"value": onnx.numpy_helper.from_array(_randn(5, 5))}, {}, 18),
]


def _op_model(op_type, inputs, attrs, consts, opset) -> onnx.ModelProto:
    n_out = 3 if op_type == "Split" else 1
    names = list(inputs) + [n for n in consts if n not in inputs]
    node = helper.make_node(op_type, [n if (inputs.get(n) is not None or n in consts) else "" for n in names],
                            [f"y{i}" for i in range(n_out)], name="the_node", **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, _NP[v.dtype], ["d%d" % i for i in range(v.ndim)])
                    for n, v in inputs.items() if v is not None and n not in consts]
    inits = [onnx.numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items()]
    outs = [helper.make_empty_tensor_value_info(f"y{i}") for i in range(n_out)]
    return helper.make_model(helper.make_graph([node], "g", graph_inputs, outs, inits), opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("case", OP_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(OP_CASES)])
def test_single_op_is_bit_exact(case, tmp_path):
    op_type, inputs, attrs, consts, opset = case
    model = import_onnx(_op_model(op_type, inputs, attrs, consts, opset))
    feeds = {n: v for n, v in inputs.items() if v is not None and n not in consts}
    emit_and_check(model, tmp_path, feeds)


def test_generated_names_are_identifiers(tmp_path):
    """Input names that are not Python identifiers are sanitized; outputs keep their names."""
    node = helper.make_node("Relu", ["in.put-1"], ["class"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("in.put-1", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("class", TensorProto.FLOAT, [2])])
    model = import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    emit_and_check(model, tmp_path, {"in.put-1": np.float32([-1, 2])})
    assert "def forward(self, in_put_1: torch.Tensor)" in (tmp_path / "model.py").read_text()


# ---- standalone model.py ----------------------------------------------------------------------------
def test_model_py_runs_standalone_without_xdsl(zoo_models, tmp_path):
    path, inputs = zoo_models["llama"]
    model = quantize_ir(import_model(path), *VARIANTS["int4g32"], inputs)
    out = tmp_path / "out"
    out.mkdir()
    pt.emit(model, out)
    np.savez(tmp_path / "in.npz", **inputs)
    ref = interpret(model, inputs)["last_hidden_state"]
    code = (
        "import sys, numpy as np, torch; sys.path.insert(0, sys.argv[1]); import model; "
        "m = model.load(); d = np.load(sys.argv[2]); "
        "y = m(*[torch.from_numpy(d[n]) for n in model.INPUTS])['last_hidden_state']; "
        "torch.save(y, sys.argv[3]); "
        "assert not any(k.startswith('xdsl') for k in sys.modules), 'model.py imported xDSL'"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "in.npz"), str(tmp_path / "y.pt")],
                   check=True, cwd=tmp_path, env=env, timeout=120)
    assert torch.equal(torch.load(tmp_path / "y.pt"), ref)


# ---- CUDA FP8 fast path -------------------------------------------------------------------------------
def test_fp8_fast_path_is_emitted_and_cpu_stays_exact(zoo_models, tmp_path):
    path, inputs = zoo_models["llama"]
    model = quantize_ir(import_model(path), *VARIANTS["fp8"], inputs)
    info = emit_and_check(model, tmp_path, inputs)
    assert info["fp8_fast_matmuls"] > 0
    assert "rt.fp8_matmul(" in (tmp_path / "model.py").read_text()
    assert "not bit-exact" in (tmp_path / "README.md").read_text()


def test_fp8_fast_path_code_runs_where_scaled_mm_does(zoo_models, tmp_path, monkeypatch):
    """The generated fast-path branch and its FP8 weights, forced on CPU (torch._scaled_mm has a CPU kernel)."""
    path, inputs = zoo_models["llama"]
    model = quantize_ir(import_model(path), *VARIANTS["fp8"], inputs)
    pt.emit(model, tmp_path)
    calls = []

    def fast(x, w):
        calls.append(tuple(w.shape))
        return x.shape[-1] % 16 == 0 and w.shape[0] % 16 == 0

    monkeypatch.setattr(rt, "fp8_fast", fast)
    got = pt.run(tmp_path, inputs)["last_hidden_state"]
    ref = interpret(model, inputs)["last_hidden_state"]
    assert len(calls) == 14  # q, k, v, o, gate, up, down of two layers
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4), (got - ref).abs().max()


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref.double()).norm() / ref.double().norm())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the FP8 fast path needs CUDA")
def test_fp8_fast_path_on_cuda_is_close_to_emulation(zoo_models, tmp_path):
    path, inputs = zoo_models["llama"]
    model = quantize_ir(import_model(path), *VARIANTS["fp8"], inputs)
    pt.emit(model, tmp_path)
    ref = pt.run(tmp_path, inputs)["last_hidden_state"]
    got = pt.run(tmp_path, inputs, device="cuda")["last_hidden_state"].cpu()
    # Different accumulation can flip an FP8 rounding downstream: compare in norm, not element by element.
    assert _rel_err(got, ref) < 2e-2
    # the fast path itself, on one matmul
    x = torch.randn(5, 7, 64, device="cuda")
    w = torch.randn(64, 32)
    fmt = parse("fp8_e4m3")
    sx, sw = (x.abs().max() / 448).float().cpu(), (w.abs().max() / 448).float()
    emulated = torch.matmul(fmt.quantize(x.cpu(), sx), fmt.quantize(w, sw))
    wq = (fmt.quantize(w, sw) / sw).to(torch.float8_e4m3fn).t().contiguous().cuda()
    assert rt.fp8_fast(x, wq)
    fast = rt.fp8_matmul(x, sx.cuda(), wq, sw.cuda()).cpu()
    assert _rel_err(fast, emulated) < 1e-3
