"""The semantics of every graph op as plain torch functions, shared by the reference interpreter and the code the PyTorch backend generates; ONNX semantics where torch differs.

Each function takes the op's operands and then its static properties as plain
Python values (lists, ints, bools, strings), so the interpreter's kernels
(``mase_compiler/interpreter/kernels.py``, which read the properties from the IR
once) and an emitted ``model.py`` (``rt.<name>(...)`` with the properties written
out as literals, through ``backends/pytorch/runtime.py``) run the same torch calls
in the same order and agree bit for bit.  Ops that are one torch call
(``torch.add``, ``F.gelu``, ...) have no function here.

It imports only torch and math (no xDSL), so an emitted model runs wherever torch
is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


# ---- values ----------------------------------------------------------------------------------------
def constant(values: list, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A ``graph.constant`` value (a splat when one value fills a larger shape), built as the interpreter builds it."""
    t = torch.tensor(values, dtype=torch.float64 if dtype.is_floating_point else torch.int64)
    n = math.prod(shape)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    return t.to(dtype).reshape(tuple(shape))


# ---- elementwise -----------------------------------------------------------------------------------
def clip(x: torch.Tensor, lo: float | None, hi: float | None) -> torch.Tensor:
    if not x.dtype.is_floating_point:
        lo, hi = (None if lo is None else int(lo)), (None if hi is None else int(hi))
    return torch.clamp(x, lo, hi)


def div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ONNX Div: true division for floats, truncating for integers (C semantics)."""
    if a.dtype.is_floating_point:
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def pow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: A001  (the op's name)
    return torch.pow(a, b.to(a.dtype) if a.dtype.is_floating_point else b).to(a.dtype)


# ---- neural-network ops ----------------------------------------------------------------------------
def _torch_pad(begin: Sequence[int], end: Sequence[int]) -> list[int]:
    """ONNX begin/end pads of the trailing dims -> F.pad's last-dim-first pairs."""
    out: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        out += [b, e]
    return out


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def conv(x, w, b, strides, begin, end, dilations, group: int) -> torch.Tensor:
    """ONNX Conv; asymmetric pads are applied with F.pad first."""
    padding: list[int] | int = list(begin)
    if list(begin) != list(end):
        x = F.pad(x, _torch_pad(begin, end))
        padding = 0
    return _CONV[x.dim() - 2](x, w, b, list(strides), padding, list(dilations), group)


def max_pool(x, kernel, strides, begin, end, dilations, ceil_mode: bool) -> torch.Tensor:
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[x.dim() - 2]
    padding: list[int] | int = list(begin)
    if list(begin) != list(end) or any(2 * p > k for p, k in zip(begin, kernel)):
        x = F.pad(x, _torch_pad(begin, end), value=-math.inf)
        padding = 0
    return fn(x, list(kernel), list(strides), padding, list(dilations), ceil_mode=ceil_mode)


def avg_pool(x, kernel, strides, begin, end, ceil_mode: bool, count_include_pad: bool) -> torch.Tensor:
    f = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[x.dim() - 2]
    kernel, strides = list(kernel), list(strides)
    if not any(begin) and not any(end):
        return f(x, kernel, strides, 0, ceil_mode=ceil_mode)
    total = f(F.pad(x, _torch_pad(begin, end)), kernel, strides, 0, ceil_mode=ceil_mode)
    if count_include_pad:
        return total
    # Divide by the number of real (unpadded) elements in each window.
    ones = F.pad(torch.ones_like(x[:1, :1]), _torch_pad(begin, end))
    return total / f(ones, kernel, strides, 0, ceil_mode=ceil_mode)


def layer_norm(x, scale, bias, axis: int, eps: float) -> torch.Tensor:
    """Normalize over dims ``axis..`` in at least float32 (the interpreter's arithmetic)."""
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


def rms_norm(x, scale, axis: int, eps: float) -> torch.Tensor:
    dims = tuple(range(axis % x.dim(), x.dim()))
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    y = xf * torch.rsqrt(xf.pow(2).mean(dims, keepdim=True) + eps) * scale.to(xf.dtype)
    return y.to(x.dtype)


def cumsum(x, axis: int, exclusive: bool, reverse: bool) -> torch.Tensor:
    y = x.flip(axis) if reverse else x
    out = torch.cumsum(y, axis).to(x.dtype)
    if exclusive:
        out = out - y
    return out.flip(axis) if reverse else out


def flatten(x, axis: int) -> torch.Tensor:
    ax = axis % x.dim() if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:ax]), math.prod(x.shape[ax:]))


def reduce(kind: str, x, axes: Sequence[int] | None, keepdims: bool) -> torch.Tensor:
    """ONNX Reduce{Sum,Mean,Max,Min,Prod}; no axes means all."""
    dims = tuple(a % x.dim() for a in axes) if axes else tuple(range(x.dim()))
    if not dims:
        return x.clone()
    if kind == "sum":
        return torch.sum(x, dims, keepdim=keepdims)
    if kind == "mean":
        return torch.mean(x if x.dtype.is_floating_point else x.double(), dims, keepdim=keepdims).to(x.dtype)
    if kind == "max":
        return torch.amax(x, dims, keepdim=keepdims)
    if kind == "min":
        return torch.amin(x, dims, keepdim=keepdims)
    out = x
    for d in sorted(dims, reverse=True):
        out = torch.prod(out, d, keepdim=keepdims)
    return out


def arg(kind: str, x, axis: int, keepdims: bool, select_last_index: bool) -> torch.Tensor:
    fn = torch.argmax if kind == "max" else torch.argmin
    if not select_last_index:
        return fn(x, axis, keepdim=keepdims)
    return x.shape[axis] - 1 - fn(x.flip(axis), axis, keepdim=keepdims)


# ---- data movement ---------------------------------------------------------------------------------
def reshape(x, shape: torch.Tensor, allowzero: bool = False) -> torch.Tensor:
    """ONNX Reshape: a 0 copies the input's dim unless ``allowzero``."""
    dims = [int(v) for v in shape.tolist()]
    if not allowzero:
        dims = [x.shape[i] if v == 0 else v for i, v in enumerate(dims)]
    return x.reshape(dims)


def expand(x, shape: torch.Tensor) -> torch.Tensor:
    # Bidirectional broadcast (ONNX Expand); torch.broadcast_shapes would import torch._refs (0.4 s) on first use.
    a, b = tuple(x.shape), tuple(int(v) for v in shape.tolist())
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for p, q in zip(a, b):
        if p != q and 1 not in (p, q):
            raise ValueError(f"cannot expand shape {list(x.shape)} to {list(b)}")
        out.append(q if p == 1 else p)
    return x.expand(out)


def tile(x, repeats: torch.Tensor) -> torch.Tensor:
    return x.repeat(*[int(v) for v in repeats.tolist()])


def squeeze(x, axes: Sequence[int] | None) -> torch.Tensor:
    if not axes:
        return x.squeeze()
    return x.squeeze(tuple(a % x.dim() for a in axes))


def unsqueeze(x, axes: Sequence[int]) -> torch.Tensor:
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


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
    return x.index_select(axis, torch.arange(start, end, step, device=x.device))


def slice(x, starts, ends, axes, steps) -> torch.Tensor:  # noqa: A001  (the op's name)
    for s, e, a, st in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
        if st == 0:
            raise ValueError("slice step must not be 0")
        x = _slice_axis(x, a % x.dim(), int(s), int(e), int(st))
    return x


def _wrap(idx: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.where(idx < 0, idx + dim, idx)


def gather(x, idx, axis: int) -> torch.Tensor:
    """ONNX Gather (negative indices wrap)."""
    ax = axis % x.dim()
    flat = _wrap(idx.reshape(-1).long(), x.shape[ax])
    return x.index_select(ax, flat).reshape((*x.shape[:ax], *idx.shape, *x.shape[ax + 1:]))


def gather_elements(x, idx, axis: int) -> torch.Tensor:
    return torch.gather(x, axis, _wrap(idx.long(), x.shape[axis]))


def gather_nd(data, indices, batch_dims: int) -> torch.Tensor:
    b = batch_dims
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


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def pad(x, pads, value, mode: str) -> torch.Tensor:
    """ONNX Pad (``mode`` in ONNX's spelling)."""
    m = PAD_MODES[mode]
    n = pads.numel() // 2
    p = [int(v) for v in pads.tolist()]
    begin, end = p[:n], p[n:]
    if m == "constant":
        return F.pad(x, _torch_pad(begin, end), value=value.item() if value.numel() else 0)
    # torch pads only trailing dims in these modes: fold the unpadded leading dims into one batch dim.
    lead = next((i for i, (b, e) in enumerate(zip(begin, end)) if b or e), x.dim())
    if lead == x.dim():
        return x.clone()
    y = x.reshape((-1, *x.shape[lead:])) if lead > 0 else x.unsqueeze(0)
    y = F.pad(y, _torch_pad(begin[lead:], end[lead:]), mode=m)
    return y.reshape((*x.shape[:lead], *y.shape[1:]))


def trilu(x, k, upper: bool) -> torch.Tensor:
    return (torch.triu if upper else torch.tril)(x, int(k.item()) if k.numel() else 0)


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


def resize(x, mode: str, ctm: str, nearest_mode: str, scales: Sequence[float] | None, sizes: Sequence[int] | None) -> torch.Tensor:
    """ONNX Resize, nearest or (bi/tri)linear."""
    if sizes is not None:
        n_out, sc = list(sizes), [o / i for o, i in zip(sizes, x.shape)]
    else:
        n_out, sc = [int(math.floor(i * s)) for i, s in zip(x.shape, scales)], list(scales)
    if mode == "nearest":
        for d in range(2, x.dim()):
            x = x.index_select(d, _nearest_index(n_out[d], x.shape[d], sc[d], ctm, nearest_mode, x.device))
        return x
    m = {1: "linear", 2: "bilinear", 3: "trilinear"}[x.dim() - 2]
    if sizes is None and ctm != "align_corners":
        # ONNX maps coordinates with the given scale, not the size ratio it rounds to.
        return F.interpolate(x, scale_factor=sc[2:], mode=m, align_corners=False, recompute_scale_factor=False)
    return F.interpolate(x, size=n_out[2:], mode=m, align_corners=ctm == "align_corners")


# ---- shape computation -----------------------------------------------------------------------------
def shape(x, start: int | None, end: int | None) -> torch.Tensor:
    return torch.tensor(x.shape, dtype=torch.int64, device=x.device)[start:end]


def constant_of_shape(shape: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return torch.full([int(v) for v in shape.tolist()], value.item(), dtype=value.dtype, device=shape.device)


def range_(start, limit, delta, dtype: torch.dtype) -> torch.Tensor:
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=dtype, device=start.device)


__all__ = [
    "arg", "avg_pool", "clip", "constant", "constant_of_shape", "conv", "cumsum", "div", "expand", "flatten",
    "gather", "gather_elements", "gather_nd", "layer_norm", "max_pool", "pad", "pow", "range_", "reduce", "reshape",
    "resize", "rms_norm", "shape", "slice", "squeeze", "tile", "trilu", "unsqueeze",
]
