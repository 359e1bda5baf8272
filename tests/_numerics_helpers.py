"""Oracles and comparisons shared by the numerics tests.

Nothing here calls the library's arithmetic: the oracles are ml_dtypes, torch's
own casts and hand-written reference loops, so a test that compares the library
with them is an independent check.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch

from mase_compiler.numerics import Encoded, pack_bits

# name -> (ml_dtypes type, storage bits)
ML_MINIFLOATS = {
    "fp8_e4m3": (ml_dtypes.float8_e4m3fn, 8),
    "fp8_e5m2": (ml_dtypes.float8_e5m2, 8),
    "fp6_e3m2": (ml_dtypes.float6_e3m2fn, 6),
    "fp6_e2m3": (ml_dtypes.float6_e2m3fn, 6),
    "fp4_e2m1": (ml_dtypes.float4_e2m1fn, 4),
}

TORCH_FLOAT8 = {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


def ml_max(ml_type) -> float:
    return float(ml_dtypes.finfo(ml_type).max)


def ml_code_values(ml_type, bits: int) -> np.ndarray:
    """float64 value of every code 0 .. 2**bits - 1 according to ml_dtypes."""
    return np.arange(1 << bits, dtype=np.uint8).view(ml_type).astype(np.float64)


def ml_quantize(x: torch.Tensor, ml_type) -> torch.Tensor:
    """ml_dtypes round-to-nearest-even cast after explicit clipping to +-max (NaN kept)."""
    m = ml_max(ml_type)
    a = x.detach().cpu().numpy()
    clipped = np.clip(a, -m, m)  # NaN passes through np.clip
    return torch.from_numpy(clipped.astype(ml_type).astype(a.dtype))


def torch_cast_quantize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """torch's own cast to ``dtype`` after explicit clipping to +-max."""
    m = torch.finfo(dtype).max
    return x.clamp(-m, m).to(dtype).to(x.dtype)


def neighbourhood_probes(values: np.ndarray) -> np.ndarray:
    """Every non-negative finite value, every midpoint between neighbours, and the
    float32 values one ulp either side of each midpoint (float32, both signs)."""
    v = np.unique(np.abs(values[np.isfinite(values)]))
    mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    assert np.array_equal(mids.astype(np.float64), (v[:-1] + v[1:]) / 2), "midpoints must be exact in float32"
    up = np.nextafter(mids, np.float32(np.inf))
    down = np.nextafter(mids, np.float32(0))
    pos = np.concatenate([v.astype(np.float32), mids, up, down])
    return np.concatenate([pos, -pos])


def random_float32_bits(n: int, seed: int) -> torch.Tensor:
    """Finite float32 values with uniformly random bit patterns: every exponent, subnormals included."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(-(2**31), 2**31 - 1, (n,), generator=g, dtype=torch.int64).to(torch.int32)
    x = bits.view(torch.float32)
    return x[torch.isfinite(x)]


def decode_codes(fmt, codes: torch.Tensor, bits: int, dtype=torch.float32, scales=None) -> torch.Tensor:
    """Decode raw codes through the public ``Encoded`` container."""
    n = codes.numel()
    enc = Encoded(str(fmt), (n,), dtype, pack_bits(codes.to(torch.int64), bits), bits, (n,), scales=scales)
    return fmt.decode(enc)


def assert_bits_equal(actual: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    """Bit-exact comparison: same dtype and shape, NaN where expected is NaN, equal values
    elsewhere, and the same sign of zero."""
    assert actual.dtype == expected.dtype, f"{msg}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{msg}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().cpu(), expected.detach().cpu()
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    bad = (nan_a != nan_e) | (~nan_e & ((a != e) | (torch.signbit(a) != torch.signbit(e))))
    if bool(bad.any()):
        idx = bad.nonzero()[:8]
        raise AssertionError(
            f"{msg}: {int(bad.sum())} of {a.numel()} elements differ; first at {idx.tolist()}: "
            f"got {a[bad][:8].tolist()}, expected {e[bad][:8].tolist()}"
        )


def assert_values_equal(actual: torch.Tensor, expected: torch.Tensor, msg: str = "") -> None:
    """Like :func:`assert_bits_equal` but +0 and -0 count as the same value."""
    assert actual.dtype == expected.dtype, f"{msg}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{msg}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().cpu(), expected.detach().cpu()
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    bad = (nan_a != nan_e) | (~nan_e & (a != e))
    if bool(bad.any()):
        idx = bad.nonzero()[:8]
        raise AssertionError(
            f"{msg}: {int(bad.sum())} of {a.numel()} elements differ; first at {idx.tolist()}: "
            f"got {a[bad][:8].tolist()}, expected {e[bad][:8].tolist()}"
        )


def hand_minifloat_table(e: int, m: int, bias: int, special: str) -> np.ndarray:
    """float64 value of every code of a sign/exponent/mantissa layout, from the formula."""
    n = 1 + e + m
    out = np.empty(1 << n, dtype=np.float64)
    top = (1 << e) - 1
    for code in range(1 << n):
        s = code >> (e + m)
        E = (code >> m) & top
        M = code & ((1 << m) - 1)
        if E == 0:
            v = M * 2.0 ** (1 - bias - m)
        else:
            v = (1 + M / 2.0**m) * 2.0 ** (E - bias)
        if special == "ieee" and E == top:
            v = np.inf if M == 0 else np.nan
        if special == "fn" and E == top and M == (1 << m) - 1:
            v = np.nan
        out[code] = -v if s else v
    return out


def brute_force_nearest(x: np.ndarray, table: np.ndarray, has_inf: bool, man_bits: int) -> np.ndarray:
    """Round each ``x`` to the nearest finite table value, ties to the even code,
    saturating at the largest finite value; Inf kept only if ``has_inf``; NaN kept.

    With no mantissa bits there is no even mantissa digit to break ties with: a tie
    between two powers of two goes to the larger one (as ml_dtypes' float8_e8m0fnu
    cast does), a tie between 0 and the smallest value goes to 0."""
    half = len(table) // 2
    mags = table[:half]  # the positive codes, in code order
    codes = np.arange(half)
    ok = np.isfinite(mags)
    mags, codes = mags[ok], codes[ok]
    top = mags.max()
    ax = np.abs(x.astype(np.float64))
    finite = np.isfinite(ax)
    axf = np.where(finite, ax, 0.0)
    d = np.abs(mags[None, :] - axf[:, None])
    dmin = d.min(axis=1, keepdims=True)
    cand = d == dmin
    if man_bits == 0:
        largest = len(codes) - 1 - cand[:, ::-1].argmax(axis=1)
        pick = np.where(cand[:, 0], 0, largest)
    else:
        even = cand & (codes[None, :] % 2 == 0)
        pick = np.where(even.any(axis=1), even.argmax(axis=1), cand.argmax(axis=1))
    mag = mags[pick]
    mag = np.where(ax > top, top, mag)
    mag = np.where(np.isinf(ax), np.inf if has_inf else top, mag)
    out = np.copysign(mag, x.astype(np.float64))
    return np.where(np.isnan(x), np.nan, out)
