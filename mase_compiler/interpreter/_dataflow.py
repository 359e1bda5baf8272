"""Hardware-exact kernels of the ``dataflow`` dialect: integer arithmetic only, as the RTL computes it.

Registered in the interpreter's :data:`~mase_compiler.interpreter.kernels.KERNELS`; the integer
requantization is :func:`mase_compiler.numerics.requant.requantize`, the same definition the
SystemVerilog and HLS components are tested against.
"""

from __future__ import annotations

import torch

from ..numerics.requant import requantize
from .dtypes import torch_dtype
from .kernels import kernel, p_int, p_str


@kernel("dataflow.quantize")
def _quantize(op, env):
    scale = env.weights.tensor(p_str(op, "scale")).to(torch.float32)
    zp, lo, hi = p_int(op, "zero_point"), p_int(op, "lo"), p_int(op, "hi")
    out = torch_dtype(op.results[0].type)
    # Division in float32 then round half to even: the arithmetic of IntFormat.quantize's grid codes.
    return lambda x: (torch.round(x.to(torch.float32) / scale) + zp).clamp(lo, hi).to(out)


@kernel("dataflow.linear")
def _linear(op, env):
    w = env.weights.tensor(p_str(op, "weight")).to(torch.int64)
    bias_name, m_name, s_name = p_str(op, "bias"), p_str(op, "multiplier"), p_str(op, "shift")
    b = env.weights.tensor(bias_name).to(torch.int64) if bias_name else None
    m = env.weights.tensor(m_name).to(torch.int64) if m_name else None
    s = env.weights.tensor(s_name).to(torch.int64) if s_name else None
    zp_in, zp_out, lo, hi = p_int(op, "zp_in"), p_int(op, "zp_out"), p_int(op, "lo"), p_int(op, "hi")
    out = torch_dtype(op.results[0].type)

    def linear(x: torch.Tensor) -> torch.Tensor:
        # int64 accumulation is exact for any layer the hardware can hold (|acc| < 2^63).
        acc = (x.to(torch.int64) - zp_in) @ w
        if b is not None:
            acc = acc + b
        if m is None:
            return acc.clamp(lo, hi).to(out)
        return requantize(acc, m, s, zp_out, lo, hi).to(out)

    return linear


@kernel("dataflow.dequantize")
def _dequantize(op, env):
    scale = env.weights.tensor(p_str(op, "scale")).to(torch.float32)
    zp = p_int(op, "zero_point")
    out = torch_dtype(op.results[0].type)
    return lambda q: ((q.to(torch.int64) - zp).to(torch.float32) * scale).to(out)
