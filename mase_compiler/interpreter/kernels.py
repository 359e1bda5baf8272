"""torch kernels for every graph and quant op: the reference semantics.

Each entry of :data:`KERNELS` is a factory ``(op, env) -> fn``; the factory reads
the op's static properties once and returns ``fn(*operands) -> result(s)``.
Semantics follow ONNX (the frontends' contract); where torch differs the kernel
says why.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from xdsl.dialects.builtin import DenseArrayBase, DenseIntOrFPElementsAttr, FloatAttr, IntegerAttr, StringAttr
from xdsl.ir import Operation

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
    dtype = torch_dtype(attr.type)
    shape = tuple(attr.type.get_shape())
    values = attr.get_values()
    t = torch.tensor(list(values), dtype=torch.float64 if dtype.is_floating_point else torch.int64)
    n = math.prod(shape)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    return t.to(dtype).reshape(shape)


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


@kernel("graph.div")
def _div(op, env):
    def div(a, b):
        if a.dtype.is_floating_point:
            return a / b
        return torch.div(a, b, rounding_mode="trunc")  # ONNX integer Div truncates (C semantics)

    return div


@kernel("graph.mod")
def _mod(op, env):
    # fmod=1 (C fmod, sign of the dividend) is ONNX's only choice for floats.
    return torch.fmod if p_int(op, "fmod", 0) else torch.remainder


@kernel("graph.pow")
def _pow(op, env):
    return lambda a, b: torch.pow(a, b.to(a.dtype) if a.dtype.is_floating_point else b).to(a.dtype)


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

    def clip(x):
        cast = (lambda v: v) if x.dtype.is_floating_point else (lambda v: None if v is None else int(v))
        return torch.clamp(x, cast(lo), cast(hi))

    return clip


# ---- neural-network ops --------------------------------------------------------------------------
def _split_pads(pads: list[int]) -> tuple[list[int], list[int]]:
    n = len(pads) // 2
    return pads[:n], pads[n:]


def _torch_pad(begin: list[int], end: list[int]) -> list[int]:
    """ONNX begin/end pads of the trailing dims -> F.pad's last-dim-first pairs."""
    out: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        out += [b, e]
    return out


@kernel("graph.conv")
def _conv(op, env):
    strides, dil, group = p_ints(op, "strides"), p_ints(op, "dilations"), p_int(op, "group", 1)
    begin, end = _split_pads(p_ints(op, "pads"))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

    def conv(x, w, b):
        padding: list[int] | int = begin
        if begin != end:
            x = F.pad(x, _torch_pad(begin, end))
            padding = 0
        return fn[x.dim() - 2](x, w, b, strides, padding, dil, group)

    return conv


@kernel("graph.max_pool")
def _max_pool(op, env):
    k, s, d = p_ints(op, "kernel_shape"), p_ints(op, "strides"), p_ints(op, "dilations")
    ceil = bool(p_int(op, "ceil_mode", 0))
    begin, end = _split_pads(p_ints(op, "pads"))
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}

    def pool(x):
        padding: list[int] | int = begin
        if begin != end or any(2 * p > kk for p, kk in zip(begin, k)):
            x = F.pad(x, _torch_pad(begin, end), value=-math.inf)
            padding = 0
        return fn[x.dim() - 2](x, k, s, padding, d, ceil_mode=ceil)

    return pool


@kernel("graph.avg_pool")
def _avg_pool(op, env):
    k, s = p_ints(op, "kernel_shape"), p_ints(op, "strides")
    ceil = bool(p_int(op, "ceil_mode", 0))
    include = bool(p_int(op, "count_include_pad", 0))
    begin, end = _split_pads(p_ints(op, "pads"))
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}

    def pool(x):
        f = fn[x.dim() - 2]
        if not any(begin) and not any(end):
            return f(x, k, s, 0, ceil_mode=ceil)
        xp = F.pad(x, _torch_pad(begin, end))
        total = f(xp, k, s, 0, ceil_mode=ceil)
        if include:
            return total
        # Divide by the number of real (unpadded) elements in each window.
        ones = F.pad(torch.ones_like(x[:1, :1]), _torch_pad(begin, end))
        return total / f(ones, k, s, 0, ceil_mode=ceil)

    return pool


@kernel("graph.batch_norm")
def _batch_norm(op, env):
    eps = p_float(op, "epsilon")
    return lambda x, scale, bias, mean, var: F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)


@kernel("graph.layer_norm")
def _layer_norm(op, env):
    axis, eps = p_int(op, "axis"), p_float(op, "epsilon")

    def ln(x, scale, bias):
        ax = axis % x.dim()
        shape = x.shape[ax:]
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if tuple(scale.shape) == tuple(shape) and tuple(bias.shape) == tuple(shape):
            y = F.layer_norm(xf, shape, scale.to(xf.dtype), bias.to(xf.dtype), eps)
        else:
            dims = tuple(range(ax, x.dim()))
            mean = xf.mean(dims, keepdim=True)
            var = (xf - mean).pow(2).mean(dims, keepdim=True)
            y = (xf - mean) / torch.sqrt(var + eps) * scale.to(xf.dtype) + bias.to(xf.dtype)
        return y.to(x.dtype)

    return ln


@kernel("graph.rms_norm")
def _rms_norm(op, env):
    axis, eps = p_int(op, "axis"), p_float(op, "epsilon")

    def rms(x, scale):
        dims = tuple(range(axis % x.dim(), x.dim()))
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        y = xf * torch.rsqrt(xf.pow(2).mean(dims, keepdim=True) + eps) * scale.to(xf.dtype)
        return y.to(x.dtype)

    return rms


@kernel("graph.softmax", "graph.log_softmax")
def _softmax(op, env):
    axis = p_int(op, "axis")
    fn = torch.softmax if op.name == "graph.softmax" else torch.log_softmax
    return lambda x: fn(x, axis)


@kernel("graph.cumsum")
def _cumsum(op, env):
    axis, excl, rev = p_int(op, "axis"), p_int(op, "exclusive", 0), p_int(op, "reverse", 0)

    def cumsum(x):
        y = x.flip(axis) if rev else x
        out = torch.cumsum(y, axis).to(x.dtype)
        if excl:
            out = out - y
        return out.flip(axis) if rev else out

    return cumsum


@kernel("graph.flatten")
def _flatten(op, env):
    axis = p_int(op, "axis")

    def flatten(x):
        ax = axis % x.dim() if axis < 0 else axis
        return x.reshape(math.prod(x.shape[:ax]), math.prod(x.shape[ax:]))

    return flatten


@kernel("graph.reduce_sum", "graph.reduce_mean", "graph.reduce_max", "graph.reduce_min", "graph.reduce_prod")
def _reduce(op, env):
    axes, keep = p_ints(op, "axes"), bool(p_int(op, "keepdims", 1))
    kind = op.name.removeprefix("graph.reduce_")

    def reduce(x):
        dims = tuple(a % x.dim() for a in axes) if axes else tuple(range(x.dim()))
        if not dims:
            return x.clone()
        if kind == "sum":
            return torch.sum(x, dims, keepdim=keep)
        if kind == "mean":
            return torch.mean(x if x.dtype.is_floating_point else x.double(), dims, keepdim=keep).to(x.dtype)
        if kind == "max":
            return torch.amax(x, dims, keepdim=keep)
        if kind == "min":
            return torch.amin(x, dims, keepdim=keep)
        out = x
        for d in sorted(dims, reverse=True):
            out = torch.prod(out, d, keepdim=keep)
        return out

    return reduce


@kernel("graph.argmax", "graph.argmin")
def _arg(op, env):
    axis, keep, last = p_int(op, "axis"), bool(p_int(op, "keepdims", 1)), p_int(op, "select_last_index", 0)
    fn = torch.argmax if op.name == "graph.argmax" else torch.argmin

    def arg(x):
        if not last:
            return fn(x, axis, keepdim=keep)
        n = x.shape[axis]
        return n - 1 - fn(x.flip(axis), axis, keepdim=keep)

    return arg


# ---- data movement -------------------------------------------------------------------------------
@kernel("graph.transpose")
def _transpose(op, env):
    perm = p_ints(op, "perm")
    return lambda x: x.permute(perm)


@kernel("graph.reshape")
def _reshape(op, env):
    allowzero = p_int(op, "allowzero", 0)

    def reshape(x, shape):
        dims = [int(v) for v in shape.tolist()]
        if not allowzero:
            dims = [x.shape[i] if v == 0 else v for i, v in enumerate(dims)]
        return x.reshape(dims)

    return reshape


@kernel("graph.expand")
def _expand(op, env):
    def expand(x, shape):
        target = torch.broadcast_shapes(tuple(x.shape), tuple(int(v) for v in shape.tolist()))
        return x.expand(target)

    return expand


simple("graph.tile", lambda x, repeats: x.repeat(*[int(v) for v in repeats.tolist()]))


@kernel("graph.squeeze")
def _squeeze(op, env):
    axes = p_ints(op, "axes")

    def squeeze(x):
        if not axes:
            return x.squeeze()
        return x.squeeze(tuple(a % x.dim() for a in axes))

    return squeeze


@kernel("graph.unsqueeze")
def _unsqueeze(op, env):
    axes = p_ints(op, "axes")

    def unsqueeze(x):
        rank = x.dim() + len(axes)
        for a in sorted(a % rank for a in axes):
            x = x.unsqueeze(a)
        return x

    return unsqueeze


@kernel("graph.concat")
def _concat(op, env):
    axis = p_int(op, "axis")
    return lambda *xs: torch.cat(xs, axis)


@kernel("graph.split")
def _split(op, env):
    axis, sizes = p_int(op, "axis"), p_ints(op, "sizes")
    return lambda x: tuple(torch.split(x, sizes, axis))


def _slice_axis(x: torch.Tensor, axis: int, start: int, end: int, step: int) -> torch.Tensor:
    """ONNX Slice on one axis (clamping rules of the spec)."""
    dim = x.shape[axis]
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        if step == 1:
            return x.narrow(axis, start, max(0, end - start))
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    idx = torch.arange(start, end, step, device=x.device)
    return x.index_select(axis, idx)


@kernel("graph.slice")
def _slice(op, env):
    def slice_(x, starts, ends, axes, steps):
        for s, e, a, st in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
            if st == 0:
                raise ValueError("slice step must not be 0")
            x = _slice_axis(x, a % x.dim(), int(s), int(e), int(st))
        return x

    return slice_


def _wrap(idx: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.where(idx < 0, idx + dim, idx)


@kernel("graph.gather")
def _gather(op, env):
    axis = p_int(op, "axis")

    def gather(x, idx):
        ax = axis % x.dim()
        flat = _wrap(idx.reshape(-1).long(), x.shape[ax])
        out = x.index_select(ax, flat)
        return out.reshape((*x.shape[:ax], *idx.shape, *x.shape[ax + 1:]))

    return gather


@kernel("graph.gather_elements")
def _gather_elements(op, env):
    axis = p_int(op, "axis")
    return lambda x, idx: torch.gather(x, axis, _wrap(idx.long(), x.shape[axis]))


@kernel("graph.gather_nd")
def _gather_nd(op, env):
    b = p_int(op, "batch_dims", 0)

    def gather_nd(data, indices):
        k = indices.shape[-1]
        batch = data.shape[:b]
        nb = math.prod(batch)
        d = data.reshape(nb, *data.shape[b:])
        ind = indices.long().reshape(nb, -1, k)
        dims = torch.tensor(data.shape[b:b + k], device=data.device)
        ind = torch.where(ind < 0, ind + dims, ind)
        bidx = torch.arange(nb, device=data.device)[:, None].expand(nb, ind.shape[1])
        out = d[(bidx, *ind.unbind(-1))]
        return out.reshape(*batch, *indices.shape[b:-1], *data.shape[b + k:])

    return gather_nd


@kernel("graph.pad")
def _pad(op, env):
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}[p_str(op, "mode", "constant")]

    def pad(x, pads, value):
        begin, end = _split_pads([int(v) for v in pads.tolist()])
        if mode == "constant":
            return F.pad(x, _torch_pad(begin, end), value=value.item() if value.numel() else 0)
        # torch pads only trailing dims in these modes: fold the unpadded leading dims into one batch dim.
        lead = next((i for i, (b, e) in enumerate(zip(begin, end)) if b or e), x.dim())
        if lead == x.dim():
            return x.clone()
        y = x.reshape((-1, *x.shape[lead:])) if lead > 0 else x.unsqueeze(0)
        y = F.pad(y, _torch_pad(begin[lead:], end[lead:]), mode=mode)
        return y.reshape((*x.shape[:lead], *y.shape[1:]))

    return pad


@kernel("graph.trilu")
def _trilu(op, env):
    upper = p_int(op, "upper", 1)
    return lambda x, k: (torch.triu if upper else torch.tril)(x, int(k.item()) if k.numel() else 0)


def _nearest_index(n_out: int, n_in: int, scale: float, ctm: str, rounding: str, device) -> torch.Tensor:
    """Source index of each output position of a nearest resize (ONNX Resize formulas)."""
    x = torch.arange(n_out, dtype=torch.float64, device=device)
    if ctm == "half_pixel":
        src = (x + 0.5) / scale - 0.5
    elif ctm == "pytorch_half_pixel":
        src = (x + 0.5) / scale - 0.5 if n_out > 1 else torch.zeros_like(x)
    elif ctm == "align_corners":
        src = x * (n_in - 1) / (n_out - 1) if n_out > 1 else torch.zeros_like(x)
    elif ctm == "asymmetric":
        src = x / scale
    else:
        raise NotImplementedError(f"resize coordinate_transformation_mode {ctm} is not supported")
    if rounding == "round_prefer_floor":
        idx = torch.where(src - torch.floor(src) == 0.5, torch.floor(src), torch.round(src))
    elif rounding == "round_prefer_ceil":
        idx = torch.floor(src + 0.5)
    elif rounding == "floor":
        idx = torch.floor(src)
    elif rounding == "ceil":
        idx = torch.ceil(src)
    else:
        raise NotImplementedError(f"resize nearest_mode {rounding} is not supported")
    return idx.clamp(0, n_in - 1).long()


@kernel("graph.resize")
def _resize(op, env):
    mode, ctm, nearest = p_str(op, "mode"), p_str(op, "coordinate_transformation_mode"), p_str(op, "nearest_mode")
    scales, sizes = op.properties.get("scales"), p_ints(op, "sizes")
    scales = list(scales.get_values()) if scales is not None else None
    if mode == "linear" and ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        raise NotImplementedError(f"resize linear with {ctm} is not supported")
    if mode not in ("nearest", "linear"):
        raise NotImplementedError(f"resize mode {mode} is not supported")

    def out_sizes(x):
        if sizes is not None:
            return list(sizes), [o / i for o, i in zip(sizes, x.shape)]
        return [int(math.floor(i * s)) for i, s in zip(x.shape, scales)], list(scales)

    def resize(x):
        n_out, sc = out_sizes(x)
        if mode == "nearest":
            for d in range(2, x.dim()):
                x = x.index_select(d, _nearest_index(n_out[d], x.shape[d], sc[d], ctm, nearest, x.device))
            return x
        m = {1: "linear", 2: "bilinear", 3: "trilinear"}[x.dim() - 2]
        if sizes is None and ctm != "align_corners":
            # ONNX maps coordinates with the given scale, not the size ratio it rounds to.
            return F.interpolate(x, scale_factor=sc[2:], mode=m, align_corners=False, recompute_scale_factor=False)
        return F.interpolate(x, size=n_out[2:], mode=m, align_corners=ctm == "align_corners")

    return resize


# ---- shape computation and values ----------------------------------------------------------------
@kernel("graph.shape")
def _shape(op, env):
    start, end = p_int(op, "start"), p_int(op, "end")
    return lambda x: torch.tensor(x.shape, dtype=torch.int64, device=x.device)[start:end]


@kernel("graph.constant_of_shape")
def _constant_of_shape(op, env):
    value = dense_to_tensor(op.properties["value"]).reshape(())

    def cos(shape):
        return torch.full([int(v) for v in shape.tolist()], value.item(), dtype=value.dtype, device=shape.device)

    return cos


@kernel("graph.range")
def _range(op, env):
    dtype = torch_dtype(op.results[0].type)
    return lambda s, l, d: torch.arange(s.item(), l.item(), d.item(), dtype=dtype, device=s.device)


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
