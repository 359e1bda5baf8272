"""``lower-dataflow``: statically quantized integer linear layers become ``dataflow`` integer kernels.

Matches ``graph.matmul(quant.cast(x, s_x[, z_x]), quant.cast(W, s_w))`` where the activation cast
is a static per-tensor integer format and the weight cast a symmetric per-output-channel integer
format on a 2-D ``graph.weight`` (possibly transposed), with an optional bias ``graph.add`` and
``graph.relu`` after it.  The layer becomes the integer arithmetic of docs/hardware.md::

    x_q = dataflow.quantize(x)                         codes of the activation cast
    y_q = dataflow.linear(x_q)                         acc = (x_q - z_x) @ W_q + b_q,  b_q = round(b / (s_x s_w))
                                                       then clamp(round(acc * M / 2^S) + z_y) with
                                                       (M, S) = quantize_multiplier(s_x s_w / s_y)
    y   = dataflow.dequantize(y_q)                     when every user of the output is the same static cast

When the output feeds anything else (the last layer), ``dataflow.linear`` returns the int32
accumulator and ``dataflow.dequantize`` scales it by ``s_x s_w`` (per channel); a ``graph.relu``
then stays in float.  A relu before the next cast becomes the code bound ``lo = max(lo, z_y)``.
Finally ``dataflow.quantize(dataflow.dequantize(q))`` pairs with equal parameters fold to ``q``,
so consecutive layers pass integer codes.

The interpreter runs the result with integer arithmetic only (its hardware-exact mode); the
float fake-quant IR it came from differs where float rounding moves a value across a rounding
boundary: at most one code, on few elements (``tests/test_lower_dataflow.py`` measures it).
Layers that do not match are left as they are.  This follows MASE's integer dataflow lowering
(Cheng et al., "Fast Prototyping Next-Generation Accelerators for New ML Models using MASE").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, IntegerType, ModuleOp, Signedness, StringAttr, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from mase_compiler.dialects import dataflow as df
from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp
from mase_compiler.numerics import IntFormat
from mase_compiler.numerics.requant import quantize_multiplier
from mase_compiler.session import current

ACC_BITS = 32


def _int(v: int) -> IntegerAttr:
    return IntegerAttr(int(v), i64)


def _static_act(cast: Operation | None) -> tuple[IntFormat, SSAValue, SSAValue | None] | None:
    """(format, scale value, zero-point value) of a static per-tensor integer activation cast."""
    if not isinstance(cast, CastOp):
        return None
    fmt = cast.format.format
    if not (isinstance(fmt, IntFormat) and fmt.granularity == "tensor" and fmt.rounding == "even" and cast.params):
        return None
    return fmt, cast.params[0], cast.params[1] if len(cast.params) > 1 else None


def _code_type(fmt: IntFormat, shape) -> object:
    return g.tensor_type(IntegerType(fmt.bits, Signedness.SIGNLESS if fmt.signed else Signedness.UNSIGNED), shape)


@dataclass(frozen=True)
class LowerDataflow(ModulePass):
    """Lowers static integer linear layers (matmul [+ bias] [+ relu]) to dataflow integer kernels."""

    name = "lower-dataflow"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        session = current(self.name)
        lowering = _Lowering(session.model)
        lowered = sum(lowering.lower(mm) for mm in [o for o in op.walk() if isinstance(o, g.MatmulOp)])
        folded = lowering.fold_requantize(op)
        DeadCodeElimination().apply(ctx, op)  # the float casts and weights the kernels replaced
        session.notes.update({"lowered_linears": lowered, "folded_quantize_pairs": folded})


class _Lowering:
    def __init__(self, model) -> None:
        self.model = model

    # ---- values ----------------------------------------------------------------------------------
    def _tensor(self, v: SSAValue) -> torch.Tensor:
        owner = v.owner
        if isinstance(owner, g.WeightOp):
            return self.model.weights.tensor(owner.sym_name.data)
        if isinstance(owner, g.ConstantOp):
            from mase_compiler.interpreter.kernels import dense_to_tensor

            return dense_to_tensor(owner.properties["value"])
        raise ValueError("not a constant")

    def _store(self, base: str, t: torch.Tensor) -> str:
        key, n = base, 1
        while key in self.model.weights:
            key, n = f"{base}_{n}", n + 1
        self.model.weights[key] = t.contiguous()
        return key

    # ---- one layer -------------------------------------------------------------------------------
    def lower(self, mm: g.MatmulOp) -> int:
        act = _static_act(mm.operands[0].owner)
        w = self._weight(mm.operands[1])
        if act is None or w is None:
            return 0
        afmt, s_x_val, z_x_val = act
        wcodes, s_w, wname = w
        try:
            s_x = float(self._tensor(s_x_val).reshape(()))
            z_x = int(self._tensor(z_x_val).reshape(())) if z_x_val is not None else 0
        except ValueError:
            return 0
        x = mm.operands[0].owner.input
        if g.shape_of(x.type) is None:
            return 0
        acc_scale = (s_x * s_w.double()).to(torch.float32)  # the accumulator's real step per channel
        # Optional bias add and relu, each the single user of what it reads.
        tail, bias, relu = mm, None, False
        users = list(tail.results[0].uses)
        if len(users) == 1 and isinstance(users[0].operation, g.AddOp):
            add = users[0].operation
            other = add.operands[1 - users[0].index]
            if isinstance(other.owner, g.WeightOp) and g.shape_of(other.type) == (wcodes.shape[1],):
                bias, tail = self._tensor(other).double(), add
        users = list(tail.results[0].uses)
        relu_op = users[0].operation if len(users) == 1 and isinstance(users[0].operation, g.ReluOp) else None
        out_val = (relu_op or tail).results[0]
        outs = [u.operation for u in out_val.uses]
        nxt = [_static_act(o) for o in outs]
        requant = bool(outs) and all(n is not None for n in nxt) and len({(str(n[0]), self._key(n)) for n in nxt}) == 1

        props: dict[str, object] = {"weight": StringAttr(self._store(f"{wname}.codes", wcodes.to(torch.int8 if wcodes.abs().max() < 128 else torch.int16))),
                                    "zp_in": _int(z_x)}
        if bias is not None:
            props["bias"] = StringAttr(self._store(f"{wname}.bias_q", torch.round(bias / acc_scale.double()).to(torch.int32)))
        new: list[Operation] = []
        q_in = df.QuantizeOp.create(
            operands=[x], result_types=[_code_type(afmt, g.shape_of(x.type))],
            properties={"scale": StringAttr(self._store(f"{wname}.in_scale", torch.tensor(s_x, dtype=torch.float32))),
                        "zero_point": _int(z_x), "lo": _int(afmt.grid_bounds()[0]), "hi": _int(afmt.grid_bounds()[1])})
        new.append(q_in)
        out_shape = g.shape_of(mm.results[0].type)
        if requant:
            yfmt, s_y_val, z_y_val = nxt[0]
            s_y = float(self._tensor(s_y_val).reshape(()))
            z_y = int(self._tensor(z_y_val).reshape(())) if z_y_val is not None else 0
            pairs = [quantize_multiplier(float(s_x) * float(sw) / s_y) for sw in s_w.double()]
            lo, hi = int(yfmt.grid_bounds()[0]), int(yfmt.grid_bounds()[1])
            if relu_op is not None:
                lo = max(lo, z_y)
            props.update(multiplier=StringAttr(self._store(f"{wname}.m", torch.tensor([m for m, _ in pairs], dtype=torch.int64))),
                         shift=StringAttr(self._store(f"{wname}.s", torch.tensor([s for _, s in pairs], dtype=torch.int64))),
                         zp_out=_int(z_y), lo=_int(lo), hi=_int(hi))
            lin = df.LinearOp.create(operands=[q_in.results[0]], result_types=[_code_type(yfmt, out_shape)], properties=props)
            deq = df.DequantizeOp.create(
                operands=[lin.results[0]], result_types=[out_val.type],
                properties={"scale": StringAttr(self._store(f"{wname}.out_scale", torch.tensor(s_y, dtype=torch.float32))),
                            "zero_point": _int(z_y)})
            new += [lin, deq]
            Rewriter.insert_op(new, InsertPoint.before(mm))
            for cast in outs:  # the next layer's cast now reads values already on its grid: it stays matchable
                cast.operands = [deq.results[0], *cast.operands[1:]]
            dead = [relu_op, tail if tail is not mm else None, mm]
        else:
            props.update(zp_out=_int(0), lo=_int(-(1 << (ACC_BITS - 1))), hi=_int((1 << (ACC_BITS - 1)) - 1))
            lin = df.LinearOp.create(operands=[q_in.results[0]],
                                     result_types=[g.tensor_type(IntegerType(ACC_BITS), out_shape)], properties=props)
            deq = df.DequantizeOp.create(
                operands=[lin.results[0]], result_types=[tail.results[0].type],
                properties={"scale": StringAttr(self._store(f"{wname}.acc_scale", acc_scale)), "zero_point": _int(0)})
            new += [lin, deq]
            Rewriter.insert_op(new, InsertPoint.before(mm))
            tail.results[0].replace_all_uses_with(deq.results[0])
            dead = [tail if tail is not mm else None, mm]
        for o in dead:
            if o is not None and not any(r.uses for r in o.results):
                Rewriter.erase_op(o)
        return 1

    def _key(self, n) -> tuple[float, int]:
        _, s, z = n
        return float(self._tensor(s).reshape(())), int(self._tensor(z).reshape(())) if z is not None else 0

    def _weight(self, v: SSAValue) -> tuple[torch.Tensor, torch.Tensor, str] | None:
        """Integer codes ``[K, N]``, per-channel scales ``[N]`` and the name of a channel-quantized weight."""
        transposed = False
        if isinstance(v.owner, g.TransposeOp) and list(v.owner.perm.get_values()) == [1, 0]:
            transposed, v = True, v.owner.input
        cast = v.owner
        if not (isinstance(cast, CastOp) and isinstance(cast.input.owner, g.WeightOp) and len(cast.params) == 1):
            return None
        fmt = cast.format.format
        if not (isinstance(fmt, IntFormat) and fmt.symmetric and fmt.granularity == "channel" and fmt.rounding == "even"):
            return None
        w = self.model.weights.tensor(cast.input.owner.sym_name.data).to(torch.float32)
        if w.dim() != 2:
            return None
        axis = cast.axis.value.data if cast.axis is not None else 0
        if axis != (0 if transposed else 1):  # scales must run along the output channels
            return None
        scale = self.model.weights.tensor(cast.params[0].owner.sym_name.data).to(torch.float32) \
            if isinstance(cast.params[0].owner, g.WeightOp) else None
        if scale is None:
            return None
        lo, hi = fmt.grid_bounds()
        codes = torch.round(w / scale).clamp(lo, hi)  # IntFormat's grid codes: float32 division, half to even
        if transposed:
            codes, scale = codes.T, scale.T
        return codes.to(torch.int64), scale.reshape(-1), cast.input.owner.sym_name.data

    # ---- integer codes flow between layers -------------------------------------------------------
    def fold_requantize(self, module: ModuleOp) -> int:
        folded = 0
        for q in [o for o in module.walk() if isinstance(o, df.QuantizeOp)]:
            d = q.input.owner
            if not isinstance(d, df.DequantizeOp):
                continue
            same = (q.zero_point.value.data == d.zero_point.value.data and q.results[0].type == d.input.type
                    and torch.equal(self.model.weights.tensor(q.scale.data), self.model.weights.tensor(d.scale.data).reshape(())))
            if same:
                q.results[0].replace_all_uses_with(d.input)
                Rewriter.erase_op(q)
                folded += 1
        for d in [o for o in module.walk() if isinstance(o, df.DequantizeOp)]:
            if not d.results[0].uses:
                Rewriter.erase_op(d)
        return folded
