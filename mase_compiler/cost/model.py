"""Hardware cost of ops and of a quantized model: MACs, bit-operations, bytes, area, energy, latency.

``op_cost`` prices one matmul / conv (or, as a fallback, one elementwise op) for given operand formats;
``model_cost`` prices every matmul and conv of a quantized IR model from its ``quant.cast`` formats.

The model, per op with ``macs`` multiply-accumulates, ``lanes`` parallel MAC lanes and block size ``B``:

* **bit-operations** = ``macs * w_bits * a_bits`` (element bits, scales excluded; float32 for an operand
  left in float), plus for MX ``macs / B * 8``: one 8-bit E8M0 exponent add per block product, amortized.
* **bytes**: the weight tensor and the activation operand in their formats (:func:`.tensor_bytes`, scales
  included), each read once from memory (perfect reuse).
* **area** (LUT equivalents, :mod:`.calibration`): ``layer_base + lanes * lane + rom_per_bit * weight bits``,
  ``lane = w_sig * a_sig + lane_overhead`` (a ``w x a`` array multiplier is ``w * a`` full-adder cells; the
  int8 lane, 1 DSP + 84 LE, is calibrated on ``masec_linear``), plus ``mx_lane_align`` per lane for MX and
  minifloat operands (block / product alignment into the accumulator, calibrated on ``masec_mx_linear``).
  For a minifloat or MX-minifloat element the multiplier is its significand product ``(m_w+1)(m_a+1)``.
  A block-parallel MX datapath (``block_parallel=True``) instead shares one exponent unit
  (``mx_block_exp``, calibrated on ``masec_mxint8_dot``) among the ``B`` lanes of a block.
  Weights that are activations (attention) need no ROM.
* **energy** (pJ): Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
  45 nm, 0.9 V: 8-bit multiply 0.2 pJ, 32-bit add 0.1 pJ, 8-bit add 0.03 pJ, fp32 multiply 3.7 pJ,
  fp32 add 0.9 pJ, 64-bit read of a 32 KB SRAM 20 pJ, of DRAM 1.3-2.6 nJ.  Scaled by bit widths: a
  multiply costs ``0.2 / 64`` pJ per partial-product bit, the accumulate is a 32-bit add (the 32-bit
  accumulator of ``masec_linear`` / ``masec_mx_linear``); an MX block adds an 8-bit exponent add and a
  32-bit alignment add per block product; an unquantized (float32) operand makes the MAC an fp32 multiply-add;
  a byte moved costs 2.5 pJ from SRAM (default) or 243.75 pJ from DRAM (1.95 nJ / 8 B, the range's middle).
* **latency**: ``ceil(macs / lanes)`` cycles (``masec_linear`` and ``masec_mx_linear`` take ``N K / lanes``
  cycles per row), at ``clock_mhz`` (default 100).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from mase_compiler.numerics import Format, MinifloatFormat, MXFormat, parse

from .calibration import CALIBRATION, MUL_LE_PER_BIT_PRODUCT
from .storage import FLOAT_BITS, tensor_bytes

__all__ = ["ENERGY_PJ", "ModelCost", "OpCost", "format_table", "model_cost", "op_cost"]

# Horowitz ISSCC 2014 (45 nm, 0.9 V), pJ per operation or per byte moved.
ENERGY_PJ: dict[str, float] = {
    "mul_per_bit_product": 0.2 / 64,  # 8-bit integer multiply: 0.2 pJ
    "add_per_bit": 0.1 / 32,  # 32-bit integer add: 0.1 pJ
    "fp32_mul": 3.7,
    "fp32_add": 0.9,
    "sram_byte": 20.0 / 8,  # 64-bit read of a 32 KB SRAM: 20 pJ
    "dram_byte": 1950.0 / 8,  # 64-bit DRAM access: 1.3-2.6 nJ, the middle
}
ACC_BITS = 32  # accumulator width of masec's MAC lanes
EXP_BITS = 8  # E8M0 shared exponent
MEMORIES = ("sram", "dram")
KINDS = ("matmul", "conv", "elementwise")


@dataclass(frozen=True)
class OpCost:
    """Cost of one op; ``w_format`` / ``a_format`` are spec strings, ``None`` for float32."""

    name: str
    op: str
    w_format: str | None
    a_format: str | None
    macs: int
    bitops: float
    weight_bytes: int
    activation_bytes: int
    weight_elements: int
    activation_elements: int
    area_le: float
    energy_pj: float
    cycles: int
    latency_us: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ModelCost:
    """Per-op rows and their totals; average storage bits per weight and activation element."""

    rows: tuple[OpCost, ...]
    totals: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"rows": [r.as_dict() for r in self.rows], "totals": dict(self.totals)}


# ---- per-format facts ---------------------------------------------------------------------------
def _fmt(f: Format | str | None) -> Format | None:
    return None if f is None or f in ("", "none", "float") else parse(f)


def _elem_bits(f: Format | None) -> int:
    """Bits of one element code (scales excluded); float32 when unquantized."""
    if f is None:
        return FLOAT_BITS
    if isinstance(f, MXFormat):
        return f.elem.bits
    if isinstance(f, MinifloatFormat):
        return f.bits
    return int(f.element_bits)  # scaled integers, fixed point, dINT


def _significand(f: Format | None) -> tuple[int, bool]:
    """(bits the multiplier sees, whether products need alignment): integer codes multiply whole;
    a (micro)float multiplies its significands (m + 1 bits) and aligns by exponent."""
    if f is None:
        return 24, True
    e = f.elem if isinstance(f, MXFormat) else f
    if isinstance(e, MinifloatFormat):
        return e.man_bits + 1, True
    return _elem_bits(f), isinstance(f, MXFormat)


def _block(*fs: Format | None) -> int | None:
    """The MX block size (the smaller one where both operands are MX)."""
    sizes = [f.block for f in fs if isinstance(f, MXFormat)]
    return min(sizes) if sizes else None


# ---- one op -------------------------------------------------------------------------------------
def _mac_energy(w: Format | None, a: Format | None) -> float:
    if w is None or a is None:
        return ENERGY_PJ["fp32_mul"] + ENERGY_PJ["fp32_add"]
    (ws, _), (as_, _) = _significand(w), _significand(a)
    e = ws * as_ * ENERGY_PJ["mul_per_bit_product"] + ACC_BITS * ENERGY_PJ["add_per_bit"]
    for f in (w, a):  # a minifloat element also adds its exponents
        el = f.elem if isinstance(f, MXFormat) else f
        if isinstance(el, MinifloatFormat):
            e += el.exp_bits * ENERGY_PJ["add_per_bit"]
    block = _block(w, a)
    if block:
        e += (EXP_BITS + ACC_BITS) * ENERGY_PJ["add_per_bit"] / block  # exponent add + alignment add per block
    return e


def _lane_area(w: Format | None, a: Format | None, block_parallel: bool = False) -> float:
    (ws, wal), (as_, aal) = _significand(w), _significand(a)
    block = _block(w, a)
    if block_parallel and block:
        # masec_mxint8_dot: B products summed at once, one exponent unit per block of B lanes
        return MUL_LE_PER_BIT_PRODUCT * ws * as_ + CALIBRATION["mx_block_exp"] / block
    area = MUL_LE_PER_BIT_PRODUCT * ws * as_ + CALIBRATION["lane_overhead"]
    if wal or aal:
        area += CALIBRATION["mx_lane_align"]
    return area


def op_cost(
    kind: str,
    *,
    out_shape: Sequence[int],
    reduction: int = 1,
    weight_shape: Sequence[int] | None = None,
    act_shape: Sequence[int] | None = None,
    w_format: Format | str | None = None,
    a_format: Format | str | None = None,
    w_axis: int | None = None,
    a_axis: int | None = None,
    w_scaled: bool = False,
    a_scaled: bool = False,
    weight_is_parameter: bool = True,
    block_parallel: bool = False,
    lanes: int = 8,
    clock_mhz: float = 100.0,
    memory: str = "sram",
    name: str = "",
) -> OpCost:
    """Cost of one op producing ``out_shape``.

    ``matmul``: each output element sums ``reduction`` (K) products; ``conv``: ``reduction`` is
    ``prod(weight_shape[1:])`` (C / group x kernel), taken from ``weight_shape`` when left at 1.
    ``elementwise``: one ``a_format`` add per output element, no weights.  ``*_axis`` / ``*_scaled`` are
    the casts' (see :func:`.tensor_bytes`).  ``weight_is_parameter=False`` (activation x activation
    matmuls) stores no ROM.  ``block_parallel`` prices an MX datapath that sums whole blocks at once
    (``masec_mxint8_dot``: one exponent unit per ``B`` lanes) instead of lane-serial ``masec_mx_linear``.  Defaults: 8 lanes (the SV backend's linear layers), 100 MHz, SRAM.
    """
    if kind not in KINDS:
        raise ValueError(f"op kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if memory not in MEMORIES:
        raise ValueError(f"memory must be one of {', '.join(MEMORIES)}, not {memory!r}")
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, not {lanes}")
    w, a = _fmt(w_format), _fmt(a_format)
    n_out = math.prod(out_shape)
    byte_pj = ENERGY_PJ[f"{memory}_byte"]
    a_elems = math.prod(act_shape) if act_shape is not None else n_out
    a_bytes = tensor_bytes(a, act_shape if act_shape is not None else out_shape, a_axis, a_scaled)
    if kind == "elementwise":
        bits = _elem_bits(a)
        cycles = math.ceil(n_out / lanes)
        return OpCost(
            name, kind, None, _spec(a), 0, float(n_out * bits), 0, a_bytes, 0, a_elems,
            float(lanes * bits), n_out * bits * ENERGY_PJ["add_per_bit"] + a_bytes * byte_pj, cycles, cycles / clock_mhz,
        )
    if weight_shape is None:
        raise ValueError(f"a {kind} needs weight_shape")
    if kind == "conv" and reduction == 1:
        reduction = math.prod(weight_shape[1:])
    macs = n_out * reduction
    w_elems = math.prod(weight_shape)
    w_bytes = tensor_bytes(w, weight_shape, w_axis, w_scaled)
    bitops = float(macs * _elem_bits(w) * _elem_bits(a))
    block = _block(w, a)
    if block:
        bitops += macs / block * EXP_BITS
    area = CALIBRATION["layer_base"] + lanes * _lane_area(w, a, block_parallel)
    if weight_is_parameter:
        area += CALIBRATION["rom_per_bit"] * w_bytes * 8
    energy = macs * _mac_energy(w, a) + (w_bytes + a_bytes) * byte_pj
    cycles = math.ceil(macs / lanes)
    if not weight_is_parameter:  # both operands are activations: count the right one with them
        w_bytes, a_bytes, w_elems, a_elems = 0, a_bytes + w_bytes, 0, a_elems + w_elems
    return OpCost(
        name, kind, _spec(w), _spec(a), macs, bitops, w_bytes, a_bytes, w_elems, a_elems,
        area, energy, cycles, cycles / clock_mhz,
    )


def _spec(f: Format | None) -> str | None:
    return None if f is None else f.spec


# ---- a model ------------------------------------------------------------------------------------
def _concrete(shape: Sequence[int] | None, dynamic: int) -> tuple[int, ...]:
    if shape is None:
        raise ValueError("model_cost needs ranked tensors; an operand is unranked")
    return tuple(dynamic if d < 0 else d for d in shape)


def model_cost(model, *, dynamic_dim: int = 1, **options) -> ModelCost:
    """Cost of every ``graph.matmul`` / ``graph.conv`` of ``model`` (a :class:`mase_compiler.model.Model`).

    Formats are those of the ``quant.cast`` behind each operand (through transposes and reshapes, as
    ``masec report`` finds them); an operand without one is float32.  Symbolic dims (batch, sequence)
    count as ``dynamic_dim``.  ``options`` go to :func:`op_cost` (lanes, clock_mhz, memory).
    Totals: sums of every numeric column, and ``bits_per_weight`` / ``bits_per_activation``, the
    storage bits per element over all ops (scales included).
    """
    from mase_compiler.dialects.graph import node_name, shape_of
    from mase_compiler.report import _cast_behind, _is_weight_cast

    rows: list[OpCost] = []
    counts: dict[str, int] = {}
    for op in model.main.body.ops:
        kind = op.name.partition(".")[2]
        if op.name not in ("graph.matmul", "graph.conv"):
            continue
        n = counts.get(kind, 0)
        counts[kind] = n + 1
        lhs, rhs = op.operands[0], op.operands[1]
        lc, rc = _cast_behind(lhs), _cast_behind(rhs)
        is_param = rc is not None and _is_weight_cast(rc) or _is_parameter(rhs)
        w_shape = _concrete(shape_of((rc.input if rc is not None else rhs).type), dynamic_dim)
        out = _concrete(shape_of(op.results[0].type), dynamic_dim)
        act = _concrete(shape_of((lc.input if lc is not None else lhs).type), dynamic_dim)
        k = act[-1] if kind == "matmul" else 1
        rows.append(op_cost(
            kind, out_shape=out, reduction=k, weight_shape=w_shape, act_shape=act,
            w_format=_cast_format(rc), a_format=_cast_format(lc), w_axis=_cast_axis(rc), a_axis=_cast_axis(lc),
            w_scaled=_minifloat_scaled(rc), a_scaled=_minifloat_scaled(lc),
            weight_is_parameter=is_param, name=node_name(op) or f"{kind}_{n}", **options,
        ))
    return ModelCost(tuple(rows), _totals(rows))


def _is_parameter(v) -> bool:
    from mase_compiler.report import _VIEW_OPS

    op = v.owner
    while getattr(op, "name", None) in _VIEW_OPS and op.operands:
        op = op.operands[0].owner
    return getattr(op, "name", None) == "graph.weight"


def _cast_format(cast) -> Format | None:
    return None if cast is None else cast.format.format


def _cast_axis(cast) -> int | None:
    return None if cast is None or cast.axis is None else cast.axis.value.data


def _minifloat_scaled(cast) -> bool:
    """Whether a minifloat cast carries a scale operand (the fp8 preset's per-tensor amax / 448)."""
    return cast is not None and isinstance(cast.format.format, MinifloatFormat) and len(cast.params) > 0


_SUMMED = ("macs", "bitops", "weight_bytes", "activation_bytes", "weight_elements", "activation_elements",
           "area_le", "energy_pj", "cycles", "latency_us")


def _totals(rows: Sequence[OpCost]) -> dict[str, float]:
    t: dict[str, float] = {k: sum(getattr(r, k) for r in rows) for k in _SUMMED}
    t["bits_per_weight"] = 8 * t["weight_bytes"] / t["weight_elements"] if t["weight_elements"] else 0.0
    t["bits_per_activation"] = 8 * t["activation_bytes"] / t["activation_elements"] if t["activation_elements"] else 0.0
    return t


def format_table(cost: ModelCost) -> str:
    """A plain-text table of the rows and totals (what ``masec report`` can print)."""
    nw = max([len("total"), *(len(r.name) for r in cost.rows)])
    fw = max([4, *(len(r.w_format or "") for r in cost.rows), *(len(r.a_format or "") for r in cost.rows)])
    lines = [f"{'op':<{nw}} {'W':<{fw}} {'A':<{fw}} {'MACs':>12} {'bitops':>14} {'W bytes':>11} {'A bytes':>11} "
             f"{'area LE':>9} {'energy nJ':>10} {'cycles':>10}"]

    def line(name: str, w: str, a: str, t: Mapping[str, float]) -> str:
        return (f"{name:<{nw}} {w:<{fw}} {a:<{fw}} {int(t['macs']):>12,} {t['bitops']:>14,.0f} {int(t['weight_bytes']):>11,} "
                f"{int(t['activation_bytes']):>11,} {t['area_le']:>9,.0f} {t['energy_pj'] / 1000:>10.3f} {int(t['cycles']):>10,}")

    for r in cost.rows:
        lines.append(line(r.name, r.w_format or "fp32", r.a_format or "fp32", r.as_dict()))  # type: ignore[arg-type]
    t = cost.totals
    lines.append(line("total", "", "", t))
    lines.append(f"bits per weight element {t['bits_per_weight']:.3f}, per activation element {t['bits_per_activation']:.3f}")
    return "\n".join(lines)
