"""The chunked CPU fast path of the numerics gives the plain path's results bit for bit.

``mase_compiler.numerics._fast`` runs large CPU tensors chunk by chunk with a
few exact rewrites (power-of-two construction from bits, magic-number
round-half-to-even).  The plain eager code is the reference: every test runs
the same call with the fast path on and off and compares bits (NaN-aware,
signed zeros distinguished) and strides.
"""

from __future__ import annotations

import pytest
import torch

from mase_compiler.numerics import BUILTIN_SPECS, MinifloatFormat, parse
from mase_compiler.numerics import _fast

LARGE = _fast.MIN_NUMEL + 4099  # above the fast-path threshold, not a multiple of the chunk


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch, request):
    """Small chunks, so that test-sized tensors take many chunks (and the scaled family's
    higher threshold does not keep them on the plain path)."""
    if request.node.name == "test_default_chunking_large_tensor":
        return
    monkeypatch.setattr(_fast, "CHUNK_ELEMS", 1 << 14)
    monkeypatch.setattr(_fast, "MIN_NUMEL_SCALED", _fast.MIN_NUMEL)


def same_bits(a, b) -> bool:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return a == b  # (exception type, message) from both paths
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() > 1 and a.stride() != b.stride():
        return False
    na, nb = torch.isnan(a), torch.isnan(b)
    if not torch.equal(na, nb):
        return False
    ib = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.contiguous().view(ib)[~na], b.contiguous().view(ib)[~nb])


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - both paths must raise alike
        return (type(e), str(e))


def both(fn, *args, **kwargs):
    fast = _call(fn, *args, **kwargs)
    with _fast.plain():
        plain = _call(fn, *args, **kwargs)
    return fast, plain


def sample(shape, dtype=torch.float32, specials=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    m = torch.rand(shape, generator=g)
    x = torch.where(m < 0.01, x * 1e4, x)
    x = torch.where((m > 0.5) & (m < 0.505), x * 1e-40, x)  # float32 subnormals
    x = torch.where((m > 0.6) & (m < 0.61), torch.zeros_like(x), x)
    x = torch.where((m > 0.7) & (m < 0.71), -torch.zeros_like(x), x)
    x = torch.where((m > 0.8) & (m < 0.81), torch.round(x * 64) / 64, x)  # ties
    if specials:
        flat = x.view(-1)
        n = flat.numel()
        flat[n // 3] = float("nan")
        flat[n // 2] = float("inf")
        flat[(2 * n) // 3] = float("-inf")
    return x.to(dtype)


def test_fast_path_is_used_for_large_cpu_tensors():
    x = torch.randn(LARGE)
    assert _fast.applicable(x)
    assert not _fast.applicable(torch.randn(100))
    assert not _fast.applicable(x.double())  # float64 stays on the plain path
    assert not _fast.applicable(torch.randn(LARGE, requires_grad=True))
    with torch.no_grad():
        assert _fast.applicable(torch.randn(LARGE, requires_grad=True))
    with _fast.plain():
        assert not _fast.applicable(x)
    assert _fast.applicable(x)


def test_pow2_matches_torch_pow():
    e = torch.arange(-127, 128, dtype=torch.int32)
    assert same_bits(_fast.pow2(e), torch.pow(2.0, e))


def _bit_patterns() -> torch.Tensor:
    """Every sign/exponent/top-7-mantissa prefix with low halves at rounding boundaries."""
    hi = torch.arange(1 << 16, dtype=torch.int64) << 16
    lows = torch.tensor([0, 1, 0x0FFF, 0x1000, 0x1001, 0x3000, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF], dtype=torch.int64)
    bits = (hi[:, None] | lows[None, :]).reshape(-1)
    bits = bits - (bits >= (1 << 31)).to(torch.int64) * (1 << 32)
    return bits.to(torch.int32).view(torch.float32)


ELEMENTS = ["fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "fp16", "bf16",
            "fp:e=3:m=4:special=none", "fp:e=5:m=2:bias=10:special=fn", "fp:e=1:m=3:special=none"]


@pytest.mark.parametrize("spec", ELEMENTS)
def test_minifloat_rounding_on_bit_patterns(spec):
    fmt = parse(spec)
    assert isinstance(fmt, MinifloatFormat)
    x = _bit_patterns()
    fast, plain = both(fmt.quantize, x)
    assert same_bits(fast, plain)
    # The MX element use: finite inputs only, results for non-finite discarded.
    rounder = fmt.chunk_rounder(x.numel(), finite_only=True)
    finite = torch.isfinite(x)
    assert same_bits(rounder(x)[finite], fmt.round_unscaled(x)[finite])


def test_dint_in_place_rounding_on_bit_patterns():
    fmt = parse("dint4")
    x = _bit_patterns()
    assert same_bits(fmt.round_grid_(x.clone()), fmt.round_grid(x))


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_builtin_specs_fast_equals_plain(spec, dtype):
    fmt = parse(spec)
    for shape in ((LARGE,), (257, 1031)):
        x = sample(shape, dtype)
        assert same_bits(*both(fmt.quantize, x)), (spec, shape, dtype)


@pytest.mark.parametrize("spec", ["mxfp8", "mxfp4", "mxint8", "bfp6:block=16", "mxfp6_e3m2:scale=ceil",
                                  "mxfp4:scale=even", "mxfp4:round=away", "mxfp8_e5m2:block=7", "bfp4:block=16:round=floor"])
def test_mx_layouts(spec):
    fmt = parse(spec)
    x = sample((300, 333))
    for axis in (0, 1, -1):
        assert same_bits(*both(fmt.quantize, x, axis=axis)), (spec, axis)
    assert same_bits(*both(fmt.quantize, x.t()))  # strided input
    assert same_bits(*both(fmt.quantize, x[:, ::2]))  # non-dense input
    x3 = sample((3, 170, 130), torch.float16)
    for axis in (0, 1, 2):
        assert same_bits(*both(fmt.quantize, x3, axis=axis)), (spec, axis)


def test_mx_all_zero_and_nan_blocks():
    x = torch.randn(4096, 32)
    x[0] = 0.0
    x[1] = -0.0
    x[2, 5] = float("nan")
    x[3, 0] = float("inf")
    x[4] = 1e-45
    x[5] = torch.finfo(torch.float32).max
    for spec in ("mxfp8", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8", "bfp4:block=16"):
        fast, plain = both(parse(spec).quantize, x)
        assert same_bits(fast, plain), spec
        assert torch.isnan(fast[2, :16]).all() and torch.isnan(fast[3, :16]).all()


@pytest.mark.parametrize("spec", ["int8", "uint8", "int4", "dint4", "int8:channel", "int8:token", "int4:group=128",
                                  "int8:round=away", "fixed8:frac=4"])
def test_scaled_static_scales(spec):
    fmt = parse(spec)
    g = torch.Generator().manual_seed(1)
    x = sample((512, 384), specials=False)
    scales = [0.05, torch.tensor(0.013), torch.rand(512, 1, generator=g) + 0.01, torch.rand(384, generator=g) + 0.01]
    if spec.startswith("fixed"):
        scales = [None]
    for sc in scales:
        if sc is None:
            assert same_bits(*both(fmt.quantize, x))
            continue
        zps = [None, 3, torch.randint(-5, 5, (512, 1), generator=g)] if spec in ("int8", "uint8") else [None]
        for zp in zps:
            assert same_bits(*both(fmt.quantize, x, scale=sc, zero_point=zp)), (spec, sc, zp)
    # a scale that broadcasts x to a larger shape still works (plain path)
    if not spec.startswith("fixed"):
        assert same_bits(*both(fmt.quantize, x, scale=torch.rand(2, 512, 1, generator=g) + 0.1))
    for axis in (0, 1, -1):
        if "channel" in spec or "token" in spec or "group" in spec:
            assert same_bits(*both(fmt.quantize, x, axis=axis)), (spec, axis)


@pytest.mark.parametrize("spec", ["fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "bf16", "fp16", "fp8_e4m3:round=away"])
def test_minifloat_scalar_scale(spec):
    fmt = parse(spec)
    x = sample((300, 333))
    for sc in (0.37, torch.tensor(1e-3), torch.tensor(3.0, dtype=torch.float64), torch.rand(333) + 0.5):
        for dt in (torch.float32, torch.float16):
            assert same_bits(*both(fmt.quantize, x.to(dt), scale=sc)), (spec, sc, dt)


def test_default_chunking_large_tensor():
    x = sample((1025, 1031))  # above every threshold, two default-sized chunks
    assert x.numel() >= _fast.MIN_NUMEL_SCALED
    for spec in BUILTIN_SPECS:
        assert same_bits(*both(parse(spec).quantize, x)), spec


def test_stochastic_rounding_unchanged():
    x = sample((LARGE,), specials=False)
    for spec in ("mxfp4:round=stochastic:seed=3", "fp4_e2m1:round=stochastic:seed=1", "int4:round=stochastic:seed=2"):
        assert same_bits(*both(parse(spec).quantize, x)), spec
