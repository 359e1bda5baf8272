"""Hardware costs in the mixed-precision search: layers as units, a (weight, activation) format pair each.

Area and energy of a matmul / conv are not sums of per-tensor terms: the multiplier of a ``w x a`` lane is
``w_bits * a_bits`` cells (:mod:`mase_compiler.cost.model`).  So a search with area or energy limits
chooses per **layer**: each unit of :func:`pair_problem` is one layer (role ``layer``), each choice one
``"W/A"`` pair with

* error ``err_W + err_A`` (the additive sensitivity model, the per-tensor table's two entries);
* bits: the exact element-weighted average storage of the two tensors (:func:`mase_compiler.cost.tensor_bytes`:
  scales, zero points and MX padding of short reduction axes included);
* area (LUT equivalents) and energy (pJ) of the whole op from :func:`mase_compiler.cost.op_cost`, with the
  shapes, axes and scales that ``quantize`` would give the casts, so that :func:`cost_of` of an assignment
  equals :func:`mase_compiler.cost.model_cost` of the model quantized with ``to_pipeline(assignment)``.

Sums over layers are then exact, and the ILP of :mod:`.solve` handles area / energy limits like bits.
This is the hardware-aware step of MASE's search (Cheng et al., "MASE: An Efficient Representation for
Software-Defined ML Hardware System Exploration"), with energies from Horowitz (ISSCC 2014).

Shapes come from one interpreter run (:func:`layer_shapes`): activations are priced per batch of the
batch given, which should be the one the sensitivity table was measured on (its first calibration batch).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from mase_compiler.cost import op_cost, tensor_bytes
from mase_compiler.numerics import DIntFormat, Format, IntFormat, MinifloatFormat, MXFormat, parse

from .problem import FLOAT, Choice, Problem, Tensor

__all__ = ["LayerShape", "Operand", "cost_of", "layer_shapes", "op_shapes", "pair_cost", "pair_problem", "uniform_cost"]

PAIR_KINDS = ("matmul", "conv")  # what op_cost prices


@dataclass(frozen=True)
class Operand:
    """One operand that ``quantize`` would cast, with what its casts depend on.

    ``shape`` is the weight's own shape (a ``graph.weight``, before any transpose) for a weight, the
    operand's concrete shape for an activation.  ``reduction_axis`` / ``channel_axis`` are the axes
    ``quantize`` would give an MX / group / channel / token cast: in the weight's dims for a weight,
    counted from the end (negative) for an activation, as the casts carry them."""

    index: int
    role: str  # "weight" | "activation"
    shape: tuple[int, ...]
    reduction_axis: int | None
    channel_axis: int | None = None
    source: str | None = None  # the weight's name: a weight two operands read is stored once


@dataclass(frozen=True)
class LayerShape:
    """One matmul / conv with concrete shapes, as :func:`mase_compiler.cost.op_cost` takes them.

    ``act_shape`` / ``weight_shape`` are its left / right operand (``model_cost``'s convention: the shape
    behind the cast, a weight's own shape); ``reduction`` is K (conv: ``C / groups x kernel``);
    ``weight_is_parameter`` is False for activation x activation matmuls (no ROM); ``operands`` are the
    casts ``quantize`` would insert, in operand order."""

    layer: str
    kind: str
    out_shape: tuple[int, ...]
    reduction: int
    weight_shape: tuple[int, ...]
    act_shape: tuple[int, ...]
    weight_is_parameter: bool
    operands: tuple[Operand, ...]

    def _of(self, role: str) -> list[Operand]:
        seen: set[str] = set()
        out = []
        for o in self.operands:
            if o.role != role or (o.source is not None and o.source in seen):
                continue
            if o.source is not None:
                seen.add(o.source)
            out.append(o)
        return out

    def elements(self, role: str) -> int:
        """Elements of the layer's ``role`` tensor (activation: all activation operands, per batch)."""
        return sum(math.prod(o.shape) for o in self._of(role))

    def storage_bits(self, role: str, spec: str) -> int:
        """Exact storage bits of the layer's ``role`` tensor in ``spec`` ("none": float32), scales and padding included."""
        fmt = _format(spec)
        total = 0
        for o in self._of(role):
            axis, scaled = _cast(o, fmt)
            total += 8 * tensor_bytes(fmt, o.shape, axis, scaled)
        return total


def _format(spec: str | None) -> Format | None:
    return None if spec in (None, "", FLOAT, "float") else parse(spec)


def _cast(o: Operand, fmt: Format | None) -> tuple[int | None, bool]:
    """(axis, scaled) of the cast ``quantize`` puts on ``o`` in ``fmt`` (passes/quantize.py, ``_Rewrite.weight`` /
    ``_Rewrite.activation``): MX blocks and integer groups / tokens along the reduction axis, integer channels
    along the channel axis unless the spec names an axis itself; a minifloat weight, and a minifloat
    activation of 8 bits or fewer, carry a per-tensor float32 scale."""
    if fmt is None:
        return None, False
    if isinstance(fmt, MXFormat):
        if fmt.axis != -1:
            return None, False
        return (-1 if o.reduction_axis is None else o.reduction_axis), False
    if isinstance(fmt, (IntFormat, DIntFormat)):
        if fmt.axis is not None:
            return None, False
        if o.role == "weight":
            return {"channel": o.channel_axis, "group": o.reduction_axis}.get(fmt.granularity), False
        return (o.reduction_axis if fmt.granularity in ("group", "token") else None), False
    if isinstance(fmt, MinifloatFormat):
        return None, o.role == "weight" or fmt.bits <= 8
    return None, False  # fixed point: no scale operand


# ---- shapes ---------------------------------------------------------------------------------------
def op_shapes(model, batch: Mapping, ops: str = "matmul,conv") -> list[LayerShape]:
    """A :class:`LayerShape` per op whose operands ``quantize{ops=OPS}`` would cast, in IR order (one
    interpreter run on ``batch`` gives the concrete shapes)."""
    from mase_compiler.cost.model import _is_parameter  # model_cost's own test, so both agree
    from mase_compiler.dialects import graph as g
    from mase_compiler.interpreter import Interpreter
    from mase_compiler.passes.quantize import Quantize, _Rewrite

    actions = Quantize(default="mxint8", ops=ops).actions(model.module)
    found: dict[int, tuple[object, str, str, list]] = {}
    for target, name, index, kind, _fmt, weight in actions:
        found.setdefault(id(target), (target, name, kind, []))[3].append((index, weight))
    seen: dict[int, tuple[list[tuple[int, ...]], tuple[int, ...]]] = {}

    def observe(op, operands: list, results: tuple) -> None:
        if id(op) in found:
            seen[id(op)] = ([tuple(x.shape) for x in operands], tuple(results[0].shape))

    Interpreter(model)(batch, observe=observe)
    out = []
    for key, (target, name, kind, casts) in found.items():
        if key not in seen:
            raise ValueError(f"layer {name!r} did not run on the batch: shapes need every cast op executed")
        concrete, out_shape = seen[key]
        operands = []
        for index, weight in casts:
            rank = len(g.shape_of(target.operands[index].type) or ())
            red = _Rewrite._reduction_axis(None, index, kind, rank)  # quantize's own axis rules (self unused)
            if weight is not None:
                wop, perm, _ = weight
                chan = _Rewrite._channel_axis(None, index, kind, rank)
                if perm is not None:  # operand dim d is weight dim perm[d]
                    red, chan = perm[red], perm[chan]
                wname = wop.sym_name.data
                operands.append(Operand(index, "weight", tuple(model.weights.tensor(wname).shape), red, chan, wname))
            else:
                operands.append(Operand(index, "activation", concrete[index], red - rank if rank else None))
        by_index = {o.index: o for o in operands}
        lhs = by_index[0].shape if 0 in by_index else concrete[0]
        rhs = by_index[1].shape if 1 in by_index else concrete[1] if len(concrete) > 1 else ()
        rhs_op = by_index.get(1)
        param = (rhs_op is not None and rhs_op.role == "weight") or (len(target.operands) > 1 and _is_parameter(target.operands[1]))
        k = lhs[-1] if kind == "matmul" and lhs else math.prod(rhs[1:]) if kind == "conv" else 1
        out.append(LayerShape(name, kind, out_shape, int(k), rhs, lhs, bool(param), tuple(operands)))
    return out


def layer_shapes(model, batch: Mapping, ops: str = "matmul,conv") -> dict[str, LayerShape]:
    """``{layer: LayerShape}`` for every matmul / conv that ``quantize{ops=OPS}`` would cast; ``layer`` is the
    op's source-node name (what the sensitivity table and quantize's rules use)."""
    out: dict[str, LayerShape] = {}
    for s in op_shapes(model, batch, ops):
        if s.layer in out:
            raise ValueError(f"layer {s.layer!r} names more than one {'/'.join(PAIR_KINDS)} op; pair costs need one op "
                             f"per source-node name")
        out[s.layer] = s
    return out


# ---- costs ----------------------------------------------------------------------------------------
def pair_cost(shape: LayerShape, w: str, a: str, **options) -> dict[str, float]:
    """Cost of ``shape`` with weights in ``w`` and activations in ``a`` ("none": float32).

    ``area_le`` and ``energy_pj`` from :func:`mase_compiler.cost.op_cost` (``options``: lanes, clock_mhz,
    memory, block_parallel); ``weight_bits`` / ``activation_bits``: exact storage of each tensor;
    ``weight_elements`` / ``activation_elements``; ``bits``: their element-weighted average."""
    if shape.kind not in PAIR_KINDS:
        raise ValueError(f"pair costs price {' and '.join(PAIR_KINDS)} layers, not {shape.kind!r} (layer {shape.layer})")
    fmts = {"weight": _format(w), "activation": _format(a)}
    casts = {o.index: (fmts[o.role], *_cast(o, fmts[o.role])) for o in shape.operands}
    a_fmt, a_axis, a_scaled = casts.get(0, (None, None, False))
    w_fmt, w_axis, w_scaled = casts.get(1, (None, None, False))
    c = op_cost(shape.kind, out_shape=shape.out_shape, reduction=shape.reduction, weight_shape=shape.weight_shape,
                act_shape=shape.act_shape, w_format=w_fmt, a_format=a_fmt, w_axis=w_axis, a_axis=a_axis,
                w_scaled=w_scaled, a_scaled=a_scaled, weight_is_parameter=shape.weight_is_parameter,
                name=shape.layer, **options)
    out = {"area_le": c.area_le, "energy_pj": c.energy_pj}
    for role, spec in (("weight", w), ("activation", a)):
        out[f"{role}_bits"] = float(shape.storage_bits(role, spec))
        out[f"{role}_elements"] = float(shape.elements(role))
    out["bits"] = (out["weight_bits"] + out["activation_bits"]) / (out["weight_elements"] + out["activation_elements"])
    return out


def cost_of(formats: Mapping[tuple[str, str], str], shapes: Mapping[str, LayerShape], **options) -> dict[str, float]:
    """Area, energy and exact average storage bits (over every weight and activation of ``shapes``) of an
    assignment ``{(layer, role): format}``; a layer or role it leaves out is float32, as ``to_pipeline``'s."""
    for layer, role in formats:
        if layer not in shapes:
            raise ValueError(f"assignment layer {layer!r} must be one of the shapes' layers (layer_shapes of the model)")
        if role not in ("weight", "activation"):
            raise ValueError(f"assignment role must be weight or activation, not {role!r} (layer {layer})")
    area = energy = bits = elements = 0.0
    for layer, s in shapes.items():
        c = pair_cost(s, formats.get((layer, "weight"), FLOAT), formats.get((layer, "activation"), FLOAT), **options)
        area, energy = area + c["area_le"], energy + c["energy_pj"]
        bits += c["weight_bits"] + c["activation_bits"]
        elements += c["weight_elements"] + c["activation_elements"]
    return {"area_le": area, "energy_pj": energy, "avg_bits": bits / elements if elements else 0.0}


def uniform_cost(shapes: Mapping[str, LayerShape], spec: str, **options) -> dict[str, float]:
    """:func:`cost_of` ``spec`` on every layer (one format for both roles, or ``"W/A"``, as quantize's
    ``default``): how "at most the energy of int8" becomes a number for :class:`Budget`."""
    w, sep, a = spec.partition("/")
    a = a if sep else w
    return cost_of({(layer, role): f for layer in shapes for role, f in (("weight", w), ("activation", a))}, shapes, **options)


# ---- the problem ----------------------------------------------------------------------------------
def pair_problem(table: Mapping[Tensor, Mapping[str, float]], shapes: Mapping[str, LayerShape], **options) -> Problem:
    """The layer formulation of a per-tensor sensitivity table ``{Tensor: {format: error}}``.

    One unit per layer of the table (role ``layer``, in table order), one choice per ``(W, A)`` pair of
    its weight and activation candidates; a role missing from the table is ``none`` (float32).  Bits
    and element counts are over the roles the table holds (so a bits budget means what it means for the
    per-tensor problem), from ``shapes``; area and energy are the whole op's (:func:`pair_cost`).  Budgets
    on area / energy count the table's layers only: give :func:`uniform_cost` / :func:`cost_of` the same
    layers to compare."""
    roles: dict[str, dict[str, Mapping[str, float]]] = {}
    for t, errors in table.items():
        if t.role == "layer":
            raise ValueError(f"pair_problem needs a per-tensor table (weight / activation), not layer unit {t.key!r}")
        roles.setdefault(t.layer, {})[t.role] = errors
    units, choices = [], []
    for layer, by_role in roles.items():
        if layer not in shapes:
            raise ValueError(f"table layer {layer!r} must have a shape: pass layer_shapes of the same model and ops")
        s = shapes[layer]
        n = sum(s.elements(r) for r in by_role)
        if missing := [r for r in by_role if s.elements(r) == 0]:
            raise ValueError(f"table tensor {layer}/{missing[0]} must be one that quantize casts: layer {layer} has no {missing[0]} operand")
        cs = []
        for (w, ew), (a, ea) in itertools.product(by_role.get("weight", {FLOAT: 0.0}).items(),
                                                  by_role.get("activation", {FLOAT: 0.0}).items()):
            c = pair_cost(s, w, a, **options)
            bits = sum(c[f"{r}_bits"] for r in by_role) / n
            cs.append(Choice(f"{w}/{a}", float(ew) + float(ea), bits, c["area_le"], c["energy_pj"]))
        units.append(Tensor(layer, "layer", n))
        choices.append(tuple(cs))
    return Problem(tuple(units), tuple(choices))
