"""Per-channel scaling of matmul inputs, shared by ``smoothquant`` and ``aqas``.

A *scalable group* is a float activation ``X`` (last axis = ``K`` input channels) whose every
user is a ``graph.matmul`` reading ``X`` as its left operand and a ``graph.weight`` ``[K, N]``
(possibly through ``graph.transpose``, e.g. a Gemm ``transB`` weight ``[N, K]``) as its right one:
a LayerNorm output feeding the Q, K and V projections, say.  One scale vector ``s`` (length ``K``)
serves the whole group::

    X W = (X diag(s)^-1) (diag(s) W)        for every consumer W of X

The factor ``diag(s)`` goes into a new copy of each consumer weight (``<name>.scaled``); the factor
``1/s`` is folded into whatever produces ``X`` so that nothing runs at inference time:

* ``graph.layer_norm`` / ``graph.rms_norm`` over the last axis: the affine weight and bias,
* ``graph.mul`` by a per-channel weight (RMSNorm as torch exports it: ``weight * x_normed``),
* ``graph.matmul`` by a weight (its output columns), through ``graph.add`` of a bias (scaled too),
* ``graph.mul`` of two activations (LLaMA's ``silu(gate) * up``): into either factor that folds,
* through views that keep the last axis (GPT-2's ``reshape`` of the LayerNorm output to 2-d).

Every value on the way must have no other user.  When nothing absorbs ``1/s`` (an attention
context reshaped into the output projection, a GELU output) an explicit ``graph.mul`` by a new
weight ``1/s`` is inserted after the producer (counted as ``explicit`` in the pass notes); a
later run folds into that weight.  The rewrite is exact in real arithmetic (a diagonal matrix and
its inverse cancel); in float32 each folded weight picks up one rounding (relative 6e-8).

New weights never overwrite old entries: an entry shared with another user (BERT's exporter
deduplicates equal LayerNorm parameters and zero biases) keeps its value for that user.  The
calibration statistics (``quant.stats``) of values whose contents change are dropped: run
``calibrate`` after the scaling pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from xdsl.dialects.builtin import StringAttr, TensorType
from xdsl.dialects.func import FuncOp
from xdsl.ir import Block, BlockArgument, Operation, OpResult, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from ..calibration.stats import STATS_ATTR
from ..dialects import graph as g
from ..numerics import DIntFormat, Format, IntFormat, MinifloatFormat, MXFormat, parse
from .calibrate import is_static
from .quantize import _weight_source

S_MIN, S_MAX = 1e-5, 1e5  # clamp of every scale: keeps folded weights finite and normal in float32
_EPS = 1e-8


@dataclass
class Group:
    """An activation whose every user is a matmul by a ``[K, N]`` weight."""

    value: SSAValue
    consumers: list[g.MatmulOp]
    name: str
    k: int

    def weights(self, model) -> list[torch.Tensor]:
        """Each consumer's weight as it is now, as ``[K, N]``."""
        return [weight_matrix(model, c) for c in self.consumers]


# ---- finding groups -------------------------------------------------------------------------------
def find_groups(model) -> list[Group]:
    """Every scalable group of ``model.main``, last first.

    Rewrite them in this order: folding ``1/s`` into a producing matmul scales the columns of a
    weight that an *earlier* group consumes (LLaMA's ``up_proj`` feeds ``down_proj``'s input), so an
    earlier group must be chosen after the later ones, on the weights as they end up.  A group's own
    rewrite only touches ops before its value, never the consumers of a later group."""
    func: FuncOp = model.main
    values: list[SSAValue] = list(func.args)
    for op in func.body.ops:
        values.extend(op.results)
    return [grp for grp in map(_group, reversed(values)) if grp is not None]


def _group(v: SSAValue) -> Group | None:
    shape = g.shape_of(v.type)
    if not shape or shape[-1] <= 0 or not g.is_float(g.element_type(v.type)) or is_static(v) or v.first_use is None:
        return None
    k = shape[-1]
    consumers: list[g.MatmulOp] = []
    for use in list(v.uses):
        op = use.operation
        if not isinstance(op, g.MatmulOp) or use.index != 0 or _weight_source(op.rhs) is None:
            return None
        if g.shape_of(op.rhs.type) is None or len(g.shape_of(op.rhs.type)) != 2 or g.shape_of(op.rhs.type)[0] != k:
            return None
        if op not in consumers:
            consumers.append(op)
    consumers.sort(key=_position)
    first = consumers[0]
    name = g.node_name(first) or f"matmul@{_position(first)}"
    return Group(v, consumers, name, k)


def _position(op: Operation) -> int:
    block = op.parent_block()
    return block.get_operation_index(op) if block is not None else 0


def weight_matrix(model, consumer: g.MatmulOp) -> torch.Tensor:
    """The weight ``consumer`` multiplies by, as a float32 ``[K, N]`` tensor."""
    src = _weight_source(consumer.rhs)
    assert src is not None
    wop, perm, _ = src
    w = model.weights.tensor(wop.sym_name.data).to(torch.float32)
    if perm is not None:
        w = w.permute(*perm)
    return w


# ---- choosing scales ------------------------------------------------------------------------------
def smooth_scales(x_absmax: torch.Tensor, w_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (Xiao et al., eq. 4), guarded:
    a channel with no activation or no weight magnitude keeps ``s_j = 1``; all clamped to [1e-5, 1e5]."""
    x = x_absmax.double()
    w = w_absmax.double()
    s = x.clamp_min(_EPS) ** alpha / w.clamp_min(_EPS) ** (1.0 - alpha)
    s = torch.where((x > 0) & (w > 0) & torch.isfinite(s), s, torch.ones_like(s))
    return s.clamp(S_MIN, S_MAX).to(torch.float32)


def weight_absmax(weights: list[torch.Tensor]) -> torch.Tensor:
    """max |W_j| over row j of every consumer weight ``[K, N_i]`` (length K)."""
    return torch.cat([w.abs() for w in weights], dim=1).amax(dim=1)


@dataclass
class Observed:
    lo: torch.Tensor  # per-channel minimum over every calibration row
    hi: torch.Tensor  # per-channel maximum
    rows: torch.Tensor  # at most ``samples`` rows [M, K]

    @property
    def absmax(self) -> torch.Tensor:
        return torch.maximum(self.lo.abs(), self.hi.abs())


def observe(model, batches: Sequence[dict], groups: list[Group], samples: int, seed: int = 0) -> list[Observed]:
    """Per-channel range of each group's activation on ``batches`` (0 included, as minmax calibration
    does) and up to ``samples`` of its rows (drawn uniformly with a fixed seed; rows holding inf/NaN
    are left out)."""
    from ..interpreter import Interpreter

    at = {grp.consumers[0]: i for i, grp in enumerate(groups)}
    lo = [torch.zeros(grp.k) for grp in groups]
    hi = [torch.zeros(grp.k) for grp in groups]
    rows: list[list[torch.Tensor]] = [[] for _ in groups]
    gen = torch.Generator().manual_seed(seed)

    def fn(op: Operation, operands: list, results: tuple) -> None:
        i = at.get(op)
        if i is None:
            return
        x = operands[0].detach().to(torch.float32).reshape(-1, groups[i].k)
        x = x[torch.isfinite(x).all(dim=1)]
        if x.shape[0]:
            lo[i] = torch.minimum(lo[i], x.amin(dim=0))
            hi[i] = torch.maximum(hi[i], x.amax(dim=0))
        rows[i].append(_subsample(x, samples, gen))

    interp = Interpreter(model)
    for batch in batches:
        interp(batch, observe=fn)
    return [Observed(a, b, _subsample(torch.cat(r) if r else torch.zeros(0, grp.k), samples, gen))
            for a, b, r, grp in zip(lo, hi, rows, groups)]


def _subsample(x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    if x.shape[0] <= n:
        return x
    idx = torch.randperm(x.shape[0], generator=gen)[:n].sort().values
    return x[idx]


# ---- quantized-product error (AQAS objective) ---------------------------------------------------
def weight_quantizer(spec: str, what: str = "w") -> Callable[[torch.Tensor], torch.Tensor]:
    """Fake quantization of a ``[K, N]`` weight as ``quantize`` does it: channels along N (axis 1),
    groups and MX blocks along K (axis 0), minifloats per tensor with scale ``amax / max``."""
    fmt = _parse(spec, what)
    if isinstance(fmt, (IntFormat, DIntFormat)):
        if fmt.granularity == "token":
            raise ValueError(f"{what} must be a weight format (per tensor, ':channel' or ':group=N'), not '{spec}'")
        axis = {"channel": 1, "group": 0}.get(fmt.granularity) if fmt.axis is None else fmt.axis
        return lambda w: fmt.quantize(w, axis=axis)
    if isinstance(fmt, MXFormat):
        axis = 0 if fmt.axis == -1 else fmt.axis
        return lambda w: fmt.quantize(w, axis=axis)
    if isinstance(fmt, MinifloatFormat):
        return lambda w: fmt.quantize(w, scale=_mf_scale(fmt, w))
    return fmt.quantize


def activation_quantizer(spec: str, what: str = "a") -> Callable[..., torch.Tensor]:
    """Fake quantization of activation rows ``[M, K]`` as ``calibrate{method=minmax},quantize`` does it,
    called as ``qa(x, lo, hi)``: static per-tensor formats take their scale from the range ``[lo, hi]``
    (the whole calibration set's, not just the sampled rows'; None: the rows' own), ``:token``
    scales each row, groups and MX blocks run along K."""
    fmt = _parse(spec, what)
    if isinstance(fmt, (IntFormat, DIntFormat)):
        if fmt.granularity == "channel":
            raise ValueError(f"{what} must be an activation format (per tensor, ':token' or ':group=N'), not '{spec}'")
        if fmt.granularity != "tensor":
            return lambda x, lo=None, hi=None: fmt.quantize(x, axis=-1)

        def static(x: torch.Tensor, lo: float | None = None, hi: float | None = None) -> torch.Tensor:
            if lo is None or hi is None:
                return fmt.quantize(x)
            scale, zp = fmt.scale_from_range(torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32))
            return fmt.quantize(x, scale=scale, zero_point=zp)
        return static
    if isinstance(fmt, MXFormat):
        return lambda x, lo=None, hi=None: fmt.quantize(x, axis=-1)
    if isinstance(fmt, MinifloatFormat) and fmt.bits <= 8:
        def minifloat(x: torch.Tensor, lo: float | None = None, hi: float | None = None) -> torch.Tensor:
            amax = max(abs(lo), abs(hi)) if lo is not None and hi is not None else None
            scale = _mf_scale(fmt, x) if amax is None else (amax / fmt.max_value if amax > 0 else 1.0)
            return fmt.quantize(x, scale=scale)
        return minifloat
    return lambda x, lo=None, hi=None: fmt.quantize(x)


def _parse(spec: str, what: str) -> Format:
    try:
        return parse(spec)
    except ValueError as e:
        raise ValueError(f"{what} must be a number format such as 'int8' or 'int4:channel', not {spec!r} ({e})") from None


def _mf_scale(fmt: MinifloatFormat, t: torch.Tensor) -> float:
    amax = float(torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0).abs().max()) if t.numel() else 0.0
    return amax / fmt.max_value if amax > 0 else 1.0


def product_error(x: torch.Tensor, weights: list[torch.Tensor], ref: torch.Tensor, s: torch.Tensor,
                  qa: Callable[..., torch.Tensor], qw: Callable[[torch.Tensor], torch.Tensor],
                  lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> float:
    """``sum_i ||Q_a(X / s) Q_w(diag(s) W_i) - X W_i||^2``, ``ref`` = ``X [W_1 W_2 ...]``; ``lo``/``hi``
    the per-channel range of X (``s > 0``, so X/s ranges over ``[min(lo/s), max(hi/s)]``).

    Each weight is quantized on its own (a per-tensor scale is per weight); the products are one matmul."""
    wq = torch.cat([qw(w * s[:, None]) for w in weights], dim=1)
    rng = (float((lo / s).min()), float((hi / s).max())) if lo is not None and hi is not None else (None, None)
    return float((qa(x / s, *rng) @ wq - ref).double().pow(2).sum())


# ---- the rewrite ----------------------------------------------------------------------------------
# An edit multiplies the weight that op.operands[index] reads along its operand axis ``axis``
# (negative, counted from the end) by a vector.
_Edit = tuple[Operation, int, int]


def apply_scales(model, group: Group, s: torch.Tensor, explicit: bool = True) -> str:
    """Scale ``group`` by ``s``: consumer weights by ``s`` (rows), the producer by ``1/s``.
    Returns ``"folded"``, ``"explicit"`` (a ``graph.mul`` by ``1/s`` was inserted) or, when
    ``explicit`` is false and the producer cannot absorb ``1/s``, ``"unfoldable"`` (nothing done)."""
    s64 = s.double()
    plan = fold_plan(group.value, group.k, top=True)
    if plan is None and not explicit:
        return "unfoldable"
    for c in group.consumers:
        _edit_weight(model, (c, 1, -2), s64)
    inv = 1.0 / s64
    if plan is not None:
        edits, changed = plan
        for e in edits:
            _edit_weight(model, e, inv)
        for v in changed:
            drop_stats(v)
        return "folded"
    _insert_mul(model, group, inv)
    return "explicit"


def fold_plan(v: SSAValue, k: int, top: bool = False) -> tuple[list[_Edit], list[SSAValue]] | None:
    """The weight edits that multiply the channels of ``v`` by a vector, and the values they change;
    None if the producer cannot absorb it."""
    if not isinstance(v, OpResult) or (not top and not v.has_one_use()):
        return None
    shape = g.shape_of(v.type)
    if not shape or shape[-1] != k:
        return None
    op = v.op
    edits: list[_Edit] | None = None
    if isinstance(op, g.LayerNormOp) and _last_axis_only(op) and _per_channel(op.scale, k) and _per_channel(op.bias, k):
        edits = [(op, 1, -1), (op, 2, -1)]
    elif isinstance(op, g.RmsNormOp) and _last_axis_only(op) and _per_channel(op.scale, k):
        edits = [(op, 1, -1)]
    elif isinstance(op, g.MatmulOp) and _weight_source(op.rhs) is not None and len(g.shape_of(op.rhs.type) or ()) == 2:
        edits = [(op, 1, -1)]
    elif isinstance(op, g.MulOp):
        for i in (0, 1):  # a per-channel weight factor first, then an activation factor that folds
            if _per_channel(op.operands[i], k):
                edits = [(op, i, -1)]
                break
        else:
            for i in (0, 1):
                sub = None if is_static(op.operands[i]) else fold_plan(op.operands[i], k)
                if sub is not None:
                    return sub[0], [v, *sub[1]]
    elif isinstance(op, _VIEWS) and _keeps_last_axis(op, k):
        sub = fold_plan(op.operands[0], k)
        return None if sub is None else (sub[0], [v, *sub[1]])
    elif isinstance(op, (g.AddOp, g.SubOp)):
        edits, changed = [], [v]
        for i in (0, 1):
            if _per_channel(op.operands[i], k):
                edits.append((op, i, -1))
                continue
            sub = None if is_static(op.operands[i]) else fold_plan(op.operands[i], k)
            if sub is None:
                return None
            edits.extend(sub[0])
            changed.extend(sub[1])
        return edits, changed
    return None if edits is None else (edits, [v])


_VIEWS = (g.ReshapeOp, g.FlattenOp, g.SqueezeOp, g.UnsqueezeOp, g.ExpandOp, g.TransposeOp)


def _keeps_last_axis(op: Operation, k: int) -> bool:
    """Whether a view op maps channel j of its input's last axis to channel j of its result's:
    row-major reshapes do when both last axes have the k channels; transposes when they fix it."""
    src = g.shape_of(op.operands[0].type)
    if not src or src[-1] != k or is_static(op.operands[0]):
        return False
    if isinstance(op, g.TransposeOp):
        perm = list(op.perm.get_values())
        return perm[-1] == len(perm) - 1
    return True


def _last_axis_only(op: g.LayerNormOp | g.RmsNormOp) -> bool:
    rank = len(g.shape_of(op.input.type) or ())
    axis = op.axis.value.data
    return rank > 0 and axis % rank == rank - 1


def _per_channel(v: SSAValue, k: int) -> bool:
    """Whether ``v`` is a weight (possibly transposed) whose last axis holds the ``k`` channels."""
    shape = g.shape_of(v.type)
    return _weight_source(v) is not None and bool(shape) and shape[-1] == k


def _edit_weight(model, edit: _Edit, factor: torch.Tensor) -> None:
    """Point ``op.operands[index]`` at a new weight: the old one times ``factor`` along ``axis``."""
    op, index, axis = edit
    operand = op.operands[index]
    src = _weight_source(operand)
    assert src is not None
    wop, perm, _ = src
    rank = len(g.shape_of(operand.type) or ())
    ax = axis % rank
    wax = perm[ax] if perm is not None else ax
    name = wop.sym_name.data
    old = model.weights.tensor(name)
    shape = [1] * old.ndim
    shape[wax] = -1
    new = (old.double() * factor.reshape(shape)).to(old.dtype).contiguous()
    base = re.sub(r"\.scaled(_\d+)?$", "", name) + ".scaled"
    key = _unique(model.weights, base)
    model.weights[key] = new
    # A fresh weight op and copies of the transposes between it and ``op``: other users keep theirs.
    chain: list[Operation] = []
    u = operand
    while isinstance(u.owner, g.TransposeOp):
        chain.append(u.owner)
        u = u.owner.input
    nw = g.WeightOp(key, wop.result.type)
    ops: list[Operation] = [nw]
    cur: SSAValue = nw.result
    for t in reversed(chain):
        c = t.clone()
        c.operands = [cur]
        ops.append(c)
        cur = c.results[0]
    Rewriter.insert_op(ops, InsertPoint.before(op))
    op.operands = [*op.operands[:index], cur, *op.operands[index + 1:]]
    for t in [*chain, wop]:  # drop what no one reads any more
        if all(r.first_use is None for r in t.results):
            t.detach()
            t.erase()
    if not _referenced(model, name):
        del model.weights[name]
        if key != base and base not in model.weights:  # a weight scaled twice keeps one name
            model.weights[base] = model.weights.pop(key)
            nw.properties["name"] = StringAttr(base)


def _referenced(model, name: str) -> bool:
    return any(isinstance(o, g.WeightOp) and o.sym_name.data == name for o in model.main.walk())


def _insert_mul(model, group: Group, inv: torch.Tensor) -> None:
    from ..interpreter.dtypes import torch_dtype

    v = group.value
    elem = g.element_type(v.type)
    key = _unique(model.weights, f"{group.name}.smooth_inv")
    model.weights[key] = inv.to(torch_dtype(elem)).contiguous()
    w = g.WeightOp(key, TensorType(elem, [group.k]))
    mul = g.MulOp.create(operands=[v, w.result], result_types=[v.type])
    mul.attributes[g.NODE_ATTR] = StringAttr(f"{group.name}/smooth")
    if isinstance(v, BlockArgument):
        block: Block = v.block
        point = InsertPoint.at_start(block)
    else:
        point = InsertPoint.after(v.op)
    Rewriter.insert_op([w, mul], point)
    for c in group.consumers:
        c.operands = [mul.result, *c.operands[1:]]
    group.value = mul.result


def drop_stats(v: SSAValue) -> None:
    """Forget the calibration statistics of ``v`` (its contents changed)."""
    if isinstance(v, OpResult):
        key = STATS_ATTR if len(v.op.results) == 1 else f"{STATS_ATTR}.{v.index}"
        v.op.attributes.pop(key, None)


def _unique(store, key: str) -> str:
    base, n = key, 1
    while key in store:
        key, n = f"{base}_{n}", n + 1
    return key


def is_identity(s: torch.Tensor, tol: float = 1e-3) -> bool:
    """Whether ``s`` is 1 within ``tol`` (relative) in every channel: such a group is left alone."""
    return bool((s.double().log().abs() <= tol).all())


__all__ = ["Group", "Observed", "activation_quantizer", "apply_scales", "find_groups", "fold_plan", "is_identity",
           "observe", "product_error", "smooth_scales", "weight_absmax", "weight_matrix", "weight_quantizer"]
