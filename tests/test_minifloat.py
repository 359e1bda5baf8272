"""Minifloats against independent oracles: ml_dtypes, torch's float8/bf16/fp16
casts, and code tables built by hand from the bit-layout formula.

Convention under test (minifloat.py, DESIGN.md §4): round to nearest, ties to
even, finite overflow saturates to +-max (so the oracles are applied after
explicit clipping), +-Inf stays Inf only in IEEE formats, NaN stays NaN.
"""

from __future__ import annotations

import functools
import math

import ml_dtypes
import numpy as np
import pytest
import torch

from _numerics_helpers import (
    ML_MINIFLOATS,
    TORCH_FLOAT8,
    assert_bits_equal,
    brute_force_nearest,
    decode_codes,
    hand_minifloat_table,
    ml_code_values,
    ml_max,
    ml_quantize,
    neighbourhood_probes,
    random_float32_bits,
    torch_cast_quantize,
)
from mase_compiler.numerics import parse

ML_NAMES = list(ML_MINIFLOATS)


def _random_values(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mag = torch.randn(n, generator=g) * torch.exp2(torch.randint(-14, 12, (n,), generator=g).float())
    return mag


# ---- code tables ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ML_NAMES)
def test_every_code_decodes_to_ml_dtypes_value(name):
    ml_type, bits = ML_MINIFLOATS[name]
    fmt = parse(name)
    codes = torch.arange(1 << bits)
    got = decode_codes(fmt, codes, bits)
    expected = torch.from_numpy(ml_code_values(ml_type, bits).astype(np.float32))
    assert_bits_equal(got, expected, f"{name} code table")


@pytest.mark.parametrize("name", ML_NAMES)
def test_every_code_round_trips_through_encode(name):
    ml_type, bits = ML_MINIFLOATS[name]
    fmt = parse(name)
    table = ml_code_values(ml_type, bits)
    values = torch.from_numpy(table.astype(np.float32))
    got = fmt.encode(values).unpacked_codes()
    nan = np.isnan(table)
    # Numbers (including -0) come back as the very same code.
    assert got[torch.from_numpy(~nan)].tolist() == np.arange(1 << bits)[~nan].tolist()
    # NaN has several codes in E4M3FN/E5M2; re-encoding a NaN must give *a* NaN code.
    assert bool(np.isnan(table[got[torch.from_numpy(nan)].numpy()]).all())


def test_bits_per_element_of_minifloats():
    assert {n: parse(n).bits_per_element for n in [*ML_NAMES, "bf16", "fp16"]} == {
        "fp8_e4m3": 8.0, "fp8_e5m2": 8.0, "fp6_e3m2": 6.0, "fp6_e2m3": 6.0, "fp4_e2m1": 4.0,
        "bf16": 16.0, "fp16": 16.0,
    }


# ---- quantize against ml_dtypes ---------------------------------------------------------------


@pytest.mark.parametrize("name", ML_NAMES)
def test_quantize_matches_ml_dtypes_on_random_values(name):
    ml_type, _ = ML_MINIFLOATS[name]
    x = torch.cat([_random_values(20000, seed=1), random_float32_bits(20000, seed=2)])
    assert_bits_equal(parse(name).quantize(x), ml_quantize(x, ml_type), name)


@pytest.mark.parametrize("name", ML_NAMES)
def test_quantize_matches_ml_dtypes_at_values_midpoints_and_neighbours(name):
    """Every representable value, every midpoint (ties to even) and one float32 ulp either side."""
    ml_type, bits = ML_MINIFLOATS[name]
    x = torch.from_numpy(neighbourhood_probes(ml_code_values(ml_type, bits)))
    assert_bits_equal(parse(name).quantize(x), ml_quantize(x, ml_type), name)


@pytest.mark.parametrize("name", ML_NAMES)
def test_quantize_matches_ml_dtypes_on_subnormals(name):
    ml_type, _ = ML_MINIFLOATS[name]
    tiny = float(ml_dtypes.finfo(ml_type).smallest_normal)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(20000, generator=g) * 2 - 1) * 2 * tiny
    assert_bits_equal(parse(name).quantize(x), ml_quantize(x, ml_type), name)


@pytest.mark.parametrize("name", ML_NAMES)
def test_values_beyond_max_saturate(name):
    ml_type, _ = ML_MINIFLOATS[name]
    m = ml_max(ml_type)
    big = torch.tensor([m * 1.0001, m * 1.07, m * 1.5, m * 2, m * 1000, 1e30, 3.4e38], dtype=torch.float32)
    x = torch.cat([big, -big])
    expected = torch.cat([torch.full_like(big, m), torch.full_like(big, -m)])
    assert_bits_equal(parse(name).quantize(x), expected, name)


@pytest.mark.parametrize("name", ML_NAMES)
def test_infinity_and_nan(name):
    ml_type, _ = ML_MINIFLOATS[name]
    m = ml_max(ml_type)
    x = torch.tensor([math.inf, -math.inf, math.nan, 1.0])
    got = parse(name).quantize(x)
    if name == "fp8_e5m2":  # IEEE-style: keeps Inf
        expected = torch.tensor([math.inf, -math.inf, math.nan, 1.0])
    else:  # no Inf: saturate
        expected = torch.tensor([m, -m, math.nan, 1.0])
    assert_bits_equal(got, expected, name)


def test_fp8_e4m3_known_values():
    """Hand-written E4M3FN facts: max 448, the NaN-adjacent midpoint, smallest subnormal 2^-9."""
    f = parse("fp8_e4m3")
    x = torch.tensor([448.0, 464.0, 465.0, 2.0**-9, 2.0**-10, 2.0**-10 * 1.0001, 1.0625, 1.1875, -17.0])
    expected = torch.tensor([448.0, 448.0, 448.0, 2.0**-9, 0.0, 2.0**-9, 1.0, 1.25, -16.0])
    assert_bits_equal(f.quantize(x), expected)


def test_fp4_e2m1_known_values():
    f = parse("fp4_e2m1")
    x = torch.tensor([0.25, 0.26, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.01, 100.0, -0.1])
    expected = torch.tensor([0.0, 0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0, -0.0])
    assert_bits_equal(f.quantize(x), expected)


# ---- second oracle: torch's float8 dtypes -----------------------------------------------------


@pytest.mark.parametrize("name", list(TORCH_FLOAT8))
def test_quantize_matches_torch_float8_casts(name):
    dtype = TORCH_FLOAT8[name]
    ml_type, bits = ML_MINIFLOATS[name]
    probes = torch.from_numpy(neighbourhood_probes(ml_code_values(ml_type, bits)))
    x = torch.cat([probes, _random_values(20000, seed=4), random_float32_bits(20000, seed=5)])
    m = torch.finfo(dtype).max
    x = x[x.abs() <= m]  # in range: torch and ml_dtypes disagree only beyond max
    assert_bits_equal(parse(name).quantize(x), torch_cast_quantize(x, dtype), name)


# ---- bf16 / fp16 against torch casts ----------------------------------------------------------


@pytest.mark.parametrize("name,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_bf16_fp16_match_torch_casts(name, dtype):
    # Every positive finite value of the 16-bit type, its midpoints and their neighbours.
    all_values = torch.arange(0, 1 << 16, dtype=torch.int32).to(torch.int16).view(dtype).double().numpy()
    probes = torch.from_numpy(neighbourhood_probes(all_values))
    x = torch.cat([probes, _random_values(20000, seed=6), random_float32_bits(50000, seed=7)])
    f = parse(name)
    assert_bits_equal(f.quantize(x), torch_cast_quantize(x, dtype), name)
    # IEEE: Inf stays, NaN stays, finite overflow saturates.
    m = torch.finfo(dtype).max
    special = torch.tensor([math.inf, -math.inf, math.nan, 3.4e38, -3.4e38])
    expected = torch.tensor([math.inf, -math.inf, math.nan, m, -m])
    assert_bits_equal(f.quantize(special), expected, name)


def _positive_values(name: str) -> np.ndarray:
    if name in ML_MINIFLOATS:
        ml_type, bits = ML_MINIFLOATS[name]
        v = ml_code_values(ml_type, bits)
    else:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[name]
        v = torch.arange(0, 1 << 15, dtype=torch.int32).to(torch.int16).view(dtype).double().numpy()
    return np.unique(np.abs(v[np.isfinite(v)]))


@pytest.mark.parametrize("name", [*ML_NAMES, "bf16", "fp16"])
def test_float64_inputs_round_on_the_correct_side_of_midpoints(name):
    """float64 inputs are rounded once, from float64: a value a hair (2^-40 relative) above a
    midpoint goes up and a hair below goes down.  (ml_dtypes and torch convert float64 via
    float32 and would round such values to even, so the expectation is written by hand.)"""
    v = _positive_values(name)
    lo, hi = v[:-1], v[1:]
    mid = (lo + hi) / 2
    up = mid * (1 + 2.0**-40)
    down = mid * (1 - 2.0**-40)
    x = torch.from_numpy(np.concatenate([up, down, -up, -down]))
    expected = torch.from_numpy(np.concatenate([hi, lo, -hi, -lo]))
    assert_bits_equal(parse(name).quantize(x), expected, f"{name} float64")


def test_fp16_float64_inputs_match_numpy_half_cast():
    """numpy's float64 -> float16 cast rounds once (no float32 step): a third oracle."""
    g = torch.Generator().manual_seed(8)
    x = (torch.randn(20000, generator=g, dtype=torch.float64) * 2.0 ** torch.randint(-26, 16, (20000,), generator=g))
    x = x.clamp(-65504, 65504)
    expected = torch.from_numpy(x.numpy().astype(np.float16).astype(np.float64))
    assert_bits_equal(parse("fp16").quantize(x), expected, "fp16 float64")


# ---- generic fp:e=..:m=.. formats against a brute-force search -------------------------------

GENERIC = [
    (3, 4, None, "none"),
    (4, 3, 9, "none"),
    (3, 3, None, "fn"),
    (5, 3, None, "ieee"),
    (2, 2, None, "ieee"),
    (1, 3, None, "none"),
    (3, 0, None, "none"),
    (3, 0, None, "ieee"),
    (4, 0, None, "fn"),
    (5, 4, 20, "ieee"),
    (3, 2, -2, "none"),
    (2, 5, 3, "fn"),
]


def _generic_spec(e, m, bias, special):
    s = f"fp:e={e}:m={m}"
    if bias is not None:
        s += f":bias={bias}"
    return s + f":special={special}"


@pytest.mark.parametrize("e,m,bias,special", GENERIC, ids=[_generic_spec(*g) for g in GENERIC])
def test_generic_minifloat_code_table(e, m, bias, special):
    fmt = parse(_generic_spec(e, m, bias, special))
    b = (1 << (e - 1)) - 1 if bias is None else bias
    table = hand_minifloat_table(e, m, b, special)
    n = 1 + e + m
    assert fmt.bits_per_element == n
    got = decode_codes(fmt, torch.arange(1 << n), n, dtype=torch.float64)
    assert_bits_equal(got, torch.from_numpy(table), str(fmt))


@pytest.mark.parametrize("e,m,bias,special", GENERIC, ids=[_generic_spec(*g) for g in GENERIC])
def test_generic_minifloat_quantize_is_nearest_even_saturating(e, m, bias, special):
    fmt = parse(_generic_spec(e, m, bias, special))
    b = (1 << (e - 1)) - 1 if bias is None else bias
    table = hand_minifloat_table(e, m, b, special)
    top = np.nanmax(np.where(np.isinf(table), np.nan, table))
    g = torch.Generator().manual_seed(10)
    rand = (torch.randn(5000, generator=g) * top / 3).numpy()
    extra = np.array([top * 1.01, top * 4, 1e30, np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32)
    x = np.concatenate([neighbourhood_probes(table), rand, -rand, extra]).astype(np.float32)
    expected = brute_force_nearest(x, table, has_inf=special == "ieee", man_bits=m).astype(np.float32)
    assert_bits_equal(fmt.quantize(torch.from_numpy(x)), torch.from_numpy(expected), str(fmt))


@pytest.mark.parametrize("e,m,bias,special", GENERIC, ids=[_generic_spec(*g) for g in GENERIC])
def test_generic_minifloat_decode_encode_round_trip(e, m, bias, special):
    """decode(encode(x)) == quantize(x); a format with no NaN code may refuse NaN with ValueError."""
    fmt = parse(_generic_spec(e, m, bias, special))
    g = torch.Generator().manual_seed(11)
    x = torch.cat([torch.randn(3000, generator=g) * 4.0 ** torch.randint(-3, 4, (3000,), generator=g)])
    assert_bits_equal(fmt.decode(fmt.encode(x)), fmt.quantize(x), str(fmt))
    xs = torch.tensor([math.nan, math.inf, -math.inf, 1.0, -0.0])
    try:
        enc = fmt.encode(xs)
    except ValueError as err:
        assert "NaN" in str(err)
        b = (1 << (e - 1)) - 1 if bias is None else bias
        assert not np.isnan(hand_minifloat_table(e, m, b, special)).any(), "a format with a NaN code must encode NaN"
        return
    assert_bits_equal(fmt.decode(enc), fmt.quantize(xs), f"{fmt} with NaN/Inf")


def test_formats_without_nan_refuse_to_encode_nan():
    for name in ("fp6_e3m2", "fp6_e2m3", "fp4_e2m1"):
        with pytest.raises(ValueError, match="no NaN code"):
            parse(name).encode(torch.tensor([1.0, math.nan]))


# ---- per-tensor scale option ------------------------------------------------------------------


@pytest.mark.parametrize("name", ML_NAMES)
def test_quantize_with_power_of_two_scale(name):
    ml_type, _ = ML_MINIFLOATS[name]
    x = _random_values(4000, seed=12)
    s = 2.0**-5
    expected = ml_quantize(x / s, ml_type) * s
    assert_bits_equal(parse(name).quantize(x, scale=s), expected, name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaled_encode_decode_round_trip(dtype):
    """decode(encode(x, scale=s)) == quantize(x, scale=s), also when s is not a float32 value."""
    f = parse("fp8_e4m3")
    x = _random_values(2000, seed=13).to(dtype)
    for s in (0.25, 0.1, 3.0):
        assert_bits_equal(f.decode(f.encode(x, scale=s)), f.quantize(x, scale=s), f"{dtype} scale={s}")


# ---- rounding modes ---------------------------------------------------------------------------

# In E4M3's binade [1, 2) the step is 1/8: 1.0625 and 1.1875 are midpoints, 1.1 and 1.03 are not.
ROUNDING_CASES = {
    #         1.0625  -1.0625  1.1875  1.1    -1.1    1.03
    "even": [1.0, -1.0, 1.25, 1.125, -1.125, 1.0],
    "away": [1.125, -1.125, 1.25, 1.125, -1.125, 1.0],
    "floor": [1.0, -1.125, 1.125, 1.0, -1.125, 1.0],
    "ceil": [1.125, -1.0, 1.25, 1.125, -1.0, 1.125],
    "zero": [1.0, -1.0, 1.125, 1.0, -1.0, 1.0],
}


@pytest.mark.parametrize("mode", list(ROUNDING_CASES))
def test_rounding_modes_hand_computed(mode):
    f = parse(f"fp8_e4m3:round={mode}" if mode != "even" else "fp8_e4m3")
    x = torch.tensor([1.0625, -1.0625, 1.1875, 1.1, -1.1, 1.03])
    assert_bits_equal(f.quantize(x), torch.tensor(ROUNDING_CASES[mode]), mode)


def test_round_away_just_below_half_of_smallest_subnormal():
    """Ties-away must not turn a value *below* a midpoint into a round-up.

    E4M3's smallest subnormal is 2^-9; the float32 just below 2^-10 is nearer to 0.
    """
    f = parse("fp8_e4m3:round=away")
    below_half = float(np.nextafter(np.float32(2.0**-10), np.float32(0)))
    x = torch.tensor([below_half, -below_half, 2.0**-10, -(2.0**-10)])
    expected = torch.tensor([0.0, -0.0, 2.0**-9, -(2.0**-9)])
    assert_bits_equal(f.quantize(x), expected)


@pytest.mark.parametrize("mode", ["even", "away", "floor", "ceil", "zero", "stochastic"])
def test_every_rounding_mode_keeps_representable_values(mode):
    """No rounding mode may move a value that is already on the grid (fp16: 11-bit significands)."""
    spec = "fp16" if mode == "even" else f"fp16:round={mode}"
    f = parse(spec)
    codes = torch.arange(0, 0x7C00, dtype=torch.int32).to(torch.int16)  # every finite positive fp16
    v = codes.view(torch.float16).float()
    x = torch.cat([v, -v]).repeat(4 if mode == "stochastic" else 1)  # noise needs many draws
    assert_bits_equal(f.quantize(x), x, spec)


def test_stochastic_rounding_is_seeded_and_deterministic():
    x = torch.full((4096,), 1.03)
    a1 = parse("fp8_e4m3:round=stochastic:seed=1").quantize(x)
    a2 = parse("fp8_e4m3:round=stochastic:seed=1").quantize(x)
    b = parse("fp8_e4m3:round=stochastic:seed=2").quantize(x)
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, b)
    # Only the two neighbours 1.0 and 1.125 ever appear, and both do.
    assert set(a1.unique().tolist()) == {1.0, 1.125}


def test_stochastic_rounding_is_unbiased_on_average():
    f = parse("fp8_e4m3:round=stochastic:seed=7")
    n = 100_000
    for v in (1.03, -1.03, 1.1, 0.3):
        x = torch.full((n,), v)
        mean = f.quantize(x).double().mean().item()
        # Per-sample std <= step/2 = 1/16 (0.3 lies in the 1/32-step binade): 6 sigma.
        assert abs(mean - float(torch.tensor(v))) < 6 * 0.0625 / math.sqrt(n), (v, mean)


def test_stochastic_rounding_probability_matches_fraction():
    """1.03 is 24% of a step above 1.0: about 24% of samples round up."""
    f = parse("fp8_e4m3:round=stochastic:seed=3")
    q = f.quantize(torch.full((100_000,), 1.03))
    up = (q == 1.125).double().mean().item()
    frac = (float(torch.tensor(1.03)) - 1.0) / 0.125
    assert abs(up - frac) < 0.01


# ---- large tensors (CPU runs them in cache-sized chunks) --------------------------------------

LARGE = (1 << 18) + 3  # above the chunking threshold, with a ragged last chunk


@functools.lru_cache(maxsize=4)
def _large_input(dtype: torch.dtype, seed: int) -> torch.Tensor:
    x = torch.cat([_random_values(LARGE - 40000, seed), random_float32_bits(40000, seed + 1)])[:LARGE]
    x[:6] = torch.tensor([math.nan, math.inf, -math.inf, 0.0, -0.0, 3.4e38])
    if dtype == torch.float16:
        x = x.clamp(-65504, 65504)
    return x.to(dtype)


@pytest.mark.parametrize(
    "name,dtype",
    [(n, torch.float32) for n in [*ML_NAMES, "bf16", "fp16"]]
    + [(n, d) for n in ("fp8_e4m3", "fp4_e2m1", "bf16") for d in (torch.float16, torch.bfloat16)],
)
def test_large_tensors_match_oracles(name, dtype):
    x = _large_input(dtype, seed=20)
    x32 = x.float()
    if name in ML_MINIFLOATS:
        expected = ml_quantize(x32, ML_MINIFLOATS[name][0])
        if name != "fp8_e5m2":  # saturating formats: +-Inf -> +-max (ml_dtypes would give NaN)
            m = ml_max(ML_MINIFLOATS[name][0])
            expected = torch.where(torch.isinf(x32), torch.copysign(torch.tensor(m), x32), expected)
        else:
            expected = torch.where(torch.isinf(x32), x32, expected)
        expected = torch.where(torch.isnan(x32), x32, expected)  # ml_dtypes has no NaN in fp6/fp4
    else:
        expected = torch_cast_quantize(x32, {"bf16": torch.bfloat16, "fp16": torch.float16}[name])
        expected = torch.where(torch.isinf(x32), x32, expected)
    assert_bits_equal(parse(name).quantize(x), expected.to(dtype), f"{name} {dtype}")


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp4_e2m1", "fp16"])
def test_large_tensors_with_scale_match_oracles(name):
    x = _large_input(torch.float32, seed=21)[6:]
    x = x[x.abs() < 1e37]  # keep x / s finite in float32 (see test_scaled_overflow_saturates)
    s = 2.0**-3
    if name in ML_MINIFLOATS:
        expected = ml_quantize(x / s, ML_MINIFLOATS[name][0]) * s
    else:
        expected = torch_cast_quantize(x / s, torch.float16) * s
    assert_bits_equal(parse(name).quantize(x, scale=s), expected, name)


@pytest.mark.parametrize("name", ["fp16", "fp8_e5m2", "fp8_e4m3"])
def test_scaled_overflow_saturates(name):
    """A finite x whose x / scale exceeds float32's range is still finite overflow: it
    saturates to max * scale.  Only an infinite x may give Inf (in IEEE formats)."""
    m = {"fp16": 65504.0, "fp8_e5m2": 57344.0, "fp8_e4m3": 448.0}[name]
    x = torch.tensor([3e38, -3e38, 1.0])
    got = parse(name).quantize(x, scale=0.125)
    assert_bits_equal(got, torch.tensor([m * 0.125, -m * 0.125, 1.0]), name)
