"""The same arithmetic on CUDA as on the CPU, bit for bit, for every builtin format."""

from __future__ import annotations

import math

import pytest
import torch

from _numerics_helpers import assert_bits_equal, assert_values_equal
from mase_compiler.numerics import BUILTIN_SPECS, MinifloatFormat, MXFormat, parse

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _data(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 300, generator=g) * torch.exp2(torch.randint(-12, 12, (24, 1), generator=g).float())
    x[3, :40] = 0.0
    x[5, 7] = 1e30
    x[6, 8] = -2.0**-140
    return x.to(dtype)


def _same(spec: str, actual: torch.Tensor, expected: torch.Tensor, msg: str) -> None:
    f = parse(spec)
    minifloat = isinstance(f, MinifloatFormat) or (isinstance(f, MXFormat) and not f.element.startswith("int"))
    (assert_bits_equal if minifloat else assert_values_equal)(actual, expected, msg)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("spec", BUILTIN_SPECS)
def test_cuda_quantize_equals_cpu(spec, dtype):
    f = parse(spec)
    x = _data(dtype)
    q_cpu = f.quantize(x)
    q_cuda = f.quantize(x.cuda())
    assert q_cuda.device.type == "cuda"
    _same(spec, q_cuda.cpu(), q_cpu, f"{spec} {dtype}")


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
def test_cuda_encode_equals_cpu_and_decodes(spec):
    f = parse(spec)
    x = _data(torch.float32)
    enc_cpu, enc_cuda = f.encode(x), f.encode(x.cuda())
    assert torch.equal(enc_cuda.codes.cpu(), enc_cpu.codes)
    if enc_cpu.scales is not None:
        assert torch.equal(enc_cuda.scales.cpu(), enc_cpu.scales)
    _same(spec, f.decode(enc_cuda).cpu(), f.quantize(x), spec)


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
def test_cuda_special_values_equal_cpu(spec):
    f = parse(spec)
    x = torch.tensor([[math.nan, math.inf, -math.inf, 1.0] + [0.5] * 28, [2.0] * 32])
    _same(spec, f.quantize(x.cuda()).cpu(), f.quantize(x), spec)
