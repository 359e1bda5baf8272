"""``quantize``: put ``quant.cast`` on the operands of compute ops (post-training quantization).

Rewrites every selected ``graph.matmul`` / ``graph.conv`` so that its weight operand reads a
cast of the ``graph.weight`` (scales computed now, from the weight, and stored in the weight
store as ``<weight>.scale``) and its activation operands read a cast of the activation (static
scales from the ``quant.stats`` that ``calibrate`` left on the IR, or dynamic per-token / MX
scales computed at run time).  The contract is docs/quantized-ir.md.

Formats are chosen per op: ``default`` (weights and activations), then ``w`` / ``a``, then the
op-kind options ``matmul`` / ``conv``, then ``rules`` (``REGEX=W[/A]`` on the op's source-node
name, later rules win, ``none`` leaves the op in float), and ``skip`` regexes.  A format value
``W/A`` sets weights and activations separately; ``ops=matmul,conv,gather`` also quantizes embedding
tables (the weight a ``graph.gather`` looks rows up in, one scale per row).  ``act_act=false`` leaves matmuls whose operands
are both activations (attention scores and context) in float, as most W8A8 schemes do.

Quantized attention (EdgeQAT, Shen et al. 2024: the query and key, the attention map and the
KV cache get their own low-bit formats): ``query`` / ``key`` / ``attn`` / ``value`` set the format of
Q, K^T, the attention map (softmax output) and V as the two matmuls of every block that
:func:`mase_compiler.attention.find_attention` finds read them; ``kv`` sets ``key`` and ``value``
together (what a KV cache holds).  They win over every other choice for those operands (``default``,
``a``, ``matmul``, ``rules``, ``act_act=false``, ``ops``); only ``skip`` still leaves the op alone;
``none`` keeps the operand in float.  Operands are [batch, heads, seq, dh] and dynamic scales follow
one rule: every scale of Q and of the map covers one query row, every scale of K and V covers one
key token, so a KV cache is appendable (a cached token's codes never depend on later tokens):

========  ==============  ======================================================
operand   shape           ``:token`` / ``:group=N`` / MX blocks run along
========  ==============  ======================================================
query     [.., Sq, dh]    dh (axis -1): one scale per query token
key K^T   [.., dh, Sk]    dh (axis -2): one scale per key token (a column of K^T)
attn      [.., Sq, Sk]    Sk (axis -1): one scale per row of the map
value     [.., Sk, dh]    dh (axis -1): one scale per value token
========  ==============  ======================================================

For Q, K^T and the map this is the matmul's reduction axis, as for any activation; for V it is not
(the reduction runs over Sk), so an integer P @ V kernel dequantizes V's rows first, as KV-cache
kernels do.  A spec with ``:axis=N`` overrides the table.  Per-tensor integer and FP8 formats are
static and need ``calibrate`` first (it observes every activation operand of a matmul, these
included).

Granularity comes from the format spec: ``int8:channel`` scales each output channel of a
weight, ``int4:group=128`` groups along the reduction axis, ``int8:token`` scales each row of
an activation dynamically; MX blocks always run along the reduction axis.  The ``fp8`` preset
is the FP8-BERT recipe (Li et al., "FP8-BERT: Post-Training Quantization for Transformer",
§3): E4M3 weights and activations with per-tensor scales ``amax / 448`` from max calibration.

Running the pass twice changes nothing: operands that already read a cast are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, TensorType, f32, i32, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from mase_compiler.attention import find_attention
from mase_compiler.calibration.stats import get_stats
from mase_compiler.passes.calibrate import is_static
from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp, format_attr
from mase_compiler.numerics import DIntFormat, FixedFormat, Format, IntFormat, MinifloatFormat, MXFormat, parse
from mase_compiler.numerics._options import suggestion
from mase_compiler.session import current

KINDS = {"matmul": g.MatmulOp, "conv": g.ConvOp, "gather": g.GatherOp}
# The attention operands with options of their own: role -> (matmul, operand index) of a block.
ROLES = {"query": ("qk", 0), "key": ("qk", 1), "attn": ("av", 0), "value": ("av", 1)}


def _format(spec: str, what: str) -> Format | None:
    if spec in ("", "none", "float"):
        return None
    try:
        return parse(spec)
    except ValueError as e:
        raise ValueError(f"quantize option {what}: {e}") from None


def _pair(value: str, what: str) -> tuple[Format | None, Format | None]:
    """``W/A`` or one format for both."""
    w, sep, a = value.partition("/")
    return (_format(w, what), _format(a if sep else w, what))


def _split_rule(rule: str) -> tuple[str, str]:
    """``REGEX=W[/A]`` split at the first ``=`` after which a format pair parses: formats may hold ``=``
    themselves (``int4:group=128``, ``mxint8:block=16``), regexes rarely do."""
    cuts = [i for i, c in enumerate(rule) if c == "="]
    for i in cuts:
        try:
            _pair(rule[i + 1:], "rule")
        except ValueError:
            continue
        return rule[:i], rule[i + 1:]
    return rule.rpartition("=")[0], rule.rpartition("=")[2]  # no cut parses: _pair names the bad format


@dataclass(frozen=True)
class Quantize(ModulePass):
    """Inserts quant.cast on the weight and activation operands of matmul/conv ops."""

    name = "quantize"

    default: str = ""
    w: str = ""
    a: str = ""
    matmul: str = ""
    conv: str = ""
    gather: str = ""
    ops: str = "matmul,conv"
    rules: tuple[str, ...] = field(default=())
    skip: tuple[str, ...] = field(default=())
    act_act: bool = True
    query: str = ""
    key: str = ""
    attn: str = ""
    value: str = ""
    kv: str = ""

    def __post_init__(self) -> None:
        kinds = [k for k in self.ops.split(",") if k]
        for k in kinds:
            if k not in KINDS:
                raise ValueError(f"ops must name op kinds from {', '.join(KINDS)}, not {k!r}" + suggestion(k, KINDS))
        if self.kv and (self.key or self.value):
            given = " and ".join(f"{o}={getattr(self, o)!r}" for o in ("key", "value") if getattr(self, o))
            raise ValueError(f"quantize option kv sets both key and value, so it cannot be combined with {given}: "
                             "give kv alone, or key and value")
        # Parse everything now so that a typo fails before any IR is touched.
        self.plan()
        self.attention_plan()
        for pattern in (*self.skip, *(_split_rule(r)[0] for r in self.rules)):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {e}") from None
        for r in self.rules:
            if "=" not in r:
                raise ValueError(f"rules entries must be REGEX=FORMAT[/FORMAT], not {r!r}")

    def plan(self) -> tuple[dict[str, tuple[Format | None, Format | None]], list[tuple[re.Pattern[str], tuple[Format | None, Format | None]]]]:
        """Formats by op kind, and the name rules (regex -> (weight, activation))."""
        w, a = _pair(self.default, "default")
        if self.w:
            w = _format(self.w, "w")
        if self.a:
            a = _format(self.a, "a")
        by_kind = {k: (w, a) for k in KINDS}
        for k in KINDS:
            value = getattr(self, k)
            if value:
                by_kind[k] = _pair(value, k)
        rules = []
        for r in self.rules:
            pattern, value = _split_rule(r)
            rules.append((re.compile(pattern), _pair(value, f"rules entry {r!r}")))
        return by_kind, rules

    def attention_plan(self) -> dict[str, Format | None]:
        """The attention roles given an option (``kv`` expanded), each with its format (None = float)."""
        specs = {r: getattr(self, r) for r in ROLES if getattr(self, r)}
        if self.kv:
            specs["key"] = specs["value"] = self.kv
        return {r: _format(spec, "kv" if self.kv and r in ("key", "value") else r) for r, spec in specs.items()}

    def attention_operands(self, module: ModuleOp) -> dict[tuple[int, int], tuple[str, Format | None]]:
        """``(id(matmul), operand index) -> (role, format)`` for the attention operands that have an option."""
        roles = self.attention_plan()
        if not roles:
            return {}
        blocks = find_attention(module)
        if not blocks:
            given = ", ".join(f"{r}=" for r in (*ROLES, "kv") if getattr(self, r))
            raise ValueError(f"quantize options {given} need attention blocks (Q @ K^T -> softmax -> @ V), and the "
                             "model has none: remove them")
        out = {}
        for block in blocks:
            for role, fmt in roles.items():
                attr, index = ROLES[role]
                out[(id(getattr(block, attr)), index)] = (role, fmt)
        return out

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        session = current(self.name)
        roles = self.attention_operands(op)
        actions = self.actions(op)
        # Check every operand first, so that a refusal leaves the IR untouched.
        for target, name, index, kind, fmt, weight in actions:
            _check(target, name, index, kind, fmt, weight)
        done = {"ops": len({id(a[0]) for a in actions}), "weight_casts": 0, "activation_casts": 0}
        formats: dict[str, int] = {}
        attention: dict[str, int] = {}
        for target, name, index, kind, fmt, weight in actions:
            q = _Rewrite(session, target, name)
            if weight is not None:
                q.weight(index, weight, fmt, kind)
                done["weight_casts"] += 1
            else:
                role = roles.get((id(target), index), (None,))[0]
                q.activation(index, fmt, kind, role)
                done["activation_casts"] += 1
                if role is not None:
                    attention[role] = attention.get(role, 0) + 1
            formats[str(fmt)] = formats.get(str(fmt), 0) + 1
        session.notes.update(done, formats=formats)
        if roles:
            session.notes["attention_casts"] = attention

    def actions(self, module: ModuleOp) -> list[tuple[Operation, str, int, str, Format, object]]:
        """(op, source name, operand index, op kind, format, weight source or None) for each operand to cast."""
        by_kind, rules = self.plan()
        roles = self.attention_operands(module)
        kinds = {k for k in self.ops.split(",") if k}
        skip = [re.compile(s) for s in self.skip]
        counts = {k: 0 for k in KINDS}
        out = []
        for target in list(module.walk()):
            kind = next((k for k, cls in KINDS.items() if isinstance(target, cls)), None)
            if kind is None:
                continue
            name = g.node_name(target) or f"{kind}_{counts[kind]}"
            counts[kind] += 1
            if any(p.search(name) for p in skip):
                continue
            wfmt, afmt = by_kind[kind]
            for pattern, pair in rules:
                if pattern.search(name):
                    wfmt, afmt = pair
            sources = [_weight_source(o) for o in target.operands[:2]]
            # act_act=false: activation x activation (attention scores and context) stays float
            generic = kind in kinds and (self.act_act or any(w is not None for w in sources))
            for index, operand in enumerate(target.operands):
                role = roles.get((id(target), index))
                if role is None and not generic:
                    continue
                if kind == "conv" and index > 1:  # the bias is added in float
                    continue
                if kind == "gather" and (index != 0 or _weight_source(operand) is None):
                    continue  # only embedding tables: a weight looked up by index
                weight = _weight_source(operand)
                if weight is None and is_static(operand):
                    continue  # a constant, or a weight reshaped on its way: no channel axis to follow, left float
                fmt = role[1] if role is not None else wfmt if weight is not None else afmt
                if fmt is not None and _is_float(operand) and not _is_cast(operand):
                    out.append((target, name, index, kind, fmt, weight))
        return out


def _check(target: Operation, name: str, index: int, kind: str, fmt: Format, weight) -> None:
    if weight is not None:
        if isinstance(fmt, (IntFormat, DIntFormat)) and fmt.granularity == "token":
            raise ValueError(f"weight format '{fmt}' has per-token granularity, which is for activations; "
                             f"use ':channel' or ':group=N' for weights (op {name})")
        return
    if isinstance(fmt, (IntFormat, DIntFormat)) and fmt.granularity == "channel":
        raise ValueError(f"activation format '{fmt}' has per-channel granularity; static per-channel activation "
                         f"scales are not supported: use per-tensor ('{_tensor_spec(fmt)}') or ':token' (op {name})")
    static = (isinstance(fmt, (IntFormat, DIntFormat)) and fmt.granularity == "tensor") or \
        (isinstance(fmt, MinifloatFormat) and fmt.bits <= 8)
    if static and get_stats(target.operands[index]) is None:
        raise ValueError(
            f"activation format '{fmt}' needs calibration statistics for operand {index} of {name}: put 'calibrate' "
            f"before 'quantize' (with --calib DATA), or use a dynamic format such as 'int8:token' or an MX format"
        )


# ---- operand analysis -----------------------------------------------------------------------------
def _is_float(v: SSAValue) -> bool:
    return g.is_float(g.element_type(v.type))


def _is_cast(v: SSAValue) -> bool:
    """Whether ``v`` is already quantized: a cast, possibly seen through transposes."""
    while isinstance(v.owner, g.TransposeOp):
        v = v.owner.input
    return isinstance(v.owner, CastOp)


def _weight_source(v: SSAValue) -> tuple[g.WeightOp, list[int] | None, SSAValue] | None:
    """For an operand that is a weight, possibly through transposes: the weight op, the
    permutation from operand dims to weight dims (None = identity) and the value to cast
    (the weight result itself)."""
    perm: list[int] | None = None
    while isinstance(v.owner, g.TransposeOp):
        p = list(v.owner.perm.get_values())
        perm = p if perm is None else [p[i] for i in perm]
        v = v.owner.input
    if isinstance(v.owner, g.WeightOp):
        return v.owner, perm, v
    return None


# ---- the rewrite ----------------------------------------------------------------------------------
class _Rewrite:
    def __init__(self, session, target: Operation, name: str):
        self.session = session
        self.model = session.model
        self.target = target
        self.name = name

    def _insert(self, new: list[Operation], before: Operation) -> None:
        Rewriter.insert_op(new, InsertPoint.before(before))

    def _reduction_axis(self, index: int, kind: str, rank: int) -> int:
        """Axis of operand ``index`` that the op reduces over (MX blocks and int groups run along it)."""
        if kind == "conv":
            return 1  # input channels, for activations [N, C, ...] and weights [O, C/g, ...]
        if kind == "gather":
            return rank - 1  # an embedding table [V, D]: blocks and groups run along D
        return rank - 1 if index == 0 else rank - 2

    def _channel_axis(self, index: int, kind: str, rank: int) -> int:
        """Axis of a weight operand that indexes output channels."""
        if kind in ("conv", "gather"):
            return 0  # output channels of a conv weight; one scale per row (token) of an embedding table
        return rank - 1 if index == 1 else rank - 2

    def weight(self, index: int, source, fmt: Format, kind: str) -> None:
        wop, perm, value = source
        operand = self.target.operands[index]
        rank = len(g.shape_of(operand.type) or ())
        red = self._reduction_axis(index, kind, rank)
        chan = self._channel_axis(index, kind, rank)
        if perm is not None:  # operand dim d is weight dim perm[d]
            red, chan = perm[red], perm[chan]
        wname = wop.sym_name.data
        w = self.model.weights.tensor(wname).to(torch.float32)
        axis: int | None = None
        params: list[torch.Tensor] = []
        if isinstance(fmt, MXFormat):
            axis = red if fmt.axis == -1 else None  # an explicit ':axis=N' in the spec wins
        elif isinstance(fmt, (IntFormat, DIntFormat)):
            gran = fmt.granularity
            if fmt.axis is None and gran in ("channel", "group"):
                axis = chan if gran == "channel" else red
            scale, zp = fmt.compute_scale(w, axis=axis)
            params = [scale] + ([zp] if zp is not None else [])
        elif isinstance(fmt, MinifloatFormat):
            amax = float(torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0).abs().max()) if w.numel() else 0.0
            params = [torch.tensor(_minifloat_scale(fmt, amax), dtype=torch.float32)]
        elif not isinstance(fmt, FixedFormat):
            raise ValueError(f"cannot quantize weights to '{fmt}'")
        ops: list[Operation] = []
        pvals: list[SSAValue] = []
        for suffix, t in zip(("scale", "zero_point"), params):
            key = _unique(self.model.weights, f"{wname}.{suffix}")
            self.model.weights[key] = t.contiguous()
            elem = i32 if suffix == "zero_point" else f32
            pop = g.WeightOp(key, TensorType(elem, list(t.shape)))
            ops.append(pop)
            pvals.append(pop.results[0])
        cast = _cast(value, pvals, fmt, axis)
        ops.append(cast)
        self._insert(ops, self._first_user(value))
        # Rewire only the path to this op: other users of the weight keep the float value.
        user = operand.owner if perm is not None else self.target
        chain = operand
        while isinstance(chain.owner, g.TransposeOp):
            user, chain = chain.owner, chain.owner.input
        for i, o in enumerate(user.operands):
            if o is value:
                user.operands = [*user.operands[:i], cast.results[0], *user.operands[i + 1:]]
                break

    def _first_user(self, value: SSAValue) -> Operation:
        # Insert right after the producer so every user the cast may serve comes later.
        producer = value.owner
        assert isinstance(producer, Operation)
        return producer.next_op

    def activation(self, index: int, fmt: Format, kind: str, role: str | None = None) -> None:
        """Cast activation operand ``index``; ``role`` names an attention operand (``ROLES``): the value's
        scales and blocks then run along dh, one per cached token, not along the reduction axis."""
        operand = self.target.operands[index]
        rank = len(g.shape_of(operand.type) or ())
        red = (rank - 1 if role == "value" else self._reduction_axis(index, kind, rank)) if rank else None
        axis: int | None = None
        pvals: list[SSAValue] = []
        ops: list[Operation] = []
        if isinstance(fmt, MXFormat):
            axis = (red - rank if red is not None else -1) if fmt.axis == -1 else None
        elif isinstance(fmt, (IntFormat, DIntFormat)):
            if fmt.granularity == "group" and fmt.axis is None and red is not None:
                axis = red - rank
            elif fmt.granularity == "token" and fmt.axis is None and red is not None:
                axis = red - rank  # one scale per row of the reduction axis (per pixel for conv)
            elif fmt.granularity == "tensor":
                stats = self._stats(operand, fmt)
                scale, zp = fmt.scale_from_range(torch.tensor(stats["lo"], dtype=torch.float32), torch.tensor(stats["hi"], dtype=torch.float32))
                ops.append(_constant(float(scale), f32))
                if zp is not None:
                    ops.append(_constant(int(zp), i32))
        elif isinstance(fmt, MinifloatFormat):
            if fmt.bits <= 8:
                stats = self._stats(operand, fmt)
                ops.append(_constant(_minifloat_scale(fmt, max(abs(stats["lo"]), abs(stats["hi"]))), f32))
        elif not isinstance(fmt, FixedFormat):
            raise ValueError(f"cannot quantize activations to '{fmt}'")
        pvals = [o.results[0] for o in ops]
        cast = _cast(operand, pvals, fmt, axis)
        ops.append(cast)
        self._insert(ops, self.target)
        self.target.operands = [*self.target.operands[:index], cast.results[0], *self.target.operands[index + 1:]]

    def _stats(self, value: SSAValue, fmt: Format) -> dict:
        stats = get_stats(value)
        assert stats is not None, "checked by _check before any rewrite"
        return stats


def _tensor_spec(fmt: Format) -> str:
    return str(fmt).replace(":channel", "")


def _minifloat_scale(fmt: MinifloatFormat, amax: float) -> float:
    """Per-tensor scale mapping ``amax`` to the format's largest finite value (FP8-BERT §3)."""
    if not amax > 0 or amax != amax:
        return 1.0
    return float(torch.tensor(amax / fmt.max_value, dtype=torch.float32))


def _constant(value: float | int, elem) -> Operation:
    return g.ConstantOp.create(result_types=[TensorType(elem, [])], properties={"value": g.dense(elem, (), value)})


def _cast(value: SSAValue, params: list[SSAValue], fmt: Format, axis: int | None) -> CastOp:
    props = {"format": format_attr(fmt)}
    if axis is not None:
        props["axis"] = IntegerAttr(axis, i64)
    return CastOp.create(operands=[value, *params], result_types=[value.type], properties=props)


def _unique(store, key: str) -> str:
    base, n = key, 1
    while key in store:
        key, n = f"{base}_{n}", n + 1
    return key
