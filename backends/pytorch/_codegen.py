"""IR -> the text of ``model.py`` and the tensors of ``weights.safetensors``.

One generator per op kind (:data:`GENERATORS`, keyed like the interpreter's
``KERNELS``) turns an op into the right-hand side of one line of ``forward``.
Generators call the same torch functions as the interpreter's kernels (or the
runtime helper that holds the kernel's body), so the emitted model is bit-exact
with the interpreter.  Weights, constants and packed quantized weights become
buffers set up in ``__init__`` and appear in ``forward`` as ``self.<name>``.
"""

from __future__ import annotations

import keyword
import math
import pprint
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr
from xdsl.dialects.func import ReturnOp
from xdsl.ir import Operation, SSAValue

from mase_compiler.dialects.graph import node_name, shape_of
from mase_compiler.interpreter.dtypes import torch_dtype
from mase_compiler.interpreter.kernels import dense_to_tensor, p_float, p_int, p_ints, p_str
from mase_compiler.model import Model
from mase_compiler.numerics import DIntFormat, Encoded, FixedFormat, Format, IntFormat, MinifloatFormat, MXFormat

from .. import BackendError
from .runtime import FP8_SUFFIX

INLINE_CONSTANT_MAX = 16
"""Constants with at most this many elements are written into model.py; larger ones go to the weights file."""

Gen = Callable[["Emitter", Operation, list[str]], str]
GENERATORS: dict[str, Gen] = {}


def gen(*names: str):
    def register(fn: Gen) -> Gen:
        for n in names:
            GENERATORS[n] = fn
        return fn

    return register


# ---- literals --------------------------------------------------------------------------------------
def lit(v: object) -> str:
    """Python source for a property value (floats exact: repr round-trips a double)."""
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else 'float("-inf")'
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    if isinstance(v, (bool, np.bool_)):
        return repr(bool(v))
    if isinstance(v, (int, np.integer)):
        return repr(int(v))
    if v is None or isinstance(v, str):
        return repr(v)
    raise TypeError(f"no literal for {v!r}")


def dtype_lit(dtype: torch.dtype) -> str:
    return str(dtype)  # "torch.float32"


def identifier(name: str, taken: set[str]) -> str:
    """A fresh Python identifier derived from ``name``."""
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit():
        s = "v" + s
    if keyword.iskeyword(s) or s in ("self", "torch", "F", "rt", "parse", "Path"):
        s += "_"
    base, i = s, 1
    while s in taken:
        i += 1
        s = f"{base}_{i}"
    taken.add(s)
    return s


def type_text(t) -> str:
    """``int64[?, ?]`` for a tensor type."""
    try:
        dt = str(torch_dtype(t)).removeprefix("torch.")
    except TypeError:
        dt = str(t)
    shape = shape_of(t)
    if shape is None:
        return f"{dt}[*]"
    return f"{dt}[{', '.join('?' if d == -1 else str(d) for d in shape)}]"


# ---- the emitter -----------------------------------------------------------------------------------
@dataclass
class Buffer:
    attr: str  # attribute name on the module
    init: str  # expression for its value in __init__
    comment: str


@dataclass
class Emitter:
    """State of one emission: names, buffers, stored tensors and the lines of ``forward``."""

    model: Model
    taken: set[str] = field(default_factory=set)
    expr: dict[SSAValue, str] = field(default_factory=dict)  # how forward refers to a value
    buffers: list[Buffer] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # spec -> module-level name
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # what weights.safetensors holds
    packed: dict[str, dict] = field(default_factory=dict)  # packed entry -> Encoded metadata
    fp8: list[str] = field(default_factory=list)  # packed entries the CUDA fast path uses
    weight_attr: dict[str, str] = field(default_factory=dict)  # weight name -> buffer attr
    numbers: dict[SSAValue, int] = field(default_factory=dict)  # %N of unnamed values, as the IR printer numbers them
    tokens: bool = False  # whether model.py imports mase_compiler.numerics.tokens (token-adaptive casts)

    # -- naming
    def result_name(self, v: SSAValue, prefix: str = "v") -> str:
        if v.name_hint:
            return identifier(v.name_hint, self.taken)
        return identifier(f"{prefix}{self.numbers[v]}", self.taken)

    def format_name(self, fmt: Format) -> str:
        spec = str(fmt)
        if spec not in self.formats:
            self.formats[spec] = identifier(re.sub(r"\W", "_", spec).upper(), self.taken)
        return self.formats[spec]

    def buffer(self, attr: str, init: str, comment: str) -> str:
        self.buffers.append(Buffer(attr, init, comment))
        return f"self.{attr}"

    def store(self, key: str, t: torch.Tensor) -> None:
        self.tensors[key] = t.detach().contiguous().clone()

    def weight_tensor(self, op: Operation) -> torch.Tensor:
        return self.model.weights.tensor(op.properties["name"].data)

    # -- values the compile-time side knows
    def static_value(self, v: SSAValue) -> torch.Tensor | None:
        """The value of a graph.weight / graph.constant result (None for anything computed)."""
        op = v.owner
        if not isinstance(op, Operation):
            return None
        if op.name == "graph.weight":
            return self.weight_tensor(op)
        if op.name == "graph.constant":
            return dense_to_tensor(op.properties["value"])
        return None


def _is_param(v: SSAValue) -> bool:
    return isinstance(v.owner, Operation) and v.owner.name in ("graph.weight", "graph.constant")


def cast_args(fmt: Format, params: list, axis: int | None) -> tuple[list, dict[str, int]]:
    """Arguments of ``fmt.quantize``/``fmt.encode`` after ``x``, as the interpreter's quant.cast
    kernel passes them per format family (``axis=None`` is every format's default: left out)."""
    ax = {} if axis is None else {"axis": axis}
    if isinstance(fmt, (IntFormat, DIntFormat)):
        return list(params), ax
    if isinstance(fmt, MinifloatFormat):
        return list(params), {}
    if isinstance(fmt, FixedFormat):
        return [], {}
    if isinstance(fmt, MXFormat):
        return [], ax
    raise BackendError(f"quant.cast format must be an int, dint, minifloat, fixed or mx format, not {fmt}")


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values as torch.equal sees them (so -0.0 == 0.0: decoding integer codes gives +0.0
    where quantize can give -0.0), with NaN where the other has NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if torch.equal(a, b) or not a.is_floating_point():
        return torch.equal(a, b)
    nan = torch.isnan(a)
    return torch.equal(nan, torch.isnan(b)) and torch.equal(a[~nan], b[~nan])


def encoded_meta(enc: Encoded) -> dict:
    return {"format": enc.format, "shape": list(enc.shape), "dtype": str(enc.dtype), "bits": enc.bits,
            "layout": list(enc.layout), "axis": enc.axis, "meta": dict(enc.meta)}


# ---- packing weights -------------------------------------------------------------------------------
def packable(op: Operation) -> bool:
    """A quant.cast of a graph.weight whose scale operands are weights or constants."""
    return (
        op.name == "quant.cast"
        and isinstance(op.operands[0].owner, Operation)
        and op.operands[0].owner.name == "graph.weight"
        and all(_is_param(p) for p in op.operands[1:])
    )


def pack(em: Emitter, op: Operation) -> str | None:
    """Encode a weight cast into packed codes; the buffer expression, or None if encoding
    does not reproduce ``quantize`` exactly (then the cast is emitted as code)."""
    fmt = op.properties["format"].format
    axis = p_int(op, "axis")
    w = em.weight_tensor(op.operands[0].owner)
    params = [em.static_value(p) for p in op.operands[1:]]
    args, kwargs = cast_args(fmt, params, axis)
    try:
        enc = fmt.encode(w, *args, **kwargs)
        ok = fmt.decode(enc)
    except ValueError:  # e.g. a NaN that the format has no code for
        return None
    if not same(ok, fmt.quantize(w, *args, **kwargs)):
        return None
    wname = op.operands[0].owner.properties["name"].data
    key = f"{wname}@{fmt}" + (f"@axis={axis}" if axis is not None else "")
    base, i = key, 1
    while key in em.packed and em.packed[key]["_op"] is not op:
        i += 1
        key = f"{base}#{i}"
    em.store(f"{key}.codes", enc.codes)
    if enc.scales is not None:
        em.store(f"{key}.scales", torch.as_tensor(enc.scales))
    if enc.zero_points is not None:
        em.store(f"{key}.zero_points", torch.as_tensor(enc.zero_points))
    em.packed[key] = {**encoded_meta(enc), "_op": op}
    attr = em.result_name(op.results[0], "q")
    bits = f"{enc.nbytes * 8 / max(w.numel(), 1):.2f}"
    return em.buffer(attr, f'weights["{key}"]', f"{wname} as {fmt} ({bits} bits/weight, packed) {type_text(op.results[0].type)}")


def fp8_operands(em: Emitter, op: Operation) -> tuple[Operation, str] | None:
    """For ``matmul(cast_fp8(x, s), cast_fp8(W, sw))`` with per-tensor scales and a packed 2-D weight:
    the activation's cast and the weight's packed key (the CUDA fast path's inputs); else None."""
    if op.name != "graph.matmul":
        return None
    a, b = (v.owner for v in op.operands)
    if not (isinstance(a, Operation) and isinstance(b, Operation) and a.name == b.name == "quant.cast"):
        return None
    for c in (a, b):
        if str(c.properties["format"].format) != "fp8_e4m3" or len(c.operands) != 2:
            return None
        s = em.static_value(c.operands[1])
        if s is None or s.numel() != 1:
            return None
    key = next((k for k, m in em.packed.items() if m["_op"] is b), None)
    shape = shape_of(b.results[0].type)
    if key is None or shape is None or len(shape) != 2:
        return None
    return a, key


def only_feeds_fp8_matmul(em: Emitter, op: Operation) -> bool:
    """An activation cast whose one reader is a fast-path matmul: on CUDA the cast is not needed."""
    uses = list(op.results[0].uses)
    if op.name != "quant.cast" or len(uses) != 1 or uses[0].index != 0:
        return False
    fast = fp8_operands(em, uses[0].operation)
    return fast is not None and fast[0] is op


# ---- generators ------------------------------------------------------------------------------------
_SIMPLE = {
    "neg": "torch.neg", "abs": "torch.abs", "exp": "torch.exp", "log": "torch.log", "sqrt": "torch.sqrt",
    "rsqrt": "torch.rsqrt", "reciprocal": "torch.reciprocal", "sin": "torch.sin", "cos": "torch.cos",
    "tanh": "torch.tanh", "sigmoid": "torch.sigmoid", "relu": "torch.relu", "erf": "torch.erf",
    "floor": "torch.floor", "ceil": "torch.ceil", "round": "torch.round", "sign": "torch.sign",
    "silu": "F.silu", "softplus": "F.softplus", "not": "torch.logical_not", "isnan": "torch.isnan",
    "isinf": "torch.isinf", "add": "torch.add", "sub": "torch.sub", "mul": "torch.mul",
    "max": "torch.maximum", "min": "torch.minimum", "and": "torch.logical_and", "or": "torch.logical_or",
    "xor": "torch.logical_xor", "equal": "torch.eq", "less": "torch.lt", "less_equal": "torch.le",
    "greater": "torch.gt", "greater_equal": "torch.ge", "where": "torch.where", "matmul": "torch.matmul",
}


def _simple(fn: str) -> Gen:
    return lambda em, op, a: f"{fn}({', '.join(a)})"


for _name, _fn in _SIMPLE.items():
    GENERATORS[f"graph.{_name}"] = _simple(_fn)


def _is_float(v: SSAValue) -> bool | None:
    try:
        return torch_dtype(v.type).is_floating_point
    except TypeError:
        return None


@gen("graph.div")
def _div(em, op, a):
    is_float = _is_float(op.operands[0])
    if is_float is None:
        return f"rt.div({a[0]}, {a[1]})"
    return f"{a[0]} / {a[1]}" if is_float else f'torch.div({a[0]}, {a[1]}, rounding_mode="trunc")'


@gen("graph.mod")
def _mod(em, op, a):
    return f"{'torch.fmod' if p_int(op, 'fmod', 0) else 'torch.remainder'}({a[0]}, {a[1]})"


@gen("graph.pow")
def _pow(em, op, a):
    return f"rt.pow({a[0]}, {a[1]})"


@gen("graph.cast")
def _cast(em, op, a):
    return f"{a[0]}.to({dtype_lit(torch_dtype(op.results[0].type))})"


@gen("graph.gelu")
def _gelu(em, op, a):
    return f"F.gelu({a[0]}, approximate={lit(p_str(op, 'approximate', 'none'))})"


@gen("graph.leaky_relu")
def _leaky(em, op, a):
    return f"F.leaky_relu({a[0]}, {lit(p_float(op, 'alpha'))})"


@gen("graph.clip")
def _clip(em, op, a):
    lo, hi = p_float(op, "min"), p_float(op, "max")
    if _is_float(op.operands[0]):
        return f"torch.clamp({a[0]}, {lit(lo)}, {lit(hi)})"
    return f"rt.clip({a[0]}, {lit(lo)}, {lit(hi)})"


def _pads(op) -> tuple[list[int], list[int]]:
    pads = p_ints(op, "pads")
    n = len(pads) // 2
    return pads[:n], pads[n:]


@gen("graph.conv")
def _conv(em, op, a):
    strides, dil, group = p_ints(op, "strides"), p_ints(op, "dilations"), p_int(op, "group", 1)
    begin, end = _pads(op)
    rank = shape_of(op.operands[0].type)
    if begin == end and rank is not None and len(rank) - 2 in (1, 2, 3):
        return f"F.conv{len(rank) - 2}d({', '.join(a)}, {lit(strides)}, {lit(begin)}, {lit(dil)}, {group})"
    return f"rt.conv({', '.join(a)}, {lit(strides)}, {lit(begin)}, {lit(end)}, {lit(dil)}, {group})"


@gen("graph.max_pool")
def _max_pool(em, op, a):
    begin, end = _pads(op)
    k, s, d = p_ints(op, "kernel_shape"), p_ints(op, "strides"), p_ints(op, "dilations")
    return f"rt.max_pool({a[0]}, {lit(k)}, {lit(s)}, {lit(begin)}, {lit(end)}, {lit(d)}, ceil_mode={bool(p_int(op, 'ceil_mode', 0))})"


@gen("graph.avg_pool")
def _avg_pool(em, op, a):
    begin, end = _pads(op)
    k, s = p_ints(op, "kernel_shape"), p_ints(op, "strides")
    return (f"rt.avg_pool({a[0]}, {lit(k)}, {lit(s)}, {lit(begin)}, {lit(end)}, ceil_mode={bool(p_int(op, 'ceil_mode', 0))}, "
            f"count_include_pad={bool(p_int(op, 'count_include_pad', 0))})")


@gen("graph.batch_norm")
def _batch_norm(em, op, a):
    x, scale, bias, mean, var = a
    return f"F.batch_norm({x}, {mean}, {var}, {scale}, {bias}, training=False, eps={lit(p_float(op, 'epsilon'))})"


@gen("graph.layer_norm")
def _layer_norm(em, op, a):
    return f"rt.layer_norm({', '.join(a)}, axis={p_int(op, 'axis')}, eps={lit(p_float(op, 'epsilon'))})"


@gen("graph.rms_norm")
def _rms_norm(em, op, a):
    return f"rt.rms_norm({', '.join(a)}, axis={p_int(op, 'axis')}, eps={lit(p_float(op, 'epsilon'))})"


@gen("graph.softmax", "graph.log_softmax")
def _softmax(em, op, a):
    fn = "torch.softmax" if op.name == "graph.softmax" else "torch.log_softmax"
    return f"{fn}({a[0]}, {p_int(op, 'axis')})"


@gen("graph.cumsum")
def _cumsum(em, op, a):
    return f"rt.cumsum({a[0]}, {p_int(op, 'axis')}, exclusive={bool(p_int(op, 'exclusive', 0))}, reverse={bool(p_int(op, 'reverse', 0))})"


@gen("graph.flatten")
def _flatten(em, op, a):
    return f"rt.flatten({a[0]}, {p_int(op, 'axis')})"


@gen("graph.reduce_sum", "graph.reduce_mean", "graph.reduce_max", "graph.reduce_min", "graph.reduce_prod")
def _reduce(em, op, a):
    kind = op.name.removeprefix("graph.reduce_")
    return f"rt.reduce({kind!r}, {a[0]}, {lit(p_ints(op, 'axes'))}, keepdims={bool(p_int(op, 'keepdims', 1))})"


@gen("graph.argmax", "graph.argmin")
def _arg(em, op, a):
    kind = op.name.removeprefix("graph.arg")
    return (f"rt.arg({kind!r}, {a[0]}, {p_int(op, 'axis')}, keepdims={bool(p_int(op, 'keepdims', 1))}, "
            f"select_last_index={bool(p_int(op, 'select_last_index', 0))})")


@gen("graph.transpose")
def _transpose(em, op, a):
    return f"{a[0]}.permute({lit(p_ints(op, 'perm'))})"


@gen("graph.reshape")
def _reshape(em, op, a):
    return f"rt.reshape({a[0]}, {a[1]}, allowzero={bool(p_int(op, 'allowzero', 0))})"


@gen("graph.expand")
def _expand(em, op, a):
    return f"rt.expand({a[0]}, {a[1]})"


@gen("graph.tile")
def _tile(em, op, a):
    return f"rt.tile({a[0]}, {a[1]})"


@gen("graph.squeeze")
def _squeeze(em, op, a):
    return f"rt.squeeze({a[0]}, {lit(p_ints(op, 'axes'))})"


@gen("graph.unsqueeze")
def _unsqueeze(em, op, a):
    return f"rt.unsqueeze({a[0]}, {lit(p_ints(op, 'axes'))})"


@gen("graph.concat")
def _concat(em, op, a):
    return f"torch.cat([{', '.join(a)}], {p_int(op, 'axis')})"


@gen("graph.split")
def _split(em, op, a):
    return f"torch.split({a[0]}, {lit(p_ints(op, 'sizes'))}, {p_int(op, 'axis')})"


@gen("graph.slice")
def _slice(em, op, a):
    return f"rt.slice({', '.join(a)})"


@gen("graph.gather")
def _gather(em, op, a):
    return f"rt.gather({a[0]}, {a[1]}, {p_int(op, 'axis')})"


@gen("graph.gather_elements")
def _gather_elements(em, op, a):
    return f"rt.gather_elements({a[0]}, {a[1]}, {p_int(op, 'axis')})"


@gen("graph.gather_nd")
def _gather_nd(em, op, a):
    return f"rt.gather_nd({a[0]}, {a[1]}, batch_dims={p_int(op, 'batch_dims', 0)})"


@gen("graph.pad")
def _pad(em, op, a):
    return f"rt.pad({', '.join(a)}, mode={p_str(op, 'mode', 'constant')!r})"


@gen("graph.trilu")
def _trilu(em, op, a):
    return f"rt.trilu({a[0]}, {a[1]}, upper={bool(p_int(op, 'upper', 1))})"


@gen("graph.resize")
def _resize(em, op, a):
    mode, ctm, nearest = p_str(op, "mode"), p_str(op, "coordinate_transformation_mode"), p_str(op, "nearest_mode")
    if mode not in ("nearest", "linear"):
        raise BackendError(f"graph.resize mode must be nearest or linear, not {mode!r}")
    if mode == "linear" and ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        raise BackendError(f"graph.resize linear coordinate_transformation_mode must be half_pixel, pytorch_half_pixel or align_corners, not {ctm!r}")
    scales = op.properties.get("scales")
    scales = list(scales.get_values()) if scales is not None else None
    return f"rt.resize({a[0]}, {mode!r}, {ctm!r}, {nearest!r}, scales={lit(scales)}, sizes={lit(p_ints(op, 'sizes'))})"


@gen("graph.shape")
def _shape(em, op, a):
    return f"rt.shape({a[0]}, {lit(p_int(op, 'start'))}, {lit(p_int(op, 'end'))})"


@gen("graph.constant_of_shape")
def _constant_of_shape(em, op, a):
    value = dense_to_tensor(op.properties["value"]).reshape(())
    attr = identifier("fill", em.taken)
    ref = em.buffer(attr, f"torch.tensor({lit(value.item())}, dtype={dtype_lit(value.dtype)})", "fill value")
    return f"rt.constant_of_shape({a[0]}, {ref})"


@gen("graph.range")
def _range(em, op, a):
    return f"rt.range_({', '.join(a)}, {dtype_lit(torch_dtype(op.results[0].type))})"


@gen("graph.constant")
def _constant(em, op, a):
    """Declared as a buffer (the op has no line in forward)."""
    attr: DenseIntOrFPElementsAttr = op.properties["value"]
    t = dense_to_tensor(attr)
    name = em.result_name(op.results[0], "c")
    tt = type_text(op.results[0].type)
    if t.numel() <= INLINE_CONSTANT_MAX:
        values = [v.item() if isinstance(v, np.generic) else v for v in attr.get_values()]
        if t.dtype == torch.bool:
            values = [bool(v) for v in values]
        init = f"rt.constant({lit(values)}, {lit(list(t.shape))}, {dtype_lit(t.dtype)})"
        return em.buffer(name, init, tt)
    em.store(f"constant.{name}", t)
    return em.buffer(name, f'weights["constant.{name}"]', tt)


@gen("graph.weight")
def _weight(em, op, a):
    """Declared as a buffer; a weight whose every user is a packed cast is not stored at all."""
    wname = op.properties["name"].data
    value = em.weight_tensor(op)
    if tuple(value.shape) != shape_of(op.results[0].type) or value.dtype != torch_dtype(op.results[0].type):
        raise BackendError(f"weight {wname!r} is {value.dtype}{list(value.shape)} in the weight store, but the IR says {op.results[0].type}")
    if wname not in em.weight_attr:
        em.weight_attr[wname] = em.result_name(op.results[0], "w")
        em.store(wname, value)
        em.buffer(em.weight_attr[wname], f"weights[{wname!r}]", f"{wname} {type_text(op.results[0].type)}")
    return f"self.{em.weight_attr[wname]}"


@gen("quant.cast")
def _quant_cast(em, op, a):
    fmt = op.properties["format"].format
    args, kwargs = cast_args(fmt, a[1:], p_int(op, "axis"))
    return f"{em.format_name(fmt)}.quantize({', '.join([a[0], *args, *(f'{k}={v}' for k, v in kwargs.items())])})"


@gen("quant.token_importance")
def _token_importance(em, op, a):
    return f"{TOKENS}.token_importance({a[0]}, {lit(p_str(op, 'method'))})"


@gen("quant.token_cast")
def _token_cast(em, op, a):
    high, low = (em.format_name(op.properties[k].format) for k in ("high", "low"))
    return f"{TOKENS}.token_mixed({a[0]}, {a[1]}, {high}, {low}, ratio={lit(p_float(op, 'ratio'))}, threshold={lit(p_float(op, 'threshold'))})"


TOKENS = "tokens"
"""The module of :mod:`mase_compiler.numerics` that model.py imports for token ops (only where it has some)."""
TOKEN_OPS = ("quant.token_importance", "quant.token_cast")

BUFFER_OPS = ("graph.weight", "graph.constant")


# ---- the whole model -------------------------------------------------------------------------------
@dataclass
class Generated:
    source: str  # model.py
    tensors: dict[str, torch.Tensor]  # weights.safetensors
    packed: dict[str, dict]  # metadata of packed entries
    fp32_weight_bytes: int
    n_fp8_fast: int


def generate(model: Model) -> Generated:
    """The text of model.py and the tensors of its weights file."""
    func = model.main
    ops = list(func.body.ops)
    missing = sorted({op.name for op in ops if op.name not in GENERATORS and not isinstance(op, ReturnOp)})
    if any(n.startswith("dataflow.") for n in missing):
        raise BackendError("dataflow ops are integer hardware kernels: compile them for a hardware target, "
                           "or leave lower-dataflow out of the pipeline for --target pytorch")
    if missing:
        raise BackendError(f"the pytorch backend has no code generator for {', '.join(missing)}; run a pass that lowers it first")
    em = Emitter(model)
    if any(op.name in TOKEN_OPS for op in ops):
        em.tokens = True
        em.taken.add(TOKENS)  # the module name model.py imports: no value may shadow it
    n = 0
    for op in ops:
        for r in op.results:
            if not r.name_hint:
                em.numbers[r] = n
                n += 1
    args = []
    for name, a in zip(model.input_names, func.args):
        em.expr[a] = identifier(a.name_hint or name, em.taken)
        args.append(em.expr[a])
    # Pack weight casts first: a weight (or scale) whose users are all packed casts is not stored.
    packed_expr = {op: e for op in ops if packable(op) and (e := pack(em, op)) is not None}
    body: list[str] = []
    deferred: dict[Operation, str] = {}
    n_fast = 0
    for op in ops:
        if isinstance(op, ReturnOp):
            outs = ", ".join(f"{name!r}: {em.expr[v]}" for name, v in zip(model.output_names, op.operands))
            body.append(f"return {{{outs}}}")
            continue
        if op in packed_expr:
            em.expr[op.results[0]] = packed_expr[op]
            continue
        if op.name in BUFFER_OPS:
            if op.results[0].uses and all(u.operation in packed_expr for u in op.results[0].uses):
                continue  # only read by packed casts: its value lives in the packed entry
            em.expr[op.results[0]] = GENERATORS[op.name](em, op, [])
            continue
        rhs = GENERATORS[op.name](em, op, [em.expr[v] for v in op.operands])
        names = [em.result_name(r) for r in op.results]
        for r, nm in zip(op.results, names):
            em.expr[r] = nm
        lhs = ", ".join(names) + ("," if op.name == "graph.split" and len(names) == 1 else "")
        node = node_name(op) or _reader_node(op)
        line = f"{lhs} = {rhs}" + (f"  # {node}" if node else "")
        if only_feeds_fp8_matmul(em, op):
            deferred[op] = line  # emitted in the emulated branch of the matmul below
        elif (fast := fp8_operands(em, op)) is not None:
            body += fp8_branch(em, op, *fast, lhs, line, deferred.pop(fast[0], None))
            n_fast += 1
        else:
            body.append(line)
    source = render(model, em, args, body)
    return Generated(source, em.tensors, {k: {f: v for f, v in m.items() if f != "_op"} for k, m in em.packed.items()},
                     fp32_weight_bytes(model), n_fast)


def fp8_branch(em: Emitter, op: Operation, cast: Operation, key: str, lhs: str, line: str, cast_line: str | None) -> list[str]:
    """``if rt.fp8_fast(...)``: the torch._scaled_mm call, else the emulated lines (the activation's cast, the matmul)."""
    x, xs = em.expr[cast.operands[0]], em.expr[cast.operands[1]]
    em.fp8.append(key)
    attr = identifier(f"{em.expr[op.operands[1]].removeprefix('self.')}_fp8t", em.taken)
    scale = identifier(f"{attr}_scale", em.taken)
    em.buffer(attr, f'weights["{key}{FP8_SUFFIX}"]', "the same weight as float8_e4m3fn, [N, K] (CUDA fast path)")
    em.buffer(scale, f'weights["{key}{FP8_SUFFIX}.scale"]', "its per-tensor scale")
    comment = line[line.index("  #"):] if "  #" in line else ""
    return [
        f"if rt.fp8_fast({x}, self.{attr}):  # CUDA: torch._scaled_mm (not bit-exact)",
        f"    {lhs} = rt.fp8_matmul({x}, {xs}, self.{attr}, self.{scale}){comment}",
        "else:",
        *([f"    {cast_line}"] if cast_line else []),
        f"    {line}",
    ]


def _reader_node(op: Operation) -> str | None:
    """For a quant.cast or token_cast (which have no source node of their own): ``for <node of its first reader>``."""
    if op.name not in ("quant.cast", "quant.token_cast"):
        return None
    for use in op.results[0].uses:
        node = node_name(use.operation)
        if node:
            return f"for {node}"
    return None


def fp32_weight_bytes(model: Model) -> int:
    """Bytes the model's weights take as float32 (integer weights at their own size); quantization scales excluded."""
    total = 0
    seen: set[str] = set()
    for op in model.main.body.ops:
        if op.name != "graph.weight":
            continue
        name = op.properties["name"].data
        if name in seen:
            continue
        seen.add(name)
        uses = [u.operation for u in op.results[0].uses]
        if uses and all(u.name == "quant.cast" and u.operands[0] is not op.results[0] for u in uses):
            continue  # a scale or zero point of a cast
        arr = model.weights[name]
        total += arr.size * 4 if np.issubdtype(arr.dtype, np.floating) or arr.dtype.kind == "V" or "float" in str(arr.dtype) else arr.nbytes
    return total


_HEADER = '''"""{title}, compiled by masec (PyTorch backend).

Inputs:  {inputs}
Outputs: a dict with {outputs}

    import model
    m = model.load()          # weights from weights.safetensors beside this file
    out = m({args})

Generated from the IR: one line of forward per op, commented with its source node.
Weights, constants and packed low-bit weights are buffers (set up in __init__).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from mase_compiler.backends.pytorch import runtime as rt
from mase_compiler.numerics import parse
'''


def render(model: Model, em: Emitter, args: list[str], body: list[str]) -> str:
    func = model.main
    in_types = [type_text(a.type) for a in func.args]
    out_types = [type_text(t) for t in func.function_type.outputs.data]
    lines = [_HEADER.format(
        title=model.module.attributes["graph.name"].data if "graph.name" in model.module.attributes else "A model",
        inputs=", ".join(f"{n} ({t})" for n, t in zip(model.input_names, in_types)),
        outputs=", ".join(f"{n} ({t})" for n, t in zip(model.output_names, out_types)),
        args=", ".join(args),
    )]
    if em.tokens:
        lines[0] += f"from mase_compiler.numerics import {TOKENS}\n"
    lines.append("INPUTS = {" + ", ".join(f"{n!r}: {dtype_lit(torch_dtype(a.type))}" for n, a in zip(model.input_names, func.args)) + "}")
    lines.append('"""Input names in forward\'s order, with the dtype forward expects."""')
    lines.append(f"OUTPUTS = {model.output_names!r}")
    lines.append(f"FP8_WEIGHTS = {pprint.pformat(sorted(set(em.fp8)), width=110, compact=True)}")
    lines.append('"""Packed FP8 weights for which load() also prepares the CUDA fast path (torch._scaled_mm)."""')
    if em.formats:
        lines.append("")
        lines.append("# Number formats of the quant.cast ops (mase_compiler.numerics: the interpreter's arithmetic).")
        for spec, name in em.formats.items():
            lines.append(f"{name} = parse({spec!r})")
    lines += ["", "", "class Model(torch.nn.Module):", "    def __init__(self, weights: dict[str, torch.Tensor]):", "        super().__init__()"]
    for b in em.buffers:
        lines.append(f'        self.register_buffer("{b.attr}", {b.init}, persistent=False)  # {b.comment}')
    sig = ", ".join(f"{a}: torch.Tensor" for a in args)
    lines += ["", f"    def forward(self{', ' if sig else ''}{sig}) -> dict[str, torch.Tensor]:"]
    lines += [f"        {ln}" for ln in body]
    lines += ["", "", 'def load(directory: str | Path | None = None, device: str | torch.device = "cpu") -> Model:',
              '    """The model with its weights from ``directory/weights.safetensors`` (default: beside this file)."""',
              "    directory = Path(__file__).resolve().parent if directory is None else Path(directory)",
              '    weights = rt.load_weights(directory / "weights.safetensors", device, fp8=FP8_WEIGHTS)',
              "    return Model(weights).to(device).eval()", ""]
    return "\n".join(lines)
