"""Hypothesis properties of every builtin format: idempotent, monotone, saturating,
NaN-preserving, sign-symmetric, and decode(encode(x)) == quantize(x).

Inputs are random tensors (a hypothesis-drawn shape, seed and magnitude) with up to
eight hypothesis-drawn float32 values planted at the front, so that shrinking still
finds the interesting edge values (subnormals, +-max float32, -0.0, exact ties).
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _numerics_helpers import assert_bits_equal, assert_values_equal
from mase_compiler.numerics import BUILTIN_SPECS, DIntFormat, FixedFormat, IntFormat, MXFormat, MinifloatFormat, parse

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

FORMATS = {s: parse(s) for s in BUILTIN_SPECS}
SCALE_FREE = [s for s, f in FORMATS.items() if isinstance(f, (MinifloatFormat, FixedFormat))]
ASYMMETRIC = [s for s, f in FORMATS.items() if isinstance(f, IntFormat) and not f.symmetric]
# Sign-symmetric: everything except unsigned/asymmetric integers and two's-complement fixed
# point (whose range [-2^(b-1), 2^(b-1)-1] steps is lopsided by one step).
SIGN_SYMMETRIC = [s for s in BUILTIN_SPECS if s not in ASYMMETRIC and not isinstance(FORMATS[s], FixedFormat)]

# Independent facts about the formats (ml_dtypes, torch.finfo, and the documented grids).
MINIFLOAT_MAX = {
    "fp8_e4m3": float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max),
    "fp8_e5m2": float(ml_dtypes.finfo(ml_dtypes.float8_e5m2).max),
    "fp6_e3m2": float(ml_dtypes.finfo(ml_dtypes.float6_e3m2fn).max),
    "fp6_e2m3": float(ml_dtypes.finfo(ml_dtypes.float6_e2m3fn).max),
    "fp4_e2m1": float(ml_dtypes.finfo(ml_dtypes.float4_e2m1fn).max),
    "bf16": float(torch.finfo(torch.bfloat16).max),
    "fp16": float(torch.finfo(torch.float16).max),
}
HAS_INF = {"fp8_e5m2", "bf16", "fp16"}
FIXED_RANGE = {"fixed8:frac=4": (-8.0, 127 / 16), "fixed16:frac=8": (-128.0, 32767 / 256)}
GRID = {  # static-scale grid (qmin, qmax) in units of the scale
    "int8": (-127, 127), "int8:channel": (-127, 127), "int8:token": (-127, 127), "uint8": (0, 255),
    "int4": (-7, 7), "int4:group=128": (-7, 7), "int2:group=32": (-1, 1), "dint4": (-6, 6),
    "dint4:group=128": (-6, 6),
}
# MX: (element max, emax_elem, block)
MX_FACTS = {
    "mxfp8_e4m3": (448.0, 8, 32), "mxfp8_e5m2": (57344.0, 15, 32), "mxfp6_e3m2": (28.0, 4, 32),
    "mxfp6_e2m3": (7.5, 2, 32), "mxfp4": (6.0, 2, 32), "mxint8": (127 / 64, 0, 32),
    "bfp4:block=16": (7 / 4, 0, 16), "bfp6:block=16": (31 / 16, 0, 16),
}
assert set(MINIFLOAT_MAX) | set(FIXED_RANGE) | set(GRID) | set(MX_FACTS) == set(BUILTIN_SPECS)


@st.composite
def tensors(draw, max_rows: int = 4, max_cols: int = 160, planted_nan: bool = False):
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    seed = draw(st.integers(0, 2**32 - 1))
    exponent = draw(st.integers(-40, 40))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=g) * 2.0**exponent
    planted = draw(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=8))
    flat = x.view(-1)
    for i, v in enumerate(planted[: flat.numel()]):
        flat[i] = v
    if planted_nan:
        for i in draw(st.lists(st.integers(0, flat.numel() - 1), min_size=1, max_size=3)):
            flat[i] = math.nan
    return x


def _same(spec: str, actual: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    """Bit-exact where the format has a -0 code (minifloat, MX minifloat elements); for
    integer grids +0 and -0 are the same value (torch.equal semantics)."""
    f = FORMATS[spec]
    has_neg_zero = isinstance(f, MinifloatFormat) or (isinstance(f, MXFormat) and not f.element.startswith("int"))
    (assert_bits_equal if has_neg_zero else assert_values_equal)(actual, expected, msg or spec)


# ---- idempotent -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [s for s in BUILTIN_SPECS if s not in ASYMMETRIC])
@SETTINGS
@given(x=tensors())
def test_idempotent(spec, x):
    f = FORMATS[spec]
    q = f.quantize(x)
    _same(spec, f.quantize(q), q)


@pytest.mark.parametrize("spec", ASYMMETRIC)
@SETTINGS
@given(x=tensors())
def test_asymmetric_requantization(spec, x):
    """Asymmetric integers cannot be bit-idempotent with a dynamic scale: the second pass
    recomputes scale = (hi' - lo') / 255 from hi' = (255 - zp) * s and lo' = -zp * s, and the
    two float32 products and their sum round, so the new scale may differ from s by an ulp
    and every value by an ulp of itself.  What must hold: re-quantizing with the original
    scale and zero point is exact, and the dynamic second pass moves nothing by more than
    float32 rounding of the scale."""
    f = FORMATS[spec]
    qmin, qmax = 0, 255
    finite = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = finite.min().clamp(max=0), finite.max().clamp(min=0)
    s = (hi - lo) / (qmax - qmin)
    if not bool(torch.isfinite(s)):  # the range itself overflows float32; nothing to check
        return
    s = torch.where(s > 0, s, torch.ones_like(s))
    zp = int(torch.round(qmin - lo / s).clamp(qmin, qmax))
    q = f.quantize(x)
    assert_values_equal(f.quantize(q, scale=s, zero_point=zp), q, "static re-quantization")
    qq = f.quantize(q)
    tol = float(q.abs().max()) * 2.0**-20
    assert float((qq - q).abs().max()) <= tol


# ---- monotone ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SCALE_FREE)
@SETTINGS
@given(x=tensors(max_rows=2, max_cols=200))
def test_monotone_scale_free(spec, x):
    xs = x.reshape(-1).sort().values
    q = FORMATS[spec].quantize(xs)
    assert bool((q[1:] >= q[:-1]).all())


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
@SETTINGS
@given(x=tensors(max_rows=1, max_cols=16))
def test_monotone_within_one_scale(spec, x):
    """A single row of at most 16 elements shares one scale in every builtin format (one
    tensor, channel, token, group or MX block): sorted inputs give sorted outputs."""
    xs = x.sort(dim=-1).values
    q = FORMATS[spec].quantize(xs)
    assert bool((q[..., 1:] >= q[..., :-1]).all()), (xs, q)


# ---- saturating -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(MINIFLOAT_MAX))
@SETTINGS
@given(x=tensors(), infinities=st.booleans())
def test_minifloat_saturates(spec, x, infinities):
    if infinities:
        x.view(-1)[-2:] = torch.tensor([math.inf, -math.inf])[: x.numel()]
    q = FORMATS[spec].quantize(x)
    m = MINIFLOAT_MAX[spec]
    finite_in = torch.isfinite(x)
    assert bool((q[finite_in].abs() <= m).all())
    if spec in HAS_INF:
        assert torch.equal(q[~finite_in], x[~finite_in])
    else:
        assert bool((q[~finite_in].abs() == m).all())


@pytest.mark.parametrize("spec", list(FIXED_RANGE))
@SETTINGS
@given(x=tensors())
def test_fixed_point_saturates(spec, x):
    lo, hi = FIXED_RANGE[spec]
    q = FORMATS[spec].quantize(x)
    assert bool(((q >= lo) & (q <= hi)).all())


@pytest.mark.parametrize("spec", list(GRID))
@SETTINGS
@given(x=tensors(), k=st.integers(-8, 8))
def test_static_scale_stays_on_the_grid(spec, x, k):
    qmin, qmax = GRID[spec]
    s = 2.0**k
    q = FORMATS[spec].quantize(x, scale=s)
    units = q.double() / s
    assert bool(((units >= qmin) & (units <= qmax)).all())
    if isinstance(FORMATS[spec], DIntFormat):
        assert bool((units.abs() >= 1).logical_or((units * 2).abs() <= 1).all())  # {0, 1/2} below 1
        assert torch.equal(units * 2, (units * 2).round())
    else:
        assert torch.equal(units, units.round())


@pytest.mark.parametrize("spec", [s for s in GRID if s not in ASYMMETRIC])
@SETTINGS
@given(x=tensors())
def test_dynamic_symmetric_scale_never_exceeds_the_input_range(spec, x):
    q = FORMATS[spec].quantize(x)
    assert float(q.abs().max()) <= float(x.abs().max()) * (1 + 2.0**-20)


def _mx_blocks(x: torch.Tensor, block: int) -> np.ndarray:
    a = x.double().numpy()
    pad = (-a.shape[-1]) % block
    a = np.concatenate([a, np.zeros(a.shape[:-1] + (pad,))], axis=-1)
    return a.reshape(a.shape[:-1] + (a.shape[-1] // block, block))


@pytest.mark.parametrize("spec", list(MX_FACTS))
@SETTINGS
@given(x=tensors())
def test_mx_saturates_at_element_max_times_block_scale(spec, x):
    emax_val, emax, block = MX_FACTS[spec]
    blocks = _mx_blocks(x, block)
    amax = np.abs(blocks).max(-1, keepdims=True)
    _, e = np.frexp(amax)
    X = np.clip(np.where(amax == 0, -127, e - 1 - emax), -127, 127)
    qb = _mx_blocks(FORMATS[spec].quantize(x), block)
    assert (np.abs(qb) <= emax_val * np.ldexp(1.0, X)).all()


# ---- NaN-preserving ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
@SETTINGS
@given(x=tensors(planted_nan=True))
def test_nan_preserving(spec, x):
    f = FORMATS[spec]
    q = f.quantize(x)
    if isinstance(f, MXFormat):  # a NaN makes its whole block NaN, and nothing else
        block = f.block
        nan_blocks = np.isnan(_mx_blocks(x, block)).any(-1, keepdims=True)
        expected = np.broadcast_to(nan_blocks, _mx_blocks(x, block).shape).reshape(x.shape[0], -1)[:, : x.shape[1]]
        assert np.array_equal(torch.isnan(q).numpy(), expected)
    else:
        assert torch.equal(torch.isnan(q), torch.isnan(x))


# ---- sign-symmetric ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SIGN_SYMMETRIC)
@SETTINGS
@given(x=tensors())
def test_sign_symmetric(spec, x):
    f = FORMATS[spec]
    _same(spec, f.quantize(-x), -f.quantize(x))


# ---- decode(encode(x)) == quantize(x) ---------------------------------------------------------


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
@SETTINGS
@given(x=tensors(), dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
def test_decode_encode_round_trip(spec, x, dtype):
    f = FORMATS[spec]
    x = x.to(dtype)
    _same(spec, f.decode(f.encode(x)), f.quantize(x))


NAN_ENCODABLE = [s for s, f in FORMATS.items() if isinstance(f, MXFormat) or (isinstance(f, MinifloatFormat) and f.special != "none")]


@pytest.mark.parametrize("spec", NAN_ENCODABLE)
@SETTINGS
@given(x=tensors(planted_nan=True))
def test_decode_encode_round_trip_with_nan(spec, x):
    f = FORMATS[spec]
    _same(spec, f.decode(f.encode(x)), f.quantize(x))


# ---- degenerate shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
def test_scalar_and_empty_tensors(spec):
    """0-d, one-element and empty tensors keep their shape (an empty batch is not an error)."""
    f = FORMATS[spec]
    for shape in [(), (1,), (0,), (3, 0)]:
        x = torch.full(shape, 1.25)
        q = f.quantize(x)
        assert q.shape == x.shape and q.dtype == x.dtype, shape
        _same(spec, f.decode(f.encode(x)), q, f"{spec} {shape}")
