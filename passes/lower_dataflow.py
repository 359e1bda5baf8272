"""``lower-dataflow``: a statically quantized model becomes integer ``dataflow`` kernels only.

Every tensor of the float graph + quant IR gets an integer form: codes on a grid (scale, zero
point, bounds) or an exact accumulator.  Ops become the integer arithmetic of
:mod:`mase_compiler.numerics.intops` (docs/hardware.md)::

    quant.cast (static int, per tensor)   the grid of the codes; a requant where codes arrive on another grid
    matmul / conv with an int weight      dataflow.linear (conv: an im2col gather before, a layout gather after),
                                          bias add and relu fused, requantized to the grid its users need
    matmul of two activations             dataflow.matmul (attention), a scalar mul/div after it folds into the scale
    add of two tensors                    dataflow.add (residual connections), one rounding
    softmax / layer_norm (last axis)      dataflow.softmax / dataflow.layer_norm
    elementwise regions of one input      dataflow.lut: GELU (also as its erf decomposition), sigmoid, relu, ...
                                          tabulated on every input code with the interpreter's own kernels
    reshape, transpose, slice, ...        dataflow.gather (an index table per item); chains compose into one
    model input / output                  dataflow.quantize / dataflow.dequantize (the float ends, in software)

A tensor that no quantize cast fixes (a residual sum, a layer norm's input, the model output)
gets the ``internal`` grid (``int8`` or ``int16``, asymmetric, min-max over the calibration data
run through the float model).  Only the batch axis may be dynamic: the hardware computes one item
at a time.  An op without an integer kernel, or a format that is not static per-tensor integer
for activations / symmetric per-channel integer for weights, is a one-line error naming it.

The interpreter runs the result with integer arithmetic only (its hardware-exact mode); it differs
from the float fake-quant IR where float rounding moves a value across a rounding boundary, and
where the hardware rounds a tensor the float model keeps in float (``tests/test_lower_dataflow.py``
measures both).  This follows MASE's integer dataflow lowering (Cheng et al., "Fast Prototyping
Next-Generation Accelerators for New ML Models using MASE") with I-BERT's integer-only softmax and
layer norm (Kim et al., 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, IntegerType, ModuleOp, Signedness, StringAttr, i64
from xdsl.dialects.func import ReturnOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from mase_compiler.dialects import dataflow as df
from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp
from mase_compiler.numerics import IntFormat, intops
from mase_compiler.numerics.requant import quantize_multiplier
from mase_compiler.session import current

ACC_BITS = 32
SOFTMAX_FRAC_BITS = 6
LUT_MAX_BITS = 10  # a dataflow.lut reads codes of at most this width (a 1024-entry table)
MOVEMENT = {"graph.reshape", "graph.transpose", "graph.flatten", "graph.squeeze", "graph.unsqueeze", "graph.slice",
            "graph.expand"}
ELEMENTWISE = {"graph.neg", "graph.abs", "graph.exp", "graph.log", "graph.sqrt", "graph.rsqrt", "graph.reciprocal",
               "graph.tanh", "graph.sigmoid", "graph.relu", "graph.erf", "graph.silu", "graph.softplus", "graph.gelu",
               "graph.leaky_relu", "graph.clip", "graph.add", "graph.sub", "graph.mul", "graph.div", "graph.pow",
               "graph.max", "graph.min", "graph.sin", "graph.cos"}


class LoweringError(ValueError):
    """What lower-dataflow cannot turn into integer hardware (one line)."""


@dataclass(frozen=True)
class LowerDataflow(ModulePass):
    """Lowers a statically integer-quantized model to dataflow integer kernels (docs/hardware.md)."""

    name = "lower-dataflow"

    internal: str = "int16"  # grid of tensors no quantize cast fixes: int16 (default) or int8
    pow2: bool = False  # those grids' scales rounded up to powers of two (fixed point, with int8:pow2 casts)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.internal not in ("int8", "int16"):
            raise LoweringError(f"lower-dataflow internal must be int8 or int16, not {self.internal!r}")
        session = current(self.name)
        notes = _Lowering(session, int(self.internal[3:]), self.pow2).run(op)
        DeadCodeElimination().apply(ctx, op)  # the float ops, casts and weights the kernels replaced
        session.notes.update(notes)


# --------------------------------------------------------------------------- encodings


@dataclass(frozen=True)
class Enc:
    """Integer codes ``q`` stand for ``(q - zp) * scale``; ``scale`` float64, scalar or per channel (last axis)."""

    scale: torch.Tensor
    zp: int
    lo: int
    hi: int
    bits: int
    signed: bool

    @property
    def scalar(self) -> bool:
        return self.scale.numel() == 1

    @property
    def grid_bits(self) -> int:
        """Bits the codes need (a 10-bit grid is stored in 16-bit types)."""
        return (self.hi - self.lo).bit_length()

    def itype(self) -> IntegerType:
        return IntegerType(self.bits, Signedness.SIGNLESS if self.signed else Signedness.UNSIGNED)

    def fits(self, other: Enc) -> bool:
        """Codes of ``self`` are valid codes of ``other`` as they are (same grid and type, bounds within)."""
        return (self.zp, self.bits, self.signed) == (other.zp, other.bits, other.signed) and \
            other.lo <= self.lo and self.hi <= other.hi and \
            self.scale.shape == other.scale.shape and torch.equal(self.scale, other.scale)


def _acc_enc(scale: torch.Tensor) -> Enc:
    return Enc(scale.double(), 0, -(1 << (ACC_BITS - 1)), (1 << (ACC_BITS - 1)) - 1, ACC_BITS, True)


def _grid(lo_val: float, hi_val: float, bits: int, pow2: bool = False) -> Enc:
    """Asymmetric signed grid of ``bits`` covering ``[lo_val, hi_val]`` and 0 (0 is a code); with ``pow2`` the
    scale is the next power of two (fixed point)."""
    lo_val, hi_val = min(lo_val, 0.0), max(hi_val, 0.0)
    qlo, qhi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    scale = (hi_val - lo_val) / (qhi - qlo) if hi_val > lo_val else 1.0
    if pow2:
        scale = 2.0 ** math.ceil(math.log2(scale))
    scale = float(torch.tensor(scale, dtype=torch.float32))  # the float32 scale the software ends use
    zp = int(min(max(round(qlo - lo_val / scale), qlo), qhi))
    storage = next(b for b in (8, 16, 32) if b >= bits)  # the interpreter's and the C++ integer types
    return Enc(torch.tensor(scale, dtype=torch.float64), zp, qlo, qhi, storage, True)


# --------------------------------------------------------------------------- hardware values


@dataclass
class HV:
    """The hardware form of one graph value: codes in the new IR, a pending kernel, or an elementwise function."""

    value: SSAValue | None = None
    enc: Enc | None = None
    pending: "_Pending | None" = None
    fn: "_Fn | None" = None


@dataclass
class _Fn:
    """``f(source)`` elementwise: becomes a dataflow.lut on the source's codes."""

    source: SSAValue  # the graph value whose codes the table reads
    f: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class _Pending:
    """A linear / matmul / add whose output grid is not chosen yet: bias and relu may still fuse into it."""

    kind: str  # linear | matmul | add
    old: SSAValue  # the graph value it computes now (moves to the bias add / relu it absorbs)
    node: str
    props: dict = field(default_factory=dict)
    operands: list = field(default_factory=list)
    acc_scale: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    relu: bool = False
    post: tuple | None = None  # (index table, out shape): conv's layout gather after the linear
    base: str = ""  # weight-store prefix of its parameters (the weight's name)
    built: dict = field(default_factory=dict)  # target key -> (value, enc)


# --------------------------------------------------------------------------- the lowering


class _Lowering:
    def __init__(self, session, internal_bits: int, pow2: bool = False) -> None:
        self.session = session
        self.model = session.model
        self.bits = internal_bits
        self.pow2 = pow2
        self.hv: dict[SSAValue, HV] = {}
        self.ranges: dict[SSAValue, tuple[float, float]] | None = None
        self.counts: dict[str, int] = {}
        self.anchor: Operation | None = None

    # ---- weights and constants ----------------------------------------------------------------
    def _tensor(self, v: SSAValue) -> torch.Tensor | None:
        owner = v.owner
        if isinstance(owner, g.WeightOp):
            return self.model.weights.tensor(owner.sym_name.data)
        if isinstance(owner, g.ConstantOp):
            from mase_compiler.interpreter.kernels import dense_to_tensor

            return dense_to_tensor(owner.properties["value"])
        return None

    def _store(self, base: str, t: torch.Tensor) -> StringAttr:
        key, n = base, 1
        while key in self.model.weights:
            key, n = f"{base}_{n}", n + 1
        self.model.weights[key] = t.contiguous()
        return StringAttr(key)

    # ---- building ops -------------------------------------------------------------------------
    def _emit(self, cls, operands: list[SSAValue], etype, shape, props: dict, node: str) -> SSAValue:
        conv = {k: (IntegerAttr(int(v), i64) if isinstance(v, (int, bool)) else v) for k, v in props.items() if v is not None}
        op = cls.create(operands=operands, result_types=[g.tensor_type(etype, shape)], properties=conv,
                        attributes={g.NODE_ATTR: StringAttr(node)})
        Rewriter.insert_op(op, InsertPoint.before(self.anchor))
        self.counts[op.name] = self.counts.get(op.name, 0) + 1
        return op.results[0]

    @staticmethod
    def _node(op: Operation) -> str:
        return g.node_name(op) or op.name.split(".")[-1]

    # ---- calibration ranges of tensors without a cast -----------------------------------------
    def _range(self, v: SSAValue) -> tuple[float, float]:
        if self.ranges is None:
            raise LoweringError("lower-dataflow needs calibration data to choose the integer grid of tensors without a "
                                "quantize cast: pass it, e.g. 'masec compile --calib DATA'")
        if v not in self.ranges:
            raise LoweringError(f"lower-dataflow: no calibration range for a value of {v.owner.name if isinstance(v.owner, Operation) else 'the input'}")
        return self.ranges[v]

    def _calibrate(self, func) -> None:
        """Min/max of every float value over the calibration batches (calibrate's min-max observer: the same
        handling of non-finite and mask-sized values)."""
        batches = self.session.calibration
        if not batches:
            return
        from mase_compiler.calibration.observers import MinMaxObserver
        from mase_compiler.interpreter import Interpreter

        seen: dict[SSAValue, MinMaxObserver] = {}

        def record(v: SSAValue, t) -> None:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
                seen.setdefault(v, MinMaxObserver()).update(t)

        def observe(op, ins, outs):
            for r, t in zip(op.results, outs if isinstance(outs, (tuple, list)) else (outs,)):
                record(r, t)

        interp = Interpreter(self.model)
        for batch in batches:
            interp(batch, observe=observe)
            for a, name in zip(func.args, self.model.input_names):
                record(a, torch.as_tensor(batch[name], dtype=torch.float32))
        self.ranges = {v: (o.min, o.max) for v, o in seen.items() if o.count}

    # ---- grids users want ---------------------------------------------------------------------
    def _cast_enc(self, cast: CastOp) -> Enc:
        fmt = cast.format.format
        if not (isinstance(fmt, IntFormat) and fmt.granularity == "tensor" and fmt.rounding == "even" and cast.params
                and fmt.bits <= 16):
            raise LoweringError(f"lower-dataflow supports static per-tensor integer activations (up to 16 bits, round to "
                                f"even); the cast before {self._user_name(cast)} is {fmt} "
                                f"(quantize with a=int8 or a=uint8 and calibrate first)")
        s = self._tensor(cast.params[0])
        z = self._tensor(cast.params[1]) if len(cast.params) > 1 else torch.zeros(())
        if s is None or z is None or s.numel() != 1:
            raise LoweringError(f"lower-dataflow needs a calibrated (constant) activation scale before {self._user_name(cast)}")
        lo, hi = (int(b) for b in fmt.grid_bounds())
        return Enc(s.double().reshape(()), int(z.reshape(())), lo, hi, fmt.bits, fmt.signed)

    def _user_name(self, op: Operation) -> str:
        users = [u.operation for u in op.results[0].uses]
        return self._node(users[0]) if users else self._node(op)

    def _preferred(self, v: SSAValue, max_bits: int = ACC_BITS) -> Enc:
        """The grid of the first static cast reached through data movement, else the internal calibrated grid
        (at most ``max_bits`` wide)."""
        todo, seen = [v], set()
        while todo:
            cur = todo.pop(0)
            if cur in seen:
                continue
            seen.add(cur)
            for use in cur.uses:
                u = use.operation
                if isinstance(u, CastOp) and use.index == 0 and not isinstance(cur.owner, g.WeightOp):
                    enc = self._cast_enc(u)
                    if enc.grid_bits <= max_bits:
                        return enc
                if u.name in MOVEMENT and use.index == 0:
                    todo.append(u.results[0])
        lo, hi = self._range(v)
        return _grid(lo, hi, min(self.bits, max_bits), self.pow2)

    # ---- materialization ----------------------------------------------------------------------
    def codes(self, v: SSAValue, *, acc: bool = False, scalar: bool = False, max_bits: int = ACC_BITS,
              target: Enc | None = None) -> tuple[SSAValue, Enc]:
        """Integer codes of graph value ``v`` in the new IR: an accumulator when ``acc`` allows it,
        a scalar grid when ``scalar``, at most ``max_bits`` wide, exactly ``target`` when given."""
        hv = self.hv.get(v)
        if hv is None:
            raise LoweringError(f"lower-dataflow: {self._what(v)} is not computed by the hardware (a weight or constant "
                                f"where an activation is expected)")
        if hv.fn is not None:
            val, enc = self._lut(v, hv, target)
        elif hv.pending is not None:
            p = hv.pending
            single = len(list(p.old.uses)) <= 1
            want = None if (acc and target is None and single and p.kind != "add" and p.post is None
                            and (not scalar or p.acc_scale.numel() == 1) and not p.relu) \
                else (target or self._preferred(p.old, max_bits))
            val, enc = self._build(p, want)
        else:
            val, enc = hv.value, hv.enc
        if target is not None and not enc.fits(target):
            return self._requant(val, enc, target, v), target
        if (scalar and not enc.scalar) or enc.grid_bits > max_bits:
            target = self._preferred(v, max_bits)
            return self._requant(val, enc, target, v), target
        return val, enc

    def _what(self, v: SSAValue) -> str:
        return f"the value of {self._node(v.owner)}" if isinstance(v.owner, Operation) else "a function argument"

    def _requant(self, val: SSAValue, enc: Enc, target: Enc, v: SSAValue) -> SSAValue:
        if not target.scalar:
            raise LoweringError("lower-dataflow: a per-channel target grid needs a linear layer's accumulator")
        ratio = (enc.scale / target.scale).reshape(-1)
        pairs = [quantize_multiplier(float(r)) for r in ratio]
        node = self._node(v.owner) if isinstance(v.owner, Operation) else "input"
        props = dict(multiplier=self._store(f"{node}.requant_m", torch.tensor([m for m, _ in pairs])),
                     shift=self._store(f"{node}.requant_s", torch.tensor([s for _, s in pairs])),
                     zp_in=enc.zp, zp_out=target.zp, lo=target.lo, hi=target.hi)
        return self._emit(df.RequantOp, [val], target.itype(), g.shape_of(val.type), props, f"{node}/requant")

    def _build(self, p: _Pending, target: Enc | None) -> tuple[SSAValue, Enc]:
        if p.kind == "add":
            target = target or self._preferred(p.old)
        key = "acc" if target is None else (float(target.scale), target.zp, target.lo, target.hi, target.bits)
        if key in p.built:
            return p.built[key]
        if target is not None and p.relu:
            target = Enc(target.scale, target.zp, max(target.lo, target.zp), target.hi, target.bits, target.signed)
        if p.kind == "linear":
            out = self._build_linear(p, target)
        elif p.kind == "matmul":
            out = self._build_matmul(p, target)
        else:
            out = self._build_add(p, target)
        p.built[key] = out
        return out

    def _requant_props(self, p: _Pending, target: Enc | None, name: str) -> dict:
        if target is None:
            return dict(zp_out=0, lo=-(1 << (ACC_BITS - 1)), hi=(1 << (ACC_BITS - 1)) - 1)
        pairs = [quantize_multiplier(float(s) / float(target.scale)) for s in p.acc_scale.reshape(-1)]
        return dict(multiplier=self._store(f"{name}.m", torch.tensor([m for m, _ in pairs])),
                    shift=self._store(f"{name}.s", torch.tensor([s for _, s in pairs])),
                    zp_out=target.zp, lo=target.lo, hi=target.hi)

    def _build_linear(self, p: _Pending, target: Enc | None) -> tuple[SSAValue, Enc]:
        x, shape = p.operands[0], p.props["shape"]
        props = dict(weight=p.props["weight"], zp_in=p.props["zp_in"])
        if p.bias is not None:
            props["bias"] = self._store(f"{p.base}.bias_q", torch.round(p.bias.double() / p.acc_scale).to(torch.int32))
        props.update(self._requant_props(p, target, p.base))
        enc = target or _acc_enc(p.acc_scale)
        y = self._emit(df.LinearOp, [x], enc.itype(), shape, props, p.node)
        if p.post is not None:
            index, out_shape = p.post
            y = self._emit(df.GatherOp, [y], enc.itype(), out_shape,
                           dict(index=self._store(f"{p.base}.layout", index), pad=0), f"{p.node}/layout")
        return y, enc

    def _build_matmul(self, p: _Pending, target: Enc | None) -> tuple[SSAValue, Enc]:
        props = dict(zp_a=p.props["zp_a"], zp_b=p.props["zp_b"])
        if target is None:
            props.update(zp_out=0, lo=-(1 << (ACC_BITS - 1)), hi=(1 << (ACC_BITS - 1)) - 1)
        else:
            m, s = quantize_multiplier(float(p.acc_scale) / float(target.scale))
            props.update(multiplier=m, shift=s, zp_out=target.zp, lo=target.lo, hi=target.hi)
        enc = target or _acc_enc(p.acc_scale)
        return self._emit(df.MatmulOp, p.operands, enc.itype(), p.props["shape"], props, p.node), enc

    def _build_add(self, p: _Pending, target: Enc) -> tuple[SSAValue, Enc]:
        (va, ea), (vb, eb) = p.operands
        ma, mb, shift = intops.add_multipliers(ea.scale / target.scale, eb.scale / target.scale)
        props = dict(mult_a=self._store(f"{p.base}.ma", ma.reshape(-1)), mult_b=self._store(f"{p.base}.mb", mb.reshape(-1)),
                     shift=shift, zp_a=ea.zp, zp_b=eb.zp, zp_out=target.zp, lo=target.lo, hi=target.hi)
        return self._emit(df.AddOp, [va, vb], target.itype(), p.props["shape"], props, p.node), target

    def _lut(self, v: SSAValue, hv: HV, target: Enc | None) -> tuple[SSAValue, Enc]:
        if hv.value is not None and (target is None or hv.enc.fits(target)):
            return hv.value, hv.enc
        src_v, src_enc = self.codes(hv.fn.source, scalar=True, max_bits=LUT_MAX_BITS)
        out = target or self._preferred(v)
        codes = torch.arange(src_enc.lo, src_enc.hi + 1, dtype=torch.int64)
        x = (codes - src_enc.zp).to(torch.float32) * torch.tensor(float(src_enc.scale), dtype=torch.float32)
        with torch.no_grad():
            y = hv.fn.f(x).to(torch.float32)
        if not torch.isfinite(y).all():
            raise LoweringError(f"lower-dataflow: the elementwise function at {self._what(v)} is not finite on every "
                                f"input code; it cannot become a table")
        # The float model's arithmetic: f in float32, then the cast's division and round half to even.
        table = (torch.round(y / torch.tensor(float(out.scale), dtype=torch.float32)) + out.zp).clamp(out.lo, out.hi)
        node = self._node(v.owner)
        val = self._emit(df.LutOp, [src_v], out.itype(), g.shape_of(src_v.type),
                         dict(table=self._store(f"{node}.lut", table.to(torch.int32)), lo_in=src_enc.lo, lo=out.lo,
                              hi=out.hi), f"{node}/lut")
        if target is None:
            hv.value, hv.enc = val, out
        return val, out

    # ---- ops ----------------------------------------------------------------------------------
    def run(self, module: ModuleOp) -> dict:
        func = self.model.main
        ops = [op for op in func.body.ops]
        self.anchor = ops[-1]
        if not isinstance(self.anchor, ReturnOp):
            raise LoweringError("lower-dataflow: the function must end with func.return")
        self._calibrate(func)
        for a in func.args:
            shape = g.shape_of(a.type)
            if shape is None or any(d < 0 for d in shape[1:]):
                raise LoweringError(f"lower-dataflow needs static shapes except the batch axis; input {a.type} has others")
            if not any(True for _ in a.uses):
                continue
            enc = self._preferred(a)
            if not enc.scalar:
                raise LoweringError("lower-dataflow: the model input needs a per-tensor grid")
            val = self._emit(df.QuantizeOp, [a], enc.itype(), shape,
                             dict(scale=self._store("input.scale", enc.scale.to(torch.float32)), zero_point=enc.zp,
                                  lo=enc.lo, hi=enc.hi), "input")
            self.hv[a] = HV(val, enc)
        for op in ops[:-1]:
            self._lower(op)
        outs = []
        for v in self.anchor.operands:
            val, enc = self.codes(v, acc=True)
            node = self._node(v.owner) if isinstance(v.owner, Operation) else "input"
            if isinstance(val.owner, df.LinearOp) and val.owner.multiplier is None:  # an accumulator: its scale
                node = val.owner.weight.data.removesuffix(".codes") + ".acc"
            outs.append(self._emit(df.DequantizeOp, [val], g.element_type(v.type), g.shape_of(v.type),
                                   dict(scale=self._store(f"{node}_scale", enc.scale.to(torch.float32)),
                                        zero_point=enc.zp), "output"))
        self.anchor.operands = outs
        return {"lowered": dict(sorted(self.counts.items())), "internal_grid": f"int{self.bits}"}

    def _lower(self, op: Operation) -> None:
        name = op.name
        if name in ("graph.weight", "graph.constant") or not any(v in self.hv for v in op.operands):
            return  # weights and what is computed from them alone (a weight's transpose): their readers fold them
        if any(g.shape_of(r.type) is None for r in op.results):
            raise LoweringError(f"lower-dataflow needs ranked tensors; {self._node(op)} ({name}) has none")
        if isinstance(op, CastOp):
            self._cast(op)
        elif name == "graph.matmul":
            self._matmul(op)
        elif name == "graph.conv":
            self._conv(op)
        elif name == "graph.softmax":
            self._softmax(op)
        elif name == "graph.layer_norm":
            self._layer_norm(op)
        elif name in MOVEMENT:
            self._movement(op)
        elif name in ELEMENTWISE:
            self._elementwise(op)
        else:
            raise LoweringError(f"lower-dataflow has no integer kernel for {name} ({self._node(op)}); supported: "
                                "linear/conv, attention matmul, add, softmax, layer_norm, elementwise functions of one "
                                "tensor, data movement")

    def _cast(self, op: CastOp) -> None:
        target = self._cast_enc(op)
        val, enc = self.codes(op.input, target=target)
        self.hv[op.results[0]] = HV(val, enc)

    def _act_codes(self, v: SSAValue, what: str) -> tuple[SSAValue, Enc]:
        if not isinstance(v.owner, CastOp):
            raise LoweringError(f"lower-dataflow: the activation operand of {what} must be quantized (a static int cast); "
                                f"run quantize{{a=int8}} first")
        val, enc = self.codes(v)
        return val, enc

    def _weight(self, v: SSAValue, what: str, axis_for_channels: Callable[[bool], int]):
        """Integer codes, per-channel scales and name of a symmetric per-channel int weight (through a transpose)."""
        transposed = False
        if isinstance(v.owner, g.TransposeOp) and list(v.owner.perm.get_values()) == [1, 0]:
            transposed, v = True, v.owner.input
        cast = v.owner
        if not (isinstance(cast, CastOp) and isinstance(cast.input.owner, g.WeightOp) and len(cast.params) == 1):
            return None
        fmt = cast.format.format
        if not (isinstance(fmt, IntFormat) and fmt.symmetric and fmt.granularity in ("channel", "tensor")
                and fmt.rounding == "even" and fmt.bits <= 16):
            raise LoweringError(f"lower-dataflow supports symmetric per-channel or per-tensor integer weights (round to "
                                f"even); {what} has {fmt}")
        w = self.model.weights.tensor(cast.input.owner.sym_name.data).to(torch.float32)
        scale = self._tensor(cast.params[0])
        if scale is None:
            raise LoweringError(f"lower-dataflow needs the weight scales of {what} computed at compile time")
        scale = scale.to(torch.float32)
        want_axis = axis_for_channels(transposed)
        if fmt.granularity == "channel":
            axis = cast.axis.value.data if cast.axis is not None else 0
            if axis % w.dim() != want_axis:
                raise LoweringError(f"lower-dataflow: the weight scales of {what} must run along its output channels")
        lo, hi = fmt.grid_bounds()
        codes = torch.round(w / scale).clamp(lo, hi)  # IntFormat's grid codes: float32 division, half to even
        n_out = w.shape[want_axis]
        s = scale.reshape(-1).expand(n_out) if scale.numel() == 1 else scale.reshape(-1)
        return codes.to(torch.int64), s, cast.input.owner.sym_name.data, transposed

    def _matmul(self, op: Operation) -> None:
        a, b = op.operands
        node = self._node(op)
        w = self._weight(b, node, lambda t: 0 if t else 1)
        shape = g.shape_of(op.results[0].type)
        if w is not None:
            codes, s_w, wname, transposed = w
            if codes.dim() != 2:
                raise LoweringError(f"lower-dataflow: the weight of {node} must be 2-D")
            if transposed:
                codes = codes.T
            xv, xe = self._act_codes(a, node)
            if not xe.scalar:
                raise LoweringError(f"lower-dataflow: {node} needs a per-tensor activation grid")
            store_t = torch.int8 if codes.abs().max() < 128 else torch.int16
            p = _Pending("linear", op.results[0], node, operands=[xv],
                         props=dict(weight=self._store(f"{wname}.codes", codes.to(store_t)), zp_in=xe.zp, shape=shape), base=wname,
                         acc_scale=(xe.scale * s_w.double()).to(torch.float32).double())
            self.hv[op.results[0]] = HV(pending=p)
            return
        av, ae = self._act_codes(a, node)
        bv, be = self._act_codes(b, node)
        if not (ae.scalar and be.scalar):
            raise LoweringError(f"lower-dataflow: both operands of {node} need per-tensor grids")
        p = _Pending("matmul", op.results[0], node, operands=[av, bv], props=dict(zp_a=ae.zp, zp_b=be.zp, shape=shape), base=node,
                     acc_scale=(ae.scale * be.scale).reshape(()))
        self.hv[op.results[0]] = HV(pending=p)

    def _conv(self, op: Operation) -> None:
        node = self._node(op)
        if op.group.value.data != 1:
            raise LoweringError(f"lower-dataflow supports convolutions with group = 1; {node} has {op.group.value.data}")
        w = self._weight(op.weight, node, lambda t: 0)
        if w is None:
            raise LoweringError(f"lower-dataflow: the weight of {node} must be an integer-quantized weight")
        codes, s_w, wname, _ = w
        if codes.dim() != 4:
            raise LoweringError(f"lower-dataflow supports 2-D convolutions; {node} has a {codes.dim()}-D weight")
        xv, xe = self._act_codes(op.input, node)
        in_shape, out_shape = g.shape_of(op.input.type), g.shape_of(op.results[0].type)
        c_out, c_in, kh, kw = codes.shape
        pads, strides = list(op.pads.get_values()), list(op.strides.get_values())
        dil = list(op.dilations.get_values())
        # im2col: the index of every patch element ([Ho*Wo, Ci*kh*kw], -1 for padding), from an arange image.
        ids = torch.arange(math.prod(in_shape[1:]), dtype=torch.float64).reshape(1, *in_shape[1:]) + 1
        ids = F.pad(ids, (pads[1], pads[3], pads[0], pads[2]))
        cols = F.unfold(ids, (kh, kw), dilation=dil, stride=strides)[0].T  # [L, Ci*kh*kw]
        im2col = (cols.round().to(torch.int64) - 1)
        ho, wo = out_shape[2], out_shape[3]
        if cols.shape[0] != ho * wo:
            raise LoweringError(f"lower-dataflow: unexpected output size of {node}")
        patches = self._gather(op.input, xv, xe, im2col.reshape(-1), (in_shape[0], ho * wo, c_in * kh * kw),
                               f"{node}/im2col", f"{node}.im2col")
        layout = torch.arange(ho * wo * c_out).reshape(ho * wo, c_out).T.reshape(-1)  # [HW, Co] -> [Co, H, W]
        store_t = torch.int8 if codes.abs().max() < 128 else torch.int16
        bias = self._tensor(op.bias) if op.bias is not None else None
        p = _Pending("linear", op.results[0], node, operands=[patches],
                     props=dict(weight=self._store(f"{wname}.codes", codes.reshape(c_out, -1).T.to(store_t)), zp_in=xe.zp,
                                shape=(in_shape[0], ho * wo, c_out)),
                     acc_scale=(xe.scale * s_w.double()).to(torch.float32).double(), bias=bias,
                     post=(layout, tuple(out_shape)), base=wname)
        self.hv[op.results[0]] = HV(pending=p)

    def _softmax(self, op: Operation) -> None:
        node = self._node(op)
        axis = op.axis.value.data if getattr(op, "axis", None) is not None else -1
        rank = len(g.shape_of(op.results[0].type))
        if axis % rank != rank - 1:
            raise LoweringError(f"lower-dataflow supports softmax over the last axis; {node} has axis {axis}")
        xv, xe = self.codes(op.operands[0], acc=True, scalar=True)
        out = self._preferred(op.results[0])
        m, s = quantize_multiplier(float(xe.scale) / math.log(2) * 2**SOFTMAX_FRAC_BITS)
        props = dict(multiplier=m, shift=s, frac_bits=SOFTMAX_FRAC_BITS,
                     numerator=round(2**intops.SOFTMAX_RECIP_BITS / float(out.scale)),
                     recip_bits=intops.SOFTMAX_RECIP_BITS, zp_out=out.zp, lo=out.lo, hi=out.hi)
        val = self._emit(df.SoftmaxOp, [xv], out.itype(), g.shape_of(op.results[0].type), props, node)
        self.hv[op.results[0]] = HV(val, out)

    def _layer_norm(self, op: Operation) -> None:
        node = self._node(op)
        rank = len(g.shape_of(op.results[0].type))
        axis = op.axis.value.data if getattr(op, "axis", None) is not None else -1
        if axis % rank != rank - 1:
            raise LoweringError(f"lower-dataflow supports layer_norm over the last axis; {node} has axis {axis}")
        gamma = self._tensor(op.operands[1])
        beta = self._tensor(op.operands[2]) if len(op.operands) > 2 else None
        if gamma is None:
            raise LoweringError(f"lower-dataflow: the scale of {node} must be a weight")
        d = g.shape_of(op.results[0].type)[-1]
        gamma = gamma.double().reshape(-1).expand(d)
        beta = torch.zeros(d, dtype=torch.float64) if beta is None else beta.double().reshape(-1).expand(d)
        xv, xe = self.codes(op.operands[0], scalar=True, max_bits=16)
        out = self._preferred(op.results[0])
        s_g = float(gamma.abs().max()) / 32767 or 1.0
        fb = intops.NORM_FRAC_BITS
        m, s = quantize_multiplier(s_g * 2.0**-fb / float(out.scale), bits=24)
        eps = float(op.epsilon.value.data) if getattr(op, "epsilon", None) is not None else 1e-5
        props = dict(gamma=self._store(f"{node}.gamma_q", torch.round(gamma / s_g).to(torch.int16)),
                     beta=self._store(f"{node}.beta_q", torch.round(beta / (s_g * 2.0**-fb)).to(torch.int64)),
                     eps=max(1, round(eps * d * d / float(xe.scale) ** 2)), zp_in=xe.zp, multiplier=m, shift=s,
                     recip_bits=intops.NORM_RECIP_BITS, frac_bits=fb, zp_out=out.zp, lo=out.lo, hi=out.hi)
        val = self._emit(df.LayerNormOp, [xv], out.itype(), g.shape_of(op.results[0].type), props, node)
        self.hv[op.results[0]] = HV(val, out)

    def _movement(self, op: Operation) -> None:
        from mase_compiler.interpreter.kernels import KERNELS, KernelEnv

        node = self._node(op)
        x = op.operands[0]
        in_shape, out_shape = g.shape_of(x.type), g.shape_of(op.results[0].type)
        if any(d < 0 for d in in_shape[1:]) or any(d < 0 for d in out_shape[1:]):
            raise LoweringError(f"lower-dataflow needs static shapes except the batch axis; {node} has {op.results[0].type}")
        rest = [self._tensor(v) for v in op.operands[1:]]
        if any(r is None for r in rest):
            raise LoweringError(f"lower-dataflow: the shape operands of {node} must be constants")
        fn = KERNELS[op.name](op, KernelEnv(self.model.weights, torch.device("cpu")))
        n_in = math.prod(in_shape[1:])
        ids = torch.arange(2 * n_in, dtype=torch.int64).reshape(2, *in_shape[1:])
        out = fn(ids, *rest)
        if tuple(out.shape[1:]) != tuple(out_shape[1:]) or out.shape[0] != 2 or not torch.equal(out[1], out[0] + n_in):
            raise LoweringError(f"lower-dataflow: {node} ({op.name}) mixes items of the batch; only per-item data "
                                f"movement has hardware")
        xv, xe = self.codes(x, scalar=True)
        val = self._gather(x, xv, xe, out[0].reshape(-1), out_shape, node, f"{node}.index")
        self.hv[op.results[0]] = HV(val, xe)

    def _gather(self, x: SSAValue, xv: SSAValue, xe: Enc, index: torch.Tensor, out_shape, node: str,
                key: str) -> SSAValue:
        """A dataflow.gather of ``xv`` (the codes of graph value ``x``), composed with the gather that produced
        ``xv`` (transpose after transpose, a conv's layout then the next conv's im2col): one table, one buffer.
        The inner gather stays while other kernels read it (dead-code elimination drops it otherwise)."""
        src = xv.owner
        if isinstance(src, df.GatherOp):
            inner = self.model.weights.tensor(src.index.data).to(torch.int64)
            index = torch.where(index < 0, index, inner[index.clamp(min=0)])
            xv = src.input
        return self._emit(df.GatherOp, [xv], xe.itype(), out_shape,
                          dict(index=self._store(key, index.to(torch.int32)), pad=xe.zp), node)

    def _elementwise(self, op: Operation) -> None:
        name, node = op.name, self._node(op)
        ins = list(op.operands)
        hw = [v for v in ins if v in self.hv]
        consts = {i: self._tensor(v) for i, v in enumerate(ins) if v not in self.hv}
        if any(c is None for c in consts.values()):
            raise LoweringError(f"lower-dataflow: an operand of {node} is neither computed by the hardware nor a constant")
        # Fusions into a pending linear / matmul / add.
        if len(hw) == 1:
            p = self.hv[hw[0]].pending
            single = p is not None and len(list(hw[0].uses)) == 1
            const = next(iter(consts.values()), None)
            if single and name == "graph.relu":
                p.relu, p.old = True, op.results[0]
                self.hv[op.results[0]] = HV(pending=p)
                return
            if single and name == "graph.add" and p.kind == "linear" and p.bias is None and p.post is None \
                    and const.dim() == 1 and const.numel() == p.acc_scale.numel():
                p.bias, p.old = const.to(torch.float32), op.results[0]
                self.hv[op.results[0]] = HV(pending=p)
                return
            scalar_scale = (name == "graph.mul" or (name == "graph.div" and 1 in consts)) and const is not None \
                and const.numel() == 1 and float(const) > 0
            if single and scalar_scale and p.kind in ("linear", "matmul") and not p.relu and p.bias is None \
                    and p.post is None:
                k = float(const) if name == "graph.mul" else 1.0 / float(const)
                p.acc_scale, p.old = p.acc_scale * k, op.results[0]
                self.hv[op.results[0]] = HV(pending=p)
                return
        # Two tensors: a residual add, unless both are functions of one source (then it is elementwise).
        sources = {self._source(v) for v in hw}
        if len(sources) == 2:
            if name != "graph.add":
                raise LoweringError(f"lower-dataflow has no integer kernel for {name} of two tensors ({node}); only add")
            a, b = (self.codes(v, acc=True) for v in ins)
            p = _Pending("add", op.results[0], node, operands=[a, b], props=dict(shape=g.shape_of(op.results[0].type)),
                         base=node)
            self.hv[op.results[0]] = HV(pending=p)
            return
        if not hw:
            raise LoweringError(f"lower-dataflow: {node} computes on constants only; fold it first (canonicalize)")
        from mase_compiler.interpreter.kernels import KERNELS, KernelEnv

        if any(c.numel() > 1 for c in consts.values()):
            raise LoweringError(f"lower-dataflow: {node} ({name}) has a per-element constant; only scalars fold into a "
                                f"table (a bias belongs right after its linear layer)")
        kern = KERNELS[name](op, KernelEnv(self.model.weights, torch.device("cpu")))
        src_v = next(iter(sources))
        parts = []
        for i, v in enumerate(ins):
            if i in consts:
                c = consts[i].to(torch.float32) if consts[i].is_floating_point() else consts[i]
                parts.append(lambda x, c=c: c)
            else:
                h = self.hv[v]
                parts.append(h.fn.f if h.fn is not None else (lambda x: x))
        f = (lambda x, parts=parts: kern(*[p(x) for p in parts]))
        self.hv[op.results[0]] = HV(fn=_Fn(src_v, f))

    def _source(self, v: SSAValue) -> SSAValue:
        h = self.hv[v]
        return h.fn.source if h.fn is not None else v


__all__ = ["LowerDataflow", "LoweringError"]
