"""Hardware-exact kernels of the ``dataflow`` dialect: integer arithmetic only, as the RTL computes it.

Registered in the interpreter's :data:`~mase_compiler.interpreter.kernels.KERNELS`; the integer
requantization is :func:`mase_compiler.numerics.requant.requantize`, the same definition the
SystemVerilog and HLS components are tested against.
"""

from __future__ import annotations

import torch

from ..dialects.graph import shape_of
from ..numerics import intops
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


def _w(env, op, key: str) -> torch.Tensor:
    return env.weights.tensor(p_str(op, key)).to(torch.int64)


@kernel("dataflow.requant")
def _requant(op, env):
    m, s = _w(env, op, "multiplier"), _w(env, op, "shift")
    args = [p_int(op, k) for k in ("zp_in", "zp_out", "lo", "hi")]
    out = torch_dtype(op.results[0].type)
    return lambda q: intops.rescale(q, args[0], m, s, *args[1:]).to(out)


@kernel("dataflow.add")
def _add(op, env):
    ma, mb = _w(env, op, "mult_a"), _w(env, op, "mult_b")
    shift, za, zb, zo, lo, hi = (p_int(op, k) for k in ("shift", "zp_a", "zp_b", "zp_out", "lo", "hi"))
    out = torch_dtype(op.results[0].type)
    return lambda a, b: intops.add(a, za, ma, b, zb, mb, shift, zo, lo, hi).to(out)


@kernel("dataflow.lut")
def _lut(op, env):
    table, lo_in = _w(env, op, "table"), p_int(op, "lo_in")
    out = torch_dtype(op.results[0].type)
    return lambda q: intops.lut(q, table, lo_in).to(out)


@kernel("dataflow.gather")
def _gather(op, env):
    index, pad = _w(env, op, "index"), p_int(op, "pad")
    item = shape_of(op.results[0].type)[1:]
    out = torch_dtype(op.results[0].type)

    def gather(q: torch.Tensor) -> torch.Tensor:
        return intops.gather(q, index, pad, batch=1).reshape(q.shape[0], *item).to(out)

    return gather


@kernel("dataflow.matmul")
def _matmul(op, env):
    za, zb, zo, lo, hi = (p_int(op, k) for k in ("zp_a", "zp_b", "zp_out", "lo", "hi"))
    m, s = p_int(op, "multiplier"), p_int(op, "shift")
    out = torch_dtype(op.results[0].type)

    def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        acc = intops.matmul(a, za, b, zb)
        return (acc.clamp(lo, hi) if m is None else requantize(acc, m, s, zo, lo, hi)).to(out)

    return matmul


@kernel("dataflow.softmax")
def _softmax(op, env):
    args = [p_int(op, k) for k in ("multiplier", "shift", "frac_bits", "numerator", "recip_bits", "zp_out", "lo", "hi")]
    out = torch_dtype(op.results[0].type)
    return lambda q: intops.softmax(q, *args).to(out)


@kernel("dataflow.layer_norm")
def _layer_norm(op, env):
    gamma, beta = _w(env, op, "gamma"), _w(env, op, "beta")
    zp_in, eps, m, s, zo, lo, hi, rb, fb = (
        p_int(op, k) for k in ("zp_in", "eps", "multiplier", "shift", "zp_out", "lo", "hi", "recip_bits", "frac_bits"))
    out = torch_dtype(op.results[0].type)
    return lambda q: intops.layer_norm(q, zp_in, eps, gamma, beta, m, s, zo, lo, hi, rb, fb).to(out)
