"""torch kernels for every graph and quant op: the reference semantics.

Each entry of :data:`KERNELS` is a factory ``(op, env) -> fn``; the factory reads
the op's static properties once and returns ``fn(*operands) -> result(s)``.
Semantics follow ONNX (the frontends' contract).  An op that is more than one
torch call has its body in :mod:`mase_compiler.torch_ops` (shared with the code
the PyTorch backend generates); its factory passes the properties to it.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from xdsl.dialects.builtin import DenseArrayBase, DenseIntOrFPElementsAttr, FloatAttr, IntegerAttr, StringAttr
from xdsl.ir import Operation

from .. import torch_ops as ops
from ..dialects.graph import shape_of
from ..numerics import DIntFormat, FixedFormat, IntFormat, MinifloatFormat, MXFormat
from .dtypes import torch_dtype

Kernel = Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]
Factory = Callable[[Operation, "KernelEnv"], Kernel]
KERNELS: dict[str, Factory] = {}


class KernelEnv:
    """What a kernel factory may need beyond the op: weights and the device."""

    def __init__(self, weights, device: torch.device):
        self.weights = weights
        self.device = device


def kernel(*names: str):
    def register(factory: Factory) -> Factory:
        for n in names:
            KERNELS[n] = factory
        return factory

    return register


def simple(name: str, fn: Callable[..., torch.Tensor]) -> None:
    KERNELS[name] = lambda op, env: fn


# ---- property access ---------------------------------------------------------------------------
def p_int(op: Operation, key: str, default: int | None = None) -> int | None:
    a = op.properties.get(key)
    return a.value.data if isinstance(a, IntegerAttr) else default


def p_ints(op: Operation, key: str) -> list[int] | None:
    a = op.properties.get(key)
    return list(a.get_values()) if isinstance(a, DenseArrayBase) else None


def p_float(op: Operation, key: str) -> float | None:
    a = op.properties.get(key)
    return a.value.data if isinstance(a, FloatAttr) else None


def p_str(op: Operation, key: str, default: str = "") -> str:
    a = op.properties.get(key)
    return a.data if isinstance(a, StringAttr) else default


def dense_to_tensor(attr: DenseIntOrFPElementsAttr) -> torch.Tensor:
    return ops.constant(list(attr.get_values()), tuple(attr.type.get_shape()), torch_dtype(attr.type))


# ---- elementwise ---------------------------------------------------------------------------------
for _name, _fn in {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt, "reciprocal": torch.reciprocal, "sin": torch.sin, "cos": torch.cos,
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "erf": torch.erf,
    "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "sign": torch.sign,
    "silu": F.silu, "softplus": F.softplus, "not": torch.logical_not, "isnan": torch.isnan,
    "isinf": torch.isinf, "add": torch.add, "sub": torch.sub, "mul": torch.mul,
    "max": torch.maximum, "min": torch.minimum, "and": torch.logical_and, "or": torch.logical_or,
    "xor": torch.logical_xor, "equal": torch.eq, "less": torch.lt, "less_equal": torch.le,
    "greater": torch.gt, "greater_equal": torch.ge, "where": torch.where, "matmul": torch.matmul,
}.items():
    simple(f"graph.{_name}", _fn)


simple("graph.div", ops.div)


@kernel("graph.mod")
def _mod(op, env):
    # fmod=1 (C fmod, sign of the dividend) is ONNX's only choice for floats.
    return torch.fmod if p_int(op, "fmod", 0) else torch.remainder


simple("graph.pow", ops.pow)


@kernel("graph.cast")
def _cast(op, env):
    dtype = torch_dtype(op.results[0].type)
    return lambda x: x.to(dtype)


@kernel("graph.gelu")
def _gelu(op, env):
    approx = p_str(op, "approximate", "none")
    return lambda x: F.gelu(x, approximate=approx)


@kernel("graph.leaky_relu")
def _leaky(op, env):
    alpha = p_float(op, "alpha")
    return lambda x: F.leaky_relu(x, alpha)


@kernel("graph.clip")
def _clip(op, env):
    lo, hi = p_float(op, "min"), p_float(op, "max")
    return lambda x: ops.clip(x, lo, hi)


# ---- neural-network ops --------------------------------------------------------------------------
def _split_pads(pads: list[int]) -> tuple[list[int], list[int]]:
    n = len(pads) // 2
    return pads[:n], pads[n:]


@kernel("graph.conv")
def _conv(op, env):
    strides, dil, group = p_ints(op, "strides"), p_ints(op, "dilations"), p_int(op, "group", 1)
    begin, end = _split_pads(p_ints(op, "pads"))
    return lambda x, w, b: ops.conv(x, w, b, strides, begin, end, dil, group)


@kernel("graph.max_pool")
def _max_pool(op, env):
    k, s, d = p_ints(op, "kernel_shape"), p_ints(op, "strides"), p_ints(op, "dilations")
    ceil = bool(p_int(op, "ceil_mode", 0))
    begin, end = _split_pads(p_ints(op, "pads"))
    return lambda x: ops.max_pool(x, k, s, begin, end, d, ceil)


@kernel("graph.avg_pool")
def _avg_pool(op, env):
    k, s = p_ints(op, "kernel_shape"), p_ints(op, "strides")
    ceil = bool(p_int(op, "ceil_mode", 0))
    include = bool(p_int(op, "count_include_pad", 0))
    begin, end = _split_pads(p_ints(op, "pads"))
    return lambda x: ops.avg_pool(x, k, s, begin, end, ceil, include)


@kernel("graph.batch_norm")
def _batch_norm(op, env):
    eps = p_float(op, "epsilon")
    return lambda x, scale, bias, mean, var: F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)


@kernel("graph.layer_norm")
def _layer_norm(op, env):
    axis, eps = p_int(op, "axis"), p_float(op, "epsilon")
    return lambda x, scale, bias: ops.layer_norm(x, scale, bias, axis, eps)


@kernel("graph.rms_norm")
def _rms_norm(op, env):
    axis, eps = p_int(op, "axis"), p_float(op, "epsilon")
    return lambda x, scale: ops.rms_norm(x, scale, axis, eps)


@kernel("graph.softmax", "graph.log_softmax")
def _softmax(op, env):
    axis = p_int(op, "axis")
    fn = torch.softmax if op.name == "graph.softmax" else torch.log_softmax
    return lambda x: fn(x, axis)


@kernel("graph.cumsum")
def _cumsum(op, env):
    axis, excl, rev = p_int(op, "axis"), bool(p_int(op, "exclusive", 0)), bool(p_int(op, "reverse", 0))
    return lambda x: ops.cumsum(x, axis, excl, rev)


@kernel("graph.flatten")
def _flatten(op, env):
    axis = p_int(op, "axis")
    return lambda x: ops.flatten(x, axis)


@kernel("graph.reduce_sum", "graph.reduce_mean", "graph.reduce_max", "graph.reduce_min", "graph.reduce_prod")
def _reduce(op, env):
    axes, keep = p_ints(op, "axes"), bool(p_int(op, "keepdims", 1))
    kind = op.name.removeprefix("graph.reduce_")
    return lambda x: ops.reduce(kind, x, axes, keep)


@kernel("graph.argmax", "graph.argmin")
def _arg(op, env):
    axis, keep, last = p_int(op, "axis"), bool(p_int(op, "keepdims", 1)), bool(p_int(op, "select_last_index", 0))
    kind = op.name.removeprefix("graph.arg")
    return lambda x: ops.arg(kind, x, axis, keep, last)


# ---- data movement -------------------------------------------------------------------------------
@kernel("graph.transpose")
def _transpose(op, env):
    perm = p_ints(op, "perm")
    return lambda x: x.permute(perm)


@kernel("graph.reshape")
def _reshape(op, env):
    allowzero = bool(p_int(op, "allowzero", 0))
    return lambda x, shape: ops.reshape(x, shape, allowzero)


simple("graph.expand", ops.expand)
simple("graph.tile", ops.tile)


@kernel("graph.squeeze")
def _squeeze(op, env):
    axes = p_ints(op, "axes")
    return lambda x: ops.squeeze(x, axes)


@kernel("graph.unsqueeze")
def _unsqueeze(op, env):
    axes = p_ints(op, "axes")
    return lambda x: ops.unsqueeze(x, axes)


@kernel("graph.concat")
def _concat(op, env):
    axis = p_int(op, "axis")
    return lambda *xs: torch.cat(xs, axis)


@kernel("graph.split")
def _split(op, env):
    axis, sizes = p_int(op, "axis"), p_ints(op, "sizes")
    return lambda x: tuple(torch.split(x, sizes, axis))


simple("graph.slice", ops.slice)


@kernel("graph.gather")
def _gather(op, env):
    axis = p_int(op, "axis")
    return lambda x, idx: ops.gather(x, idx, axis)


@kernel("graph.gather_elements")
def _gather_elements(op, env):
    axis = p_int(op, "axis")
    return lambda x, idx: ops.gather_elements(x, idx, axis)


@kernel("graph.gather_nd")
def _gather_nd(op, env):
    b = p_int(op, "batch_dims", 0)
    return lambda data, indices: ops.gather_nd(data, indices, b)


@kernel("graph.pad")
def _pad(op, env):
    mode = p_str(op, "mode", "constant")
    if mode not in ops.PAD_MODES:
        raise KeyError(mode)
    return lambda x, pads, value: ops.pad(x, pads, value, mode)


@kernel("graph.trilu")
def _trilu(op, env):
    upper = bool(p_int(op, "upper", 1))
    return lambda x, k: ops.trilu(x, k, upper)


@kernel("graph.resize")
def _resize(op, env):
    mode, ctm, nearest = p_str(op, "mode"), p_str(op, "coordinate_transformation_mode"), p_str(op, "nearest_mode")
    scales, sizes = op.properties.get("scales"), p_ints(op, "sizes")
    scales = list(scales.get_values()) if scales is not None else None
    if mode == "linear" and ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        raise NotImplementedError(f"resize linear with {ctm} is not supported")
    if mode not in ("nearest", "linear"):
        raise NotImplementedError(f"resize mode {mode} is not supported")
    return lambda x: ops.resize(x, mode, ctm, nearest, scales, sizes)


# ---- shape computation and values ----------------------------------------------------------------
@kernel("graph.shape")
def _shape(op, env):
    start, end = p_int(op, "start"), p_int(op, "end")
    return lambda x: ops.shape(x, start, end)


@kernel("graph.constant_of_shape")
def _constant_of_shape(op, env):
    value = dense_to_tensor(op.properties["value"]).reshape(())
    return lambda shape: ops.constant_of_shape(shape, value)


@kernel("graph.range")
def _range(op, env):
    dtype = torch_dtype(op.results[0].type)
    return lambda s, l, d: ops.range_(s, l, d, dtype)


@kernel("graph.constant")
def _constant(op, env):
    value = dense_to_tensor(op.properties["value"]).to(env.device)
    return lambda: value


@kernel("graph.weight")
def _weight(op, env):
    value = env.weights.tensor(op.properties["name"].data).to(env.device)
    expected = torch_dtype(op.results[0].type)
    if value.dtype != expected or tuple(value.shape) != shape_of(op.results[0].type):
        raise ValueError(
            f"weight {op.properties['name'].data!r} is {value.dtype}{list(value.shape)} in the weight store, "
            f"but the IR says {op.results[0].type}"
        )
    return lambda: value


@kernel("quant.cast")
def _quant_cast(op, env):
    fmt = op.properties["format"].format
    axis = p_int(op, "axis")

    def cast(x, *params):
        if isinstance(fmt, (IntFormat, DIntFormat)):
            return fmt.quantize(x, *params, axis=axis)
        if isinstance(fmt, MinifloatFormat):
            return fmt.quantize(x, *params)
        if isinstance(fmt, FixedFormat):
            return fmt.quantize(x)
        assert isinstance(fmt, MXFormat)
        return fmt.quantize(x, axis=axis)

    return cast
