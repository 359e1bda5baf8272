"""OCP Microscaling (MX v1.0) formats and block floating point against a numpy
reference and hand-computed blocks.

The reference (``mx_reference``) follows the OCP spec text, not the library: a block
of k elements along one axis shares the E8M0 scale X = floor(log2 amax) - emax_elem
(clamped to [-127, 127], -127 for an all-zero block); elements are the ml_dtypes
round-to-nearest-even cast of x / 2^X after clipping to the element maximum (integer
elements: round-half-even of x / 2^X * 2^(b-2), clipped to +-(2^(b-1)-1)); a block
holding NaN or +-Inf is all NaN with scale code 0xFF.  Scale codes are checked by
decoding them with ml_dtypes.float8_e8m0fnu.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch

from _numerics_helpers import assert_bits_equal, assert_values_equal
from mase_compiler.numerics import parse

# name -> (element: ml_dtypes type or ("int", bits), emax_elem)
MX = {
    "mxfp8_e4m3": (ml_dtypes.float8_e4m3fn, 8),
    "mxfp8_e5m2": (ml_dtypes.float8_e5m2, 15),
    "mxfp6_e3m2": (ml_dtypes.float6_e3m2fn, 4),
    "mxfp6_e2m3": (ml_dtypes.float6_e2m3fn, 2),
    "mxfp4": (ml_dtypes.float4_e2m1fn, 2),
    "mxint8": (("int", 8), 0),
    "bfp4": (("int", 4), 0),
    "bfp6": (("int", 6), 0),
}
OCP = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8"]


def assert_same(name: str, actual, expected, msg: str = "") -> None:
    """Bit-exact for minifloat elements (which have a -0 code); for two's-complement integer
    elements (no -0 code) +0 and -0 count as the same value, as torch.equal does."""
    if isinstance(MX[name.split(":")[0]][0], tuple):
        assert_values_equal(actual, expected, msg)
    else:
        assert_bits_equal(actual, expected, msg)


def elem_max(name: str) -> float:
    el, _ = MX[name]
    if isinstance(el, tuple):
        bits = el[1]
        return ((1 << (bits - 1)) - 1) / 2.0 ** (bits - 2)
    return float(ml_dtypes.finfo(el).max)


def _elem_round(y: np.ndarray, name: str) -> np.ndarray:
    el, _ = MX[name]
    if isinstance(el, tuple):
        bits = el[1]
        kmax = (1 << (bits - 1)) - 1
        return np.clip(np.round(y * 2.0 ** (bits - 2)), -kmax, kmax) / 2.0 ** (bits - 2)  # np.round: half to even
    m = elem_max(name)
    y32 = np.clip(y, -m, m).astype(np.float32)  # x / 2^X is exact in float32 for float32 inputs
    return y32.astype(el).astype(np.float64)


# Element significand bits after the leading one (integers: the b-2 fraction bits).
MAN_BITS = {"mxfp8_e4m3": 3, "mxfp8_e5m2": 2, "mxfp6_e3m2": 2, "mxfp6_e2m3": 3, "mxfp4": 1, "mxint8": 6, "bfp4": 2, "bfp6": 4}


def shared_exponent(amax: np.ndarray, name: str, mode: str = "floor") -> np.ndarray:
    _, emax = MX[name]
    if mode == "ceil":  # smallest X with amax <= elem_max * 2^X
        m, e = np.frexp(amax / elem_max(name))
        x = np.where(m == 0.5, e - 1, e)
    elif mode == "even":  # floor(log2 of amax rounded half-even to the element's precision)
        m, e = np.frexp(amax)
        steps = 2.0 ** (MAN_BITS[name] + 1)
        x = np.where(np.round(m * steps) >= steps, e, e - 1) - emax
    else:
        _, e = np.frexp(amax)  # amax = m * 2^e, m in [0.5, 1): floor(log2 amax) = e - 1
        x = e - 1 - emax
    x = np.where(amax == 0, -127, x)
    return np.clip(x, -127, 127)


def mx_reference(x: torch.Tensor, name: str, block: int = 32, axis: int = -1, mode: str = "floor"):
    """(quantized values in x's dtype, scale value 2^X per block (NaN for NaN blocks))."""
    a = x.detach().double().numpy()
    xm = np.moveaxis(a, axis, -1)
    n = xm.shape[-1]
    pad = (-n) % block
    xm = np.concatenate([xm, np.zeros(xm.shape[:-1] + (pad,))], axis=-1)
    blocks = xm.reshape(xm.shape[:-1] + (xm.shape[-1] // block, block))
    with np.errstate(invalid="ignore"):
        amax = np.max(np.abs(blocks), axis=-1, keepdims=True)  # NaN if the block holds NaN
    bad = ~np.isfinite(amax)
    X = shared_exponent(np.where(bad, 0.0, amax), name, mode)
    with np.errstate(invalid="ignore"):
        q = np.ldexp(_elem_round(np.ldexp(np.where(bad, 0.0, blocks), -X), name), X)
    q = np.where(bad, np.nan, q)
    out = q.reshape(xm.shape)[..., :n]
    out = np.moveaxis(out, -1, axis)
    scale = np.where(bad, np.nan, np.ldexp(1.0, X))[..., 0]
    return torch.from_numpy(out).to(x.dtype), scale


def e8m0_values(codes: torch.Tensor) -> np.ndarray:
    return codes.numpy().astype(np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float64)


def _data(shape, seed, spread=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    if spread:  # rows at very different magnitudes, a few outliers
        x = x * torch.exp2(torch.randint(-20, 20, shape[:-1] + (1,), generator=g).float())
        x.view(-1)[::37] *= 30
    return x


# ---- the shared exponent ----------------------------------------------------------------------

# amax -> floor(log2 amax): 1.0 -> 0, 0.75 -> -1, 1000 -> 9, 2^-100 * 1.5 -> -100, 3e38 -> 127
AMAX = [1.0, 0.75, 1000.0, 1.5 * 2.0**-100, 3e38, 2.0**-126]
FLOOR_LOG2 = [0, -1, 9, -100, 127, -126]
EMAX = {"mxfp8_e4m3": 8, "mxfp8_e5m2": 15, "mxfp6_e3m2": 4, "mxfp6_e2m3": 2, "mxfp4": 2, "mxint8": 0}


@pytest.mark.parametrize("name", OCP)
def test_shared_exponent_is_floor_log2_amax_minus_emax(name):
    f = parse(name)
    x = torch.zeros(len(AMAX), 32)
    x[:, 0] = torch.tensor(AMAX)
    x[:, 1] = -torch.tensor(AMAX) / 3  # smaller elements do not matter
    codes = f.encode(x).scales.reshape(-1)
    expected_x = [max(-127, min(127, k - EMAX[name])) for k in FLOOR_LOG2]
    assert codes.tolist() == [xx + 127 for xx in expected_x]
    # ml_dtypes' E8M0 decodes each code to 2^X.
    assert e8m0_values(codes).tolist() == [2.0**xx for xx in expected_x]


def test_shared_exponent_clamps_at_the_smallest_scale():
    """Tiny blocks (float32 subnormals) get the smallest scale 2^-127, not a wrapped code."""
    f = parse("mxfp8_e4m3")
    x = torch.zeros(1, 32)
    x[0, 0] = 2.0**-149
    enc = f.encode(x)
    assert enc.scales.reshape(-1).tolist() == [0]
    assert e8m0_values(enc.scales.reshape(-1)).tolist() == [2.0**-127]


# ---- hand-computed blocks ---------------------------------------------------------------------

# FP4 E2M1 grid: 0, 0.5, 1, 1.5, 2, 3, 4, 6.  Ties go to the even code (0 | 0.5 -> 0,
# 0.5 | 1 -> 1, 1 | 1.5 -> 1, 1.5 | 2 -> 2, 2 | 3 -> 2, 3 | 4 -> 4, 4 | 6 -> 4).
FP4_BLOCK = [
    (0.0, 0.0, 0x0), (0.1, 0.0, 0x0), (0.25, 0.0, 0x0), (0.3, 0.5, 0x1), (0.5, 0.5, 0x1),
    (0.75, 1.0, 0x2), (0.9, 1.0, 0x2), (1.0, 1.0, 0x2), (1.25, 1.0, 0x2), (1.5, 1.5, 0x3),
    (1.75, 2.0, 0x4), (2.0, 2.0, 0x4), (2.4, 2.0, 0x4), (2.5, 2.0, 0x4), (3.0, 3.0, 0x5),
    (3.5, 4.0, 0x6), (4.0, 4.0, 0x6), (5.0, 4.0, 0x6), (5.5, 6.0, 0x7), (6.0, 6.0, 0x7),
    (-0.2, -0.0, 0x8), (-1.1, -1.0, 0xA), (-2.6, -3.0, 0xD), (-3.9, -4.0, 0xE),
    (-4.5, -4.0, 0xE), (-5.9, -6.0, 0xF), (7.0, 6.0, 0x7), (6.5, 6.0, 0x7),
    (-7.0, -6.0, 0xF), (0.6, 0.5, 0x1), (2.9, 3.0, 0x5), (-0.76, -1.0, 0xA),
]


def test_worked_mxfp4_block():
    """amax = 7/8 -> floor(log2) = -1 -> X = -1 - 2 = -3 (code 124): elements are x * 8."""
    x = torch.tensor([v for v, _, _ in FP4_BLOCK]) * 0.125
    expected = torch.tensor([q for _, q, _ in FP4_BLOCK]) * 0.125
    f = parse("mxfp4")
    assert_bits_equal(f.quantize(x), expected)
    enc = f.encode(x)
    assert enc.scales.reshape(-1).tolist() == [124]
    codes = [c for _, _, c in FP4_BLOCK]
    assert enc.unpacked_codes().reshape(-1).tolist() == codes
    # Packed two per byte, low nibble first.
    assert enc.codes.tolist() == [codes[i] | codes[i + 1] << 4 for i in range(0, 32, 2)]
    assert_bits_equal(f.decode(enc), expected)


def test_worked_mxint8_block():
    """amax = 3.999 -> X = 1: elements are k/64 * 2 with k = round_half_even(x * 32)."""
    x = torch.zeros(32)
    x[:6] = torch.tensor([3.0, 1.0 / 64, 3.0 / 64, -1.0, 3.999, 2.0**-7])
    # x*32 = 96, 0.5 (tie -> 0), 1.5 (tie -> 2), -32, 127.97 -> 127 (clamp), 0.25 -> 0
    expected = torch.zeros(32)
    expected[:6] = torch.tensor([96, 0, 2, -32, 127, 0]) / 32.0
    f = parse("mxint8")
    assert_bits_equal(f.quantize(x), expected)
    assert f.encode(x).scales.reshape(-1).tolist() == [128]


def test_all_zero_block_is_exact():
    for name in MX:
        f = parse(name)
        x = torch.zeros(2, 64)
        x[1, 32:] = torch.linspace(-1, 1, 32)
        q = f.quantize(x)
        assert_bits_equal(q[:, :32], torch.zeros(2, 32))
        enc = f.encode(x)
        assert enc.scales.reshape(2, 2)[:, 0].tolist() == [0, 0]
        assert_bits_equal(f.decode(enc)[:, :32], torch.zeros(2, 32))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", list(MX))
def test_nan_or_inf_poisons_only_its_block(name, bad):
    f = parse(name)
    x = _data((3, 64), seed=1, spread=False)
    y = x.clone()
    y[1, 40] = bad
    q = f.quantize(y)
    assert bool(torch.isnan(q[1, 32:]).all())
    assert not bool(torch.isnan(q[1, :32]).any()) and not bool(torch.isnan(q[[0, 2]]).any())
    mask = torch.ones_like(q, dtype=torch.bool)
    mask[1, 32:] = False
    assert torch.equal(q[mask], f.quantize(x)[mask])
    enc = f.encode(y)
    assert enc.scales.reshape(3, 2).tolist()[1][1] == 0xFF
    assert np.isnan(e8m0_values(enc.scales.reshape(-1))).sum() == 1
    assert_same(name, f.decode(enc), q)


def test_elements_saturate_at_the_element_maximum():
    cases = {
        # X = floor(log2 1.99) - 8 = -8: 1.99*256 = 509 > 448 saturates, 1.8*256 = 460.8 too.
        "mxfp8_e4m3": ([1.99, 1.9, 1.8, 1.75, -1.99, 0.5], [1.75, 1.75, 1.75, 1.75, -1.75, 0.5]),
        # X = 0: fp4 max is 6.
        "mxfp4": ([7.9, 6.5, 5.9, -7.0, 1.0], [6.0, 6.0, 6.0, -6.0, 1.0]),
        # X = 0: e2m3 max 7.5, 7.9 and 7.8 saturate.
        "mxfp6_e2m3": ([7.9, 7.8, 7.6, -7.99], [7.5, 7.5, 7.5, -7.5]),
        # X = 0: int8 k = 128 clamps to 127.
        "mxint8": ([1.999, 1.99, -1.999, 1.0], [127 / 64, 127 / 64, -127 / 64, 1.0]),
        # X = floor(log2 65000) - 15 = 0: e5m2 max 57344.
        "mxfp8_e5m2": ([65000.0, 62000.0, -61439.0], [57344.0, 57344.0, -57344.0]),
    }
    for name, (xs, qs) in cases.items():
        x = torch.zeros(32)
        x[: len(xs)] = torch.tensor(xs)
        expected = torch.zeros(32)
        expected[: len(qs)] = torch.tensor(qs)
        assert_bits_equal(parse(name).quantize(x), expected, name)


# ---- against the reference --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MX))
@pytest.mark.parametrize("block,axis,shape", [(32, -1, (16, 128)), (16, -1, (8, 80)), (64, -1, (4, 192)), (32, 0, (96, 7)), (16, 1, (3, 50, 4))])
def test_matches_reference(name, block, axis, shape):
    spec = name + ("" if block == 32 else f":block={block}") + ("" if axis == -1 else f":axis={axis}")
    x = _data(shape, seed=block + axis)
    expected, scale = mx_reference(x, name, block, axis)
    f = parse(spec)
    assert_bits_equal(f.quantize(x), expected, spec)
    enc = f.encode(x)
    assert np.array_equal(e8m0_values(enc.scales.reshape(-1)), scale.reshape(-1), equal_nan=True), spec


def test_axis_argument_overrides_spec_axis():
    x = _data((64, 6), seed=3)
    expected, _ = mx_reference(x, "mxfp4", 32, 0)
    assert_bits_equal(parse("mxfp4").quantize(x, axis=0), expected)
    enc = parse("mxfp4").encode(x, axis=0)
    assert_bits_equal(parse("mxfp4").decode(enc), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("name", OCP)
def test_other_input_dtypes_match_reference(name, dtype):
    x = _data((8, 96), seed=4).to(dtype)
    if dtype == torch.float16:
        x = x.clamp(-6e4, 6e4)
    expected, _ = mx_reference(x, name)
    q = parse(name).quantize(x)
    assert q.dtype == dtype
    assert_bits_equal(q, expected, f"{name} {dtype}")


def test_ragged_last_block_is_padded_not_wrapped():
    """Rows at 1e-6 and 1e6: a tail block wrapped into the next row would take its scale."""
    x = torch.cat([_data((1, 40), 5, False) * 1e-6, _data((1, 40), 6, False) * 1e6, _data((1, 40), 7, False)])
    for name in MX:
        f = parse(name)
        q = f.quantize(x)
        expected, _ = mx_reference(x, name)
        assert_bits_equal(q, expected, name)
        for r in range(3):
            assert_bits_equal(q[r], f.quantize(x[r]), f"{name} row {r}")
            assert_bits_equal(q[r, 32:], f.quantize(x[r, 32:]), f"{name} row {r} tail")


# ---- scale rounding variants ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MX))
def test_scale_ceil_never_saturates(name):
    f = parse(f"{name}:scale=ceil")
    x = _data((32, 64), seed=8)
    x[0, :32] = elem_max(name) * 2.0**5  # amax exactly at max * 2^k: scale 2^k, not 2^(k+1)
    x[1, :32] = elem_max(name) * 2.0**5 * (1 + 2.0**-20)
    enc = f.encode(x)
    scale = e8m0_values(enc.scales.reshape(-1)).reshape(32, 2)
    amax = x.abs().reshape(32, 2, 32).amax(-1).double().numpy()
    assert (amax <= elem_max(name) * scale).all()
    assert (amax > elem_max(name) * scale / 2).all()  # and it is the smallest such scale
    assert scale[0, 0] == 2.0**5 and scale[1, 0] == 2.0**6
    expected, ref_scale = mx_reference(x, name, mode="ceil")
    assert np.array_equal(scale, ref_scale)
    assert_bits_equal(f.quantize(x), expected, name)


@pytest.mark.parametrize("mode", ["ceil", "even"])
@pytest.mark.parametrize("name", list(MX))
def test_scale_modes_match_reference(name, mode):
    x = _data((16, 96), seed=13)
    expected, scale = mx_reference(x, name, mode=mode)
    f = parse(f"{name}:scale={mode}")
    assert_bits_equal(f.quantize(x), expected, f"{name} {mode}")
    assert np.array_equal(e8m0_values(f.encode(x).scales.reshape(-1)), scale.reshape(-1), equal_nan=True)


EVEN_CASES = [
    # (name, amax, floor code, even code): "even" rounds amax to the element precision first;
    # a carry into the next binade moves the block to the next scale.
    ("mxfp4", 7.0, 127, 128),  # 1.75*4 rounds (1 mantissa bit, tie to even) to 2*4
    ("mxfp4", 6.9, 127, 127),  # 1.725*4 rounds to 1.5*4: no carry
    ("mxfp4", 7.5, 127, 128),
    ("mxfp8_e4m3", 496.0, 127, 128),  # 1.9375*256 rounds (3 bits) to 2*256
    ("mxfp8_e4m3", 495.0, 127, 127),
    ("mxint8", 1.996, 127, 128),  # 0.998 * 128 = 127.7 -> 128: carry
    ("mxint8", 1.99, 127, 127),
]


@pytest.mark.parametrize("name,amax,floor_code,even_code", EVEN_CASES)
def test_scale_even_hand_computed(name, amax, floor_code, even_code):
    x = torch.zeros(32)
    x[0] = amax
    x[1] = 1.0
    assert parse(name).encode(x).scales.reshape(-1).tolist() == [floor_code]
    f = parse(f"{name}:scale=even")
    enc = f.encode(x)
    assert enc.scales.reshape(-1).tolist() == [even_code]
    X = even_code - 127
    el = _elem_round(np.array([amax, 1.0]) / 2.0**X, name) * 2.0**X
    assert f.quantize(x)[:2].tolist() == el.tolist()


def test_scale_even_worked_mxfp4():
    """amax 7 with the spec scale saturates to 6; with scale=even the block uses 2^1:
    7/2 = 3.5 -> 4 (tie to even) -> 8, 3/2 = 1.5 -> 3, 0.6/2 = 0.3 -> 0.5 -> 1."""
    x = torch.zeros(32)
    x[:3] = torch.tensor([7.0, 3.0, 0.6])
    assert parse("mxfp4").quantize(x)[:3].tolist() == [6.0, 3.0, 0.5]
    assert parse("mxfp4:scale=even").quantize(x)[:3].tolist() == [8.0, 3.0, 1.0]


# ---- element grids, encoding, sizes -----------------------------------------------------------


def test_mxint8_elements_are_k_over_64():
    f = parse("mxint8")
    x = _data((16, 64), seed=9)
    q = f.quantize(x).double()
    scale = torch.from_numpy(e8m0_values(f.encode(x).scales.reshape(-1))).reshape(16, 2, 1)
    k = (q.reshape(16, 2, 32) / scale) * 64
    assert torch.equal(k, k.round())
    assert k.abs().max().item() <= 127
    assert k.abs().amax(-1).min().item() >= 64  # the block maximum uses the top binade


def test_encode_sizes():
    x = _data((4, 64), seed=10)
    cases = {"mxfp4": 128, "mxfp6_e3m2": 192, "mxfp8_e4m3": 256, "mxint8": 256, "bfp4:block=16": 128}
    for spec, nbytes in cases.items():
        enc = parse(spec).encode(x)
        block = 16 if "block=16" in spec else 32
        assert enc.codes.dtype == torch.uint8 and enc.codes.numel() == nbytes, spec
        assert enc.scales.dtype == torch.uint8 and enc.scales.numel() == 4 * 64 // block, spec
        assert enc.nbytes == nbytes + 4 * 64 // block, spec
    # A ragged row is padded to whole blocks: (3, 40) -> 3 rows x 2 blocks x 32.
    enc = parse("mxfp4").encode(torch.ones(3, 40))
    assert enc.codes.numel() == 3 * 64 // 2 and enc.scales.numel() == 6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize(
    "spec",
    [*OCP, "bfp4:block=16", "bfp6:block=16", "mxfp4:block=16", "mxfp8_e5m2:block=64:axis=0",
     "mxfp4:scale=ceil", "mxfp6_e3m2:scale=even", "mxint8:axis=0"],
)
def test_decode_encode_round_trip(spec, dtype):
    x = _data((40, 70), seed=11).clamp(-6e4, 6e4).to(dtype)
    x[0, 3] = math.nan
    x[5, 40] = math.inf
    x[7, :] = 0.0
    f = parse(spec)
    q = f.quantize(x)
    assert q.dtype == dtype and q.shape == x.shape
    assert_same(spec, f.decode(f.encode(x)), q, f"{spec} {dtype}")


def test_bits_per_element():
    got = {s: parse(s).bits_per_element for s in
           ["mxfp4", "mxfp6_e2m3", "mxfp8_e4m3", "mxint8", "mxfp4:block=16", "mxfp8:block=64", "bfp4:block=16"]}
    assert got == {"mxfp4": 4.25, "mxfp6_e2m3": 6.25, "mxfp8_e4m3": 8.25, "mxint8": 8.25,
                   "mxfp4:block=16": 4.5, "mxfp8:block=64": 8.125, "bfp4:block=16": 4.5}


# ---- large tensors (CPU runs them in cache-sized chunks of whole blocks) -----------------------


@pytest.mark.parametrize(
    "spec,dtype",
    [(n, torch.float32) for n in MX]
    + [("mxfp4", torch.bfloat16), ("mxfp8_e4m3", torch.float16), ("mxint8", torch.bfloat16)]
    + [("mxfp4:scale=ceil", torch.float32), ("mxfp6_e2m3:scale=even", torch.float32), ("mxint8:block=16", torch.float32)],
)
def test_large_tensors_match_reference(spec, dtype):
    name, *opts = spec.split(":")
    opt = dict(o.split("=") for o in opts)
    x = _data((300, 1000), seed=12)  # 300k elements, ragged last block in every row
    x[7, 3] = math.nan
    x[9, 900] = -math.inf
    x[11, :] = 0.0
    x[13, 0] = 2.0**-140
    if dtype == torch.float16:
        x = x.clamp(-6e4, 6e4)
    x = x.to(dtype)
    expected, _ = mx_reference(x, name, int(opt.get("block", 32)), mode=opt.get("scale", "floor"))
    assert_bits_equal(parse(spec).quantize(x), expected, f"{spec} {dtype}")
