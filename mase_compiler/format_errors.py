"""``masec formats --errors``: quantize a built-in set of tensors in every format and
report the error, so one table shows what each format costs and keeps."""

from __future__ import annotations

import math

import torch

from .numerics import BUILTIN_SPECS, parse


def builtin_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    """Tensors shaped like what a transformer holds (weights, activations with outlier channels)."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(256, 512, generator=g) * 0.02
    act = torch.randn(64, 512, generator=g)
    act[:, torch.randperm(512, generator=g)[:6]] *= 40.0  # LLM-style outlier channels
    heavy = torch.distributions.StudentT(3.0).sample((128, 256)).to(torch.float32)
    small = torch.randn(128, 256, generator=g) * 1e-3
    small[:, :4] = 1.0  # a few large values force small ones towards underflow
    return {"weight": weight, "act+outliers": act, "student-t": heavy, "tiny+large": small}


def error_stats(x: torch.Tensor, q: torch.Tensor) -> dict[str, float]:
    """SQNR in dB, relative RMS error, and the share of nonzero inputs flushed to zero."""
    err = (q - x).double()
    sig = x.double().pow(2).mean()
    noise = err.pow(2).mean()
    sqnr = math.inf if noise == 0 else 10.0 * math.log10(float(sig / noise))
    nz = x != 0
    flushed = float(((q == 0) & nz).sum()) / max(1, int(nz.sum()))
    return {"sqnr_db": sqnr, "rel_rmse": float((noise / sig).sqrt()), "flushed": flushed}


def format_errors(specs: tuple[str, ...] | list[str] = BUILTIN_SPECS, seed: int = 0) -> list[dict[str, object]]:
    """Rows of (format, tensor, bits/element, SQNR, relative RMSE, flushed-to-zero share)."""
    rows = []
    tensors = builtin_tensors(seed)
    for spec in specs:
        fmt = parse(spec)
        for name, x in tensors.items():
            stats = error_stats(x, fmt.quantize(x))
            rows.append({"format": str(fmt), "tensor": name, "bits_per_element": fmt.bits_per_element, **stats})
    return rows
