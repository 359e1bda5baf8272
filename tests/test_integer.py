"""Scaled grid formats (integers, fixed point, dINT) against torch's fake-quantize
kernels, hand-written reference loops and hand-computed cases.

Conventions under test (integer.py, _scaled.py): symmetric signed integers use the
narrow range +-(2^(b-1)-1) with scale = amax / (2^(b-1)-1); asymmetric ones use the
full range with scale = (max(x,0) - min(x,0)) / (qmax - qmin) and the integer zero
point round(qmin - min/scale); an all-zero range gets scale 1; NaN and Inf never
enter a scale; NaN stays NaN and +-Inf saturates.  Scales are float32.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _numerics_helpers import assert_values_equal, decode_codes
from mase_compiler.numerics import parse

# spec -> (qmin, qmax, symmetric).  int16 is checked against the loop reference instead:
# torch's kernel multiplies by a float32 reciprocal of the scale, which at 16 bits misrounds
# values within an ulp of a tie often enough to matter (e.g. 3239.49977 -> 3240).
PER_TENSOR = {
    "int8": (-127, 127, True),
    "int4": (-7, 7, True),
    "int2": (-1, 1, True),
    "int8:asym": (-128, 127, False),
    "int4:asym": (-8, 7, False),
    "uint8": (0, 255, False),
    "uint4": (0, 15, False),
    "uint8:sym": (0, 255, True),
}


def _data(shape, seed, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 3 + offset


def _scale_zp(x: torch.Tensor, qmin: int, qmax: int, symmetric: bool, dims=None):
    """The documented scale / zero-point convention, written out in float32 torch ops."""
    f = torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0)
    red = (lambda t, op: getattr(t, op)()) if dims is None else (lambda t, op: getattr(torch, op)(t, dim=dims))
    if symmetric:
        amax = red(f.abs(), "amax") if qmin < 0 else red(f, "amax").clamp(min=0)
        s = amax / qmax
        zp = torch.zeros_like(s, dtype=torch.int32)
        s = torch.where(s > 0, s, torch.ones_like(s))
    else:
        lo = red(f, "amin").clamp(max=0)
        hi = red(f, "amax").clamp(min=0)
        s = (hi - lo) / (qmax - qmin)
        s = torch.where(s > 0, s, torch.ones_like(s))
        zp = torch.round(qmin - lo / s).clamp(qmin, qmax).to(torch.int32)
    return s, zp


# ---- per tensor vs torch.fake_quantize_per_tensor_affine ---------------------------------------


@pytest.mark.parametrize("spec", list(PER_TENSOR))
@pytest.mark.parametrize("seed,shape,offset", [(20, (64, 256), 0.0), (21, (1000,), 1.5), (22, (4, 8, 16), -2.0)])
def test_per_tensor_matches_torch_fake_quantize(spec, seed, shape, offset):
    qmin, qmax, sym = PER_TENSOR[spec]
    x = _data(shape, seed=seed, offset=offset)
    s, zp = _scale_zp(x, qmin, qmax, sym)
    expected = torch.fake_quantize_per_tensor_affine(x, float(s), int(zp), qmin, qmax)
    assert_values_equal(parse(spec).quantize(x), expected, spec)


@pytest.mark.parametrize("spec", ["int8", "int4", "uint8:sym"])
def test_static_scale_per_tensor_matches_torch(spec):
    qmin, qmax, _ = PER_TENSOR[spec]
    x = _data((50, 40), seed=1)
    for s in (0.05, 2.0**-4, 0.3):
        expected = torch.fake_quantize_per_tensor_affine(x, s, 0, qmin, qmax)
        assert_values_equal(parse(spec).quantize(x, scale=s), expected, f"{spec} scale={s}")


@pytest.mark.parametrize("spec", ["uint8", "int8:asym", "uint4"])
def test_static_scale_and_zero_point_match_torch(spec):
    qmin, qmax, _ = PER_TENSOR[spec]
    x = _data((50, 40), seed=2)
    zp = (qmin + qmax) // 2 + 3
    expected = torch.fake_quantize_per_tensor_affine(x, 0.02, zp, qmin, qmax)
    assert_values_equal(parse(spec).quantize(x, scale=0.02, zero_point=zp), expected, spec)


def test_zero_point_is_added_after_rounding():
    """ONNX QuantizeLinear (and torch) compute round(x / scale) + zero_point.

    x / 1.0 = -25.4999962 rounds to -25.  Adding the zero point 128 first in float32 gives
    102.5000038, which is exactly half an ulp above 102.5 and rounds to 102.5, a tie that
    then rounds to 102, i.e. -26: one step off.
    """
    x = torch.tensor([-25.499996185302734, -1.4999998807907104])
    assert float(np.float32(-25.499996185302734)) == -25.499996185302734
    got = parse("uint8").quantize(x, scale=1.0, zero_point=128)
    assert_values_equal(got, torch.tensor([-25.0, -1.0]))
    assert_values_equal(got, torch.fake_quantize_per_tensor_affine(x, 1.0, 128, 0, 255))


def test_unsigned_symmetric_scale_maps_the_maximum_onto_255():
    """uint8:sym has no negative codes, so its scale comes from max(x, 0), as in
    ``scale_from_range`` (``hi.clamp(min=0)`` when the grid starts at 0); a large negative
    value must not shrink the resolution of the positive ones."""
    x = torch.tensor([-4.0, 0.5, 2.0])
    s = torch.tensor(2.0) / 255  # 0.5 / s = 63.75
    expected = torch.stack([0 * s, 64 * s, 255 * s])
    f = parse("uint8:sym")
    assert_values_equal(f.quantize(x), expected)
    scale, _ = f.scale_from_range(torch.tensor(-4.0), torch.tensor(2.0))
    assert_values_equal(f.quantize(x), f.quantize(x, scale=scale))


def test_symmetric_narrow_range_is_sign_symmetric():
    """int8 symmetric never produces -128: -x quantizes to -q(x)."""
    x = _data((4096,), seed=3)
    f = parse("int8")
    q = f.quantize(x)
    assert_values_equal(f.quantize(-x), -q)
    s = x.abs().max() / 127
    assert (q / s).round().abs().max().item() == 127


# ---- per channel vs torch.fake_quantize_per_channel_affine ------------------------------------


@pytest.mark.parametrize(
    "spec,qrange,shape,axis",
    [
        ("int8:channel", (-127, 127, True), (16, 64), 0),
        ("int4:channel", (-7, 7, True), (16, 64), 0),
        ("int8:channel:axis=1", (-127, 127, True), (8, 4, 5), 1),
        ("int8:channel:axis=-1", (-127, 127, True), (6, 9), 1),
        ("int8:channel:asym", (-128, 127, False), (16, 64), 0),
        ("uint8:channel", (0, 255, False), (12, 30), 0),
    ],
)
def test_per_channel_matches_torch_fake_quantize(spec, qrange, shape, axis):
    fmt = parse(spec)
    qmin, qmax, sym = qrange
    x = _data(shape, seed=4, offset=0.5)
    x[0] *= 100  # channels with very different ranges
    dims = tuple(d for d in range(len(shape)) if d != axis)
    s, zp = _scale_zp(x, qmin, qmax, sym, dims=dims)
    expected = torch.fake_quantize_per_channel_affine(x, s, zp, axis, qmin, qmax)
    assert_values_equal(fmt.quantize(x), expected, spec)


def test_static_per_channel_scale():
    x = _data((8, 32), seed=5)
    scale = torch.linspace(0.01, 0.2, 8)
    expected = torch.fake_quantize_per_channel_affine(x, scale, torch.zeros(8, dtype=torch.int32), 0, -127, 127)
    assert_values_equal(parse("int8:channel").quantize(x, scale=scale[:, None]), expected)


# ---- per token / per group vs hand-written loops ----------------------------------------------


def _loop_quantize_row(row: torch.Tensor, qmin: int, qmax: int, sym: bool) -> torch.Tensor:
    """One scale for ``row``: the reference the per-token and per-group loops use."""
    vals = [float(v) for v in row.tolist()]
    finite = [v for v in vals if math.isfinite(v)] or [0.0]
    if sym:
        amax = max(abs(v) for v in finite) if qmin < 0 else max(max(finite), 0.0)
        s = float(np.float32(np.float32(amax) / np.float32(qmax)))
        zp = 0
    else:
        lo, hi = min(min(finite), 0.0), max(max(finite), 0.0)
        s = float(np.float32(np.float32(hi - lo) / np.float32(qmax - qmin)))
    if s == 0:
        s = 1.0
    if not sym:
        zp = min(max(round(float(np.float32(qmin) - np.float32(lo) / np.float32(s))), qmin), qmax)
    out = []
    for v in vals:
        if math.isnan(v):
            out.append(math.nan)
            continue
        # ONNX QuantizeLinear: saturate(round(x / scale) + zero_point), round = ties to even.
        if math.isinf(v):
            q = qmax if v > 0 else qmin
        else:
            q = round(float(np.float32(np.float32(v) / np.float32(s)))) + zp
        q = min(max(q, qmin), qmax)
        out.append(float(np.float32(q - zp) * np.float32(s)))
    return torch.tensor(out, dtype=torch.float32)


def _loop_reference(x: torch.Tensor, qmin, qmax, sym, axis: int, group: int | None) -> torch.Tensor:
    """Per token (group=None: the whole ``axis`` shares a scale) or per group of ``group``
    consecutive elements along ``axis``; every other index has its own scale."""
    if axis is None:  # per tensor
        return _loop_quantize_row(x.reshape(-1), qmin, qmax, sym).view(x.shape)
    xm = x.movedim(axis, -1).contiguous()
    out = torch.empty(xm.shape, dtype=x.dtype)
    flat_in = xm.reshape(-1, xm.shape[-1])
    flat_out = out.view(-1, xm.shape[-1])
    n = xm.shape[-1]
    step = n if group is None else group
    for r in range(flat_in.shape[0]):
        for g0 in range(0, n, step):
            flat_out[r, g0 : g0 + step] = _loop_quantize_row(flat_in[r, g0 : g0 + step], qmin, qmax, sym)
    return out.movedim(-1, axis)


@pytest.mark.parametrize(
    "spec,shape,qrange,axis,group",
    [
        ("int8:token", (3, 5, 40), (-127, 127, True), -1, None),
        ("int16", (64, 256), (-32767, 32767, True), None, None),
        ("int8:token:asym", (6, 33), (-128, 127, False), -1, None),
        ("uint8:token", (6, 33), (0, 255, False), -1, None),
        ("int8:token:axis=0", (7, 5), (-127, 127, True), 0, None),
        ("int4:group=128", (4, 300), (-7, 7, True), -1, 128),
        ("int4:group=128:asym", (4, 300), (-8, 7, False), -1, 128),
        ("int2:group=32", (3, 70), (-1, 1, True), -1, 32),
        ("int8:group=16", (2, 16), (-127, 127, True), -1, 16),
        ("int4:group=32:axis=0", (100, 6), (-7, 7, True), 0, 32),
        ("int4:group=8:axis=1", (2, 21, 3), (-7, 7, True), 1, 8),
        ("uint4:group=10", (3, 25), (0, 15, False), -1, 10),
    ],
)
def test_token_and_group_match_loop_reference(spec, shape, qrange, axis, group):
    x = _data(shape, seed=6, offset=0.3)
    x.view(-1)[::17] *= 20  # outliers in some groups
    expected = _loop_reference(x, *qrange, axis=axis, group=group)
    assert_values_equal(parse(spec).quantize(x), expected, spec)


def test_group_axis_argument_overrides_spec_axis():
    x = _data((96, 5), seed=7)
    expected = _loop_reference(x, -7, 7, True, axis=0, group=32)
    assert_values_equal(parse("int4:group=32").quantize(x, axis=0), expected)
    assert_values_equal(parse("int4:group=32:axis=0").quantize(x), expected)


def test_ragged_last_group_is_not_wrapped_into_next_row():
    """Row 0 is tiny and row 1 huge: a wrapped tail group would take row 1's scale."""
    x = torch.cat([_data((1, 40), seed=8) * 1e-3, _data((1, 40), seed=9) * 1e3])
    f = parse("int4:group=32")
    q = f.quantize(x)
    for r in range(2):
        assert_values_equal(q[r], f.quantize(x[r]), f"row {r}")
        assert_values_equal(q[r, 32:], f.quantize(x[r, 32:]), f"row {r} tail")


def test_static_per_group_scale():
    x = _data((4, 300), seed=10)
    scale = torch.full((4, 3, 1), 0.25)
    expected = torch.fake_quantize_per_tensor_affine(x, 0.25, 0, -7, 7)
    assert_values_equal(parse("int4:group=128").quantize(x, scale=scale), expected)


# ---- special values ---------------------------------------------------------------------------

SCALED_SPECS = [
    "int8", "int8:channel", "int8:token", "uint8", "int4", "int4:group=128", "int2:group=32",
    "int8:asym", "dint4", "dint4:group=128", "fixed8:frac=4",
]


@pytest.mark.parametrize("spec", SCALED_SPECS)
def test_all_zero_tensor_is_exact(spec):
    f = parse(spec)
    x = torch.zeros(3, 200)
    assert torch.equal(f.quantize(x), x)
    assert torch.equal(f.decode(f.encode(x)), x)


def test_nan_preserved_and_inf_saturates_symmetric():
    x = torch.tensor([math.inf, -math.inf, math.nan, 1.0, 0.5, -0.25])
    s = torch.tensor(1.0) / 127
    expected = torch.stack([127 * s, -127 * s, torch.tensor(math.nan), 127 * s, 64 * s, -32 * s])
    assert_values_equal(parse("int8").quantize(x), expected)


def test_nan_preserved_and_inf_saturates_asymmetric():
    x = torch.tensor([math.nan, math.inf, -math.inf, 0.0, 0.5, 2.0])
    s = torch.tensor(2.0) / 255  # 0.5 / s = 63.75
    expected = torch.stack([torch.tensor(math.nan), 255 * s, 0 * s, 0 * s, 64 * s, 255 * s])
    assert_values_equal(parse("uint8").quantize(x), expected)


FLT_MAX = float(torch.finfo(torch.float32).max)


@pytest.mark.parametrize("spec", ["int8", "int4", "dint4", "int8:token", "uint8", "int8:asym", "int4:group=128:asym"])
def test_extreme_finite_inputs_stay_finite(spec):
    """A finite input never becomes Inf or NaN.  At the top of float32's range the grid value
    gmax * scale must not overflow (float32 max / 127 * 127 rounds up past float32 max), and an
    asymmetric range hi - lo wider than float32 max must not give an infinite scale."""
    x = torch.tensor([FLT_MAX, -FLT_MAX, 1.0, 3e38, -3e38])
    q = parse(spec).quantize(x)
    assert bool(torch.isfinite(q).all()), q


def test_nan_does_not_change_other_elements():
    x = _data((10, 30), seed=11)
    y = x.clone()
    y[3, 7] = math.nan
    for spec in ("int8", "int8:token", "int4:group=128", "uint8", "dint4"):
        f = parse(spec)
        qy = f.quantize(y)
        assert torch.isnan(qy).nonzero().tolist() == [[3, 7]], spec
        # The other elements quantize as if the NaN were absent from the range (here: a 0).
        ref = x.clone()
        ref[3, 7] = 0.0
        mask = ~torch.isnan(y)
        assert torch.equal(qy[mask], f.quantize(ref)[mask]), spec


def test_encode_refuses_nan_in_integer_formats():
    with pytest.raises(ValueError, match="no NaN code"):
        parse("int8").encode(torch.tensor([1.0, math.nan]))


# ---- rounding modes on the integer grid -------------------------------------------------------

BELOW_HALF = float(np.nextafter(np.float32(0.5), np.float32(0)))
INT_ROUNDING = {
    #        0.5  1.5  2.5  -0.5 -1.5 0.49999997 2.7 -2.7
    "even": [0, 2, 2, 0, -2, 0, 3, -3],
    "away": [1, 2, 3, -1, -2, 0, 3, -3],
    "floor": [0, 1, 2, -1, -2, 0, 2, -3],
    "ceil": [1, 2, 3, 0, -1, 1, 3, -2],
    "zero": [0, 1, 2, 0, -1, 0, 2, -2],
}


@pytest.mark.parametrize("mode", list(INT_ROUNDING))
def test_integer_rounding_modes_hand_computed(mode):
    f = parse("int8" if mode == "even" else f"int8:round={mode}")
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, BELOW_HALF, 2.7, -2.7])
    got = f.quantize(x, scale=1.0)
    assert_values_equal(got, torch.tensor(INT_ROUNDING[mode], dtype=torch.float32), mode)


def test_integer_stochastic_rounding_unbiased_and_seeded():
    x = torch.full((200_000,), 0.3)
    a = parse("int8:round=stochastic:seed=5").quantize(x, scale=0.125)
    b = parse("int8:round=stochastic:seed=5").quantize(x, scale=0.125)
    c = parse("int8:round=stochastic:seed=6").quantize(x, scale=0.125)
    assert torch.equal(a, b) and not torch.equal(a, c)
    k = a / 0.125
    assert set(k.unique().tolist()) == {2.0, 3.0}
    expected = float(torch.tensor(0.3)) / 0.125  # 2.4: rounds up 40% of the time
    assert abs(k.double().mean().item() - expected) < 6 * 0.5 / math.sqrt(x.numel())


def test_stochastic_rounding_keeps_integers_on_a_wide_grid():
    """An input already on the grid must never move, whatever the noise."""
    f = parse("fixed16:frac=0:round=stochastic:seed=1")
    x = torch.arange(-32768, 32768, dtype=torch.float32).repeat(4)
    assert_values_equal(f.quantize(x), x)


def test_round_away_on_a_wide_grid():
    f = parse("fixed32:frac=0:round=away")
    x = torch.tensor([8388609.0, -8388609.0, 8388607.0, 2.5, -2.5])
    assert_values_equal(f.quantize(x), torch.tensor([8388609.0, -8388609.0, 8388607.0, 3.0, -3.0]))


# ---- fixed point ------------------------------------------------------------------------------

FIXED_CASES = {
    "fixed8:frac=4": (
        [0.03125, 0.09375, 1.0, 7.97, 100.0, -8.0, -8.03, -9.0, math.inf, -math.inf, math.nan, 0.1],
        [0.0, 0.125, 1.0, 7.9375, 7.9375, -8.0, -8.0, -8.0, 7.9375, -8.0, math.nan, 0.125],
    ),
    "fixed16:frac=8": (
        [1 / 512, 3 / 512, 127.99609375, 200.0, -128.0, -200.0, 0.3],
        [0.0, 2 / 256, 127.99609375, 127.99609375, -128.0, -128.0, 77 / 256],
    ),
    "ufixed8:frac=4": ([-1.0, 3.03125, 15.9375, 16.0, 0.0], [0.0, 3.0, 15.9375, 15.9375, 0.0]),
    "fixed8:frac=-2": ([6.0, 10.0, 1000.0, -1000.0, 1.9], [8.0, 8.0, 508.0, -512.0, 0.0]),
    "fixed8:frac=4:round=floor": ([-0.01, 0.06, 7.99], [-0.0625, 0.0, 7.9375]),
}


@pytest.mark.parametrize("spec", list(FIXED_CASES))
def test_fixed_point_hand_computed(spec):
    x, expected = FIXED_CASES[spec]
    f = parse(spec)
    assert_values_equal(f.quantize(torch.tensor(x)), torch.tensor(expected, dtype=torch.float32), spec)
    finite = torch.tensor([v for v in x if not math.isnan(v)])
    assert_values_equal(f.decode(f.encode(finite)), f.quantize(finite), spec)


def test_fixed_point_codes_are_twos_complement():
    f = parse("fixed8:frac=4")
    enc = f.encode(torch.tensor([-8.0, -0.0625, 0.0, 0.0625, 7.9375]))
    assert enc.unpacked_codes().tolist() == [0x80, 0xFF, 0x00, 0x01, 0x7F]
    assert f.bits_per_element == 8


def test_fixed_point_rejects_a_scale():
    with pytest.raises(ValueError, match="fixed scale"):
        parse("fixed8:frac=4").quantize(torch.ones(3), scale=0.5)


# ---- dINT -------------------------------------------------------------------------------------

DINT4_TABLE = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, -0.5, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0]


def test_dint4_full_code_table():
    f = parse("dint4")
    got = decode_codes(f, torch.arange(16), 4, scales=torch.tensor(1.0))
    assert_values_equal(got, torch.tensor(DINT4_TABLE))
    # Every value encodes back to its code; negative zero (code 8) is never produced.
    vals = torch.tensor([v for i, v in enumerate(DINT4_TABLE) if i != 8])
    codes = f.encode(vals, scale=1.0).unpacked_codes().tolist()
    assert codes == [i for i in range(16) if i != 8]
    assert f.encode(torch.tensor([-0.0, -0.1]), scale=1.0).unpacked_codes().tolist() == [0, 0]


def test_dint8_code_table_formula():
    f = parse("dint8")
    got = decode_codes(f, torch.arange(256), 8, scales=torch.tensor(1.0))
    mag = [0.0, 0.5] + [float(m - 1) for m in range(2, 128)]
    assert_values_equal(got, torch.tensor(mag + [-v for v in mag]))


def test_dint4_quantize_hand_computed():
    f = parse("dint4")
    # amax 6 -> scale 1: the grid is {0, +-0.5, +-1, ..., +-6}, nearest with ties to even
    # (half-steps below 1: 0.25 -> 0, 0.75 -> 1; whole steps above: 2.5 -> 2, 3.5 -> 4).
    x = torch.tensor([6.0, 0.2, 0.25, 0.3, -0.26, 0.7, 0.75, -0.75, 0.9, 1.4, 2.5, 3.5, -5.5, 1.0])
    expected = torch.tensor([6.0, 0.0, 0.0, 0.5, -0.5, 0.5, 1.0, -1.0, 1.0, 1.0, 2.0, 4.0, -6.0, 1.0])
    assert_values_equal(f.quantize(x), expected)
    # The scale maps the absolute maximum onto 6.
    assert_values_equal(f.quantize(x * 0.5), expected * 0.5)


def test_dint4_small_values_do_not_underflow_like_int4():
    x = torch.tensor([6.0, 0.4, -0.4, 0.35, -0.3])
    q_int4 = parse("int4").quantize(x)  # scale 6/7: 0.4/(6/7) = 0.467 rounds to 0
    q_dint4 = parse("dint4").quantize(x)  # scale 1: 0.4 -> 0.5
    assert torch.equal(q_int4[1:], torch.zeros(4))
    assert_values_equal(q_dint4, torch.tensor([6.0, 0.5, -0.5, 0.5, -0.5]))


def _dint_loop_row(row: torch.Tensor, maxmag: int) -> torch.Tensor:
    vals = [float(v) for v in row.tolist()]
    amax = max(abs(v) for v in vals)
    s = float(np.float32(np.float32(amax) / np.float32(maxmag))) or 1.0
    out = []
    for v in vals:
        y = float(np.float32(np.float32(v) / np.float32(s)))
        q = round(2 * y) / 2 if abs(y) < 1 else float(round(y))  # Python round: ties to even
        q = min(max(q, -maxmag), maxmag)
        out.append(float(np.float32(q) * np.float32(s)))
    return torch.tensor(out, dtype=torch.float32)


def test_dint4_group_matches_loop_reference():
    x = _data((3, 300), seed=12)
    x[:, ::13] *= 10
    expected = torch.stack([torch.cat([_dint_loop_row(x[r, g : g + 128], 6) for g in range(0, 300, 128)]) for r in range(3)])
    assert_values_equal(parse("dint4:group=128").quantize(x), expected)


def test_dint4_channel_matches_loop_reference():
    x = _data((5, 40), seed=13)
    expected = torch.stack([_dint_loop_row(x[r], 6) for r in range(5)])
    assert_values_equal(parse("dint4:channel").quantize(x), expected)


# ---- encode / decode and bits -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["int8", "int8:channel", "int8:token", "uint8", "int4", "int4:group=128", "int4:group=128:asym",
     "int2:group=32", "int16", "int8:group=16:axis=0", "dint4", "dint4:group=128", "dint8:token",
     "fixed8:frac=4", "fixed16:frac=8", "ufixed8:frac=4"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_decode_encode_round_trip(spec, dtype):
    x = _data((6, 300), seed=14, offset=0.2).to(dtype)
    f = parse(spec)
    assert_values_equal(f.decode(f.encode(x)), f.quantize(x), f"{spec} {dtype}")


def test_encoded_sizes():
    x = _data((4, 300), seed=15)
    enc = parse("int4:group=128").encode(x)
    assert enc.codes.dtype == torch.uint8
    assert enc.codes.numel() == 4 * 384 * 4 // 8  # ragged last group padded to 128
    assert enc.scales.numel() == 12 and enc.scales.dtype == torch.float32
    enc8 = parse("uint8").encode(x)
    assert enc8.codes.numel() == 1200 and enc8.zero_points.dtype == torch.int32


def test_bits_per_element_of_scaled_formats():
    got = {s: parse(s).bits_per_element for s in
           ["int8", "int8:channel", "int4:group=128", "int4:group=128:asym", "int2:group=32",
            "dint4", "dint4:group=128", "fixed8:frac=4"]}
    assert got == {"int8": 8.0, "int8:channel": 8.0, "int4:group=128": 4.25, "int4:group=128:asym": 4.5,
                   "int2:group=32": 3.0, "dint4": 4.0, "dint4:group=128": 4.25, "fixed8:frac=4": 8.0}


# ---- large tensors (CPU runs them in cache-sized chunks of rows) ------------------------------


def _torch_fq(x: torch.Tensor, fn, *args) -> torch.Tensor:
    """torch's fake-quantize is undefined for NaN/Inf: feed it +-1e12 for +-Inf (which
    saturates the same way) and put the NaN back."""
    xf = torch.nan_to_num(x, nan=0.0, posinf=1e12, neginf=-1e12)
    return fn(xf, *args).masked_fill_(torch.isnan(x), math.nan)


def _large(seed: int, shape=(640, 520)) -> torch.Tensor:
    x = _data(shape, seed=seed, offset=0.1)
    x[::7] *= 50  # rows at different scales
    x[3, 5] = math.nan
    x[4, 6] = math.inf
    x[8, :] = 0.0
    return x


@pytest.mark.parametrize("spec", ["int8", "int4", "int8:asym", "uint8"])
def test_large_per_tensor_matches_torch(spec):
    qmin, qmax, sym = PER_TENSOR[spec]
    x = _large(30)
    s, zp = _scale_zp(x, qmin, qmax, sym)
    expected = _torch_fq(x, torch.fake_quantize_per_tensor_affine, float(s), int(zp), qmin, qmax)
    assert_values_equal(parse(spec).quantize(x), expected, spec)


@pytest.mark.parametrize(
    "spec,qrange,axis",
    [("int8:channel", (-127, 127, True), 0), ("int8:token", (-127, 127, True), 0),
     ("int8:channel:axis=1", (-127, 127, True), 1), ("uint8:token", (0, 255, False), 0)],
)
def test_large_per_row_or_column_matches_torch(spec, qrange, axis):
    """A 2-D per-token scale is torch's per-channel scale along axis 0."""
    qmin, qmax, sym = qrange
    x = _large(31)
    dims = 1 - axis
    s, zp = _scale_zp(x, qmin, qmax, sym, dims=dims)
    expected = _torch_fq(x, torch.fake_quantize_per_channel_affine, s, zp, axis, qmin, qmax)
    assert_values_equal(parse(spec).quantize(x), expected, spec)


@pytest.mark.parametrize("spec,qrange", [("int4:group=128", (-7, 7, True)), ("int4:group=128:asym", (-8, 7, False)), ("int2:group=32", (-1, 1, True))])
def test_large_groups_match_torch(spec, qrange):
    """Groups of g along the last axis are torch per-channel scales of the (rows*n/g, g) view."""
    qmin, qmax, sym = qrange
    g = int(spec.split("group=")[1].split(":")[0])
    x = _large(32, shape=(600, 1024))
    v = x.reshape(-1, g)
    s, zp = _scale_zp(v, qmin, qmax, sym, dims=1)
    expected = _torch_fq(v, torch.fake_quantize_per_channel_affine, s, zp, 0, qmin, qmax).view(x.shape)
    assert_values_equal(parse(spec).quantize(x), expected, spec)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("spec,frac,qrange", [("fixed8:frac=4", 4, (-128, 127)), ("fixed16:frac=8", 8, (-32768, 32767)), ("ufixed8:frac=4", 4, (0, 255))])
def test_fixed_point_matches_torch_with_power_of_two_scale(spec, frac, qrange, dtype):
    """Fixed point is integer fake-quantization with the exact scale 2^-frac."""
    for shape in ((50, 40), (640, 520)):
        x = (_data(shape, seed=33) * 40).to(dtype)
        expected = torch.fake_quantize_per_tensor_affine(x.float(), 2.0**-frac, 0, *qrange).to(dtype)
        assert_values_equal(parse(spec).quantize(x), expected, f"{spec} {shape} {dtype}")


def _dint_numpy(x: np.ndarray, maxmag: int, axis: int) -> np.ndarray:
    """Vectorized dINT reference: scale = amax/max per slice along ``axis``, half-steps below 1."""
    x32 = x.astype(np.float32)
    amax = np.abs(x32).max(axis=axis, keepdims=True)
    s = (amax / np.float32(maxmag)).astype(np.float32)
    s = np.where(s > 0, s, np.float32(1))
    y = (x32 / s).astype(np.float32)
    q = np.where(np.abs(y) < 1, np.round(2 * y) / 2, np.round(y))  # np.round: half to even
    return (np.clip(q, -maxmag, maxmag).astype(np.float32) * s).astype(np.float32)


@pytest.mark.parametrize("shape", [(40, 64), (640, 520)])
def test_dint4_token_matches_numpy_reference(shape):
    x = _data(shape, seed=34)
    expected = torch.from_numpy(_dint_numpy(x.numpy(), 6, axis=-1))
    assert_values_equal(parse("dint4:token").quantize(x), expected)
