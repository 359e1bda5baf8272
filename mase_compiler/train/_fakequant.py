"""Fake quantization with straight-through gradients, and LSQ step sizes.

Forward values are bit for bit those of the format's own ``quantize`` (the interpreter's
``quant.cast`` kernel): the rounding and the gradient tricks are :class:`torch.autograd.Function` s
whose forward returns the exact value, so nothing like ``y + (round(y) - y).detach()`` perturbs the
float result.

LSQ (Esser et al., "Learned Step Size Quantization", ICLR 2020): the step ``s`` of an integer grid
is a parameter; ``q = clamp(round(x / s) + zp, lo, hi) - zp`` and ``x_hat = q * s`` with the
rounding passed straight through (so ``d x_hat / d s = q - x / s`` inside the range and the clamp
bound outside), and ``s``'s gradient multiplied by ``1 / sqrt(N * Q_p)`` (``N`` the elements each
step covers, ``Q_p`` the grid's top) so that steps and weights learn at comparable rates (§2.2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..numerics import DIntFormat, FixedFormat, IntFormat, MinifloatFormat, MXFormat
from ..numerics._scaled import ScaledGridFormat


class _RoundSTE(torch.autograd.Function):
    """The format's own grid rounding forward; the identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, y: Tensor, fmt: ScaledGridFormat) -> Tensor:  # type: ignore[override]
        return fmt.round_grid(y)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


class _GradScale(torch.autograd.Function):
    """The identity forward; the gradient times ``g`` backward (LSQ's step-size gradient scale)."""

    @staticmethod
    def forward(ctx, s: Tensor, g: float) -> Tensor:  # type: ignore[override]
        ctx.g = g
        return s.view_as(s)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad * ctx.g, None


class _QuantizeSTE(torch.autograd.Function):
    """``fmt.quantize(x, *params, axis=...)`` forward; the identity backward (MX, minifloat, fixed point)."""

    @staticmethod
    def forward(ctx, x: Tensor, fn) -> Tensor:  # type: ignore[override]
        return fn(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def ste_apply(x: Tensor, fn) -> Tensor:
    """``fn(x)`` forward, the identity backward."""
    return _QuantizeSTE.apply(x, fn)


def learnable(fmt: object) -> bool:
    """Whether a cast in ``fmt`` gets an LSQ step: integer grids with free fp32 scales (not ``:pow2``,
    not fixed point, whose scales are constrained)."""
    return isinstance(fmt, (IntFormat, DIntFormat)) and not getattr(fmt, "pow2", False) and fmt.fixed_scale() is None


MIN_STEP = 1e-8  # steps below this are clamped: a step that trains through zero would flip or blow up the grid


def positive_step(scale: Tensor) -> Tensor:
    """The step a learned ``scale`` stands for: clamped to at least :data:`MIN_STEP` (what forward uses
    and what write-back stores, so the two agree)."""
    return torch.clamp(scale, min=MIN_STEP)


def lsq_quantize(x: Tensor, fmt: ScaledGridFormat, scale: Tensor, zero_point: Tensor | None, axis: int | None) -> Tensor:
    """Fake-quantize ``x`` on ``fmt``'s grid with step ``scale`` (a parameter: LSQ gradients) and a fixed
    ``zero_point``; the same float32 arithmetic as :meth:`ScaledGridFormat.quantize` with a static scale."""
    v, merge, _ = fmt._view(x, axis)
    cd = torch.float64 if x.dtype == torch.float64 else torch.float32
    gmin, gmax = fmt.grid_bounds()
    per_step = max(1, v.numel() // max(1, scale.numel()))
    s = _GradScale.apply(scale, 1.0 / math.sqrt(per_step * max(gmax, 1.0))) if scale.requires_grad else scale
    s = positive_step(s).to(cd)
    q = _RoundSTE.apply(v.to(cd) / s, fmt)
    if zero_point is not None:
        zp = zero_point.to(cd)
        q = torch.clamp(q + zp, gmin, gmax) - zp
    else:
        q = torch.clamp(q, gmin, gmax)
    return merge(q * s).to(x.dtype)


def ste_quantize(x: Tensor, fmt: object, params: list[Tensor], axis: int | None) -> Tensor:
    """``fmt``'s own quantize (as the interpreter calls it) with a straight-through gradient."""
    if isinstance(fmt, (IntFormat, DIntFormat)):
        fn = lambda t: fmt.quantize(t, *params, axis=axis)  # noqa: E731
    elif isinstance(fmt, MinifloatFormat):
        fn = lambda t: fmt.quantize(t, *params)  # noqa: E731
    elif isinstance(fmt, FixedFormat):
        fn = fmt.quantize
    elif isinstance(fmt, MXFormat):
        fn = lambda t: fmt.quantize(t, axis=axis)  # noqa: E731
    else:
        raise ValueError(f"quant.cast format must be an integer, dINT, fixed-point, minifloat or MX format, not {fmt}")
    return _QuantizeSTE.apply(x, fn)


__all__ = ["MIN_STEP", "learnable", "lsq_quantize", "positive_step", "ste_apply", "ste_quantize"]
