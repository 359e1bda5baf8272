"""Error metrics between a reference tensor and an approximation (reports, verify, benchmarks)."""

from __future__ import annotations

import math

import torch


def _pair(ref: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r, a = ref.detach().to(torch.float64).reshape(-1), x.detach().to(torch.float64).reshape(-1)
    if r.shape != a.shape:
        raise ValueError(f"tensors must have the same number of elements, not {r.numel()} and {a.numel()}")
    return r, a


def cosine(ref: torch.Tensor, x: torch.Tensor) -> float:
    """Cosine similarity of the flattened tensors (1.0 for two all-zero tensors)."""
    r, a = _pair(ref, x)
    nr, na = float(r.norm()), float(a.norm())
    if nr == 0 and na == 0:
        return 1.0
    if nr == 0 or na == 0:
        return 0.0
    return float(r @ a) / (nr * na)


def sqnr_db(ref: torch.Tensor, x: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when equal)."""
    r, a = _pair(ref, x)
    noise = float(((r - a) ** 2).sum())
    signal = float((r**2).sum())
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def rel_rmse(ref: torch.Tensor, x: torch.Tensor) -> float:
    """RMS error relative to the RMS of the reference."""
    r, a = _pair(ref, x)
    denom = float(r.norm())
    err = float((r - a).norm())
    if denom == 0:
        return 0.0 if err == 0 else math.inf
    return err / denom


def compare(ref: torch.Tensor, x: torch.Tensor) -> dict[str, float]:
    """Every metric at once, plus the largest absolute error and the share of equal elements."""
    r, a = _pair(ref, x)
    return {
        "cosine": cosine(r, a),
        "sqnr_db": sqnr_db(r, a),
        "rel_rmse": rel_rmse(r, a),
        "max_abs_error": float((r - a).abs().max()) if r.numel() else 0.0,
        "equal_fraction": float((r == a).to(torch.float64).mean()) if r.numel() else 1.0,
    }



# ---- whole-model outputs: lists of {name: tensor}, one per batch -----------------------------------------
def flat_outputs(outs: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Every output of every run, flattened and concatenated in float64 (one vector to compare runs by)."""
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for o in outs for t in o.values()])


def softmax_kl(ref: list[dict[str, torch.Tensor]], got: list[dict[str, torch.Tensor]]) -> float | None:
    """Mean over rows of KL(softmax(ref) || softmax(got)) on the last axis; None when no output has one."""
    total, rows = 0.0, 0
    for r_out, g_out in zip(ref, got):
        for key, r in r_out.items():
            if r.ndim < 1 or r.shape[-1] < 2 or not r.is_floating_point():
                continue
            lp = torch.log_softmax(r.detach().to(torch.float64).reshape(-1, r.shape[-1]), dim=-1)
            lq = torch.log_softmax(g_out[key].detach().to(torch.float64).reshape(-1, r.shape[-1]), dim=-1)
            kl = (lp.exp() * (lp - lq)).sum(-1)
            total += float(kl.sum())
            rows += kl.numel()
    return total / rows if rows else None


__all__ = ["compare", "cosine", "flat_outputs", "rel_rmse", "softmax_kl", "sqnr_db"]
