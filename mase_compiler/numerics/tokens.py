"""Token importance from attention, and token-adaptive activation quantization.

EdgeQAT (Shen et al., 2024, "EdgeQAT: Entropy and Distribution Guided Quantization-Aware Training for
the Acceleration of Lightweight LLMs on the Edge", Sec. 3.4) gives the tokens that attention deems
unimportant fewer activation bits.  This module is the one definition of that arithmetic: the
interpreter's ``quant.token_importance`` / ``quant.token_cast`` kernels, the emitted PyTorch model and
the ``token-bits`` pass all call it.

    imp = token_importance(logits)                          # [batch, keys]
    y = token_mixed(x, imp, "int8:token", "int4:token", ratio=0.5)

Importance methods (``logits`` is the softmax input ``[batch, heads, queries, keys]``):

``logits`` (default, EdgeQAT)
    For key token ``j``: the mean of ``logits[b, h, i, j]`` over every head ``h`` and every query ``i``
    that can see ``j``.  An entry is visible when it is finite and above ``-1e4``: masked entries
    (``-inf``, or the ``finfo.min`` that exports add) are left out of the mean, so a causal mask does
    not favour early tokens (which are seen by more queries).  A key no query can see (padding) gets
    ``-inf``: it is the least important.
``probs``
    The same masked mean over ``softmax(logits)`` (the attention each visible query pays ``j``).
``probs-sum``
    The column sum of ``softmax(logits)`` over heads and queries: the accumulated attention of H2O
    (Zhang et al., 2023, "H2O: Heavy-Hitter Oracle").  Under a causal mask it favours early tokens,
    as H2O's scores do.
"""

from __future__ import annotations

import torch

from .base import Format
from .spec import parse

METHODS = ("logits", "probs", "probs-sum")
"""Importance methods, the first the default."""

VISIBLE_MIN = -1e4
"""Attention logits at or below this (or non-finite) count as masked."""


def token_importance(logits: torch.Tensor, method: str = "logits") -> torch.Tensor:
    """Importance of each key token, ``[batch, keys]`` float32, from attention logits
    ``[batch, heads, queries, keys]`` (the softmax input); higher is more important."""
    if method not in METHODS:
        raise ValueError(f"token importance method must be one of {', '.join(METHODS)}, not {method!r}")
    if logits.dim() != 4:
        raise ValueError(f"attention logits must be [batch, heads, queries, keys], not {list(logits.shape)}")
    z = logits.to(torch.float32)
    visible = torch.isfinite(z) & (z > VISIBLE_MIN)
    if method == "logits":
        values = z
    else:
        values = torch.nan_to_num(torch.softmax(z, dim=-1), nan=0.0)  # a fully masked query row attends nowhere
        if method == "probs-sum":
            return values.sum(dim=(1, 2))
    total = torch.where(visible, values, torch.zeros_like(values)).sum(dim=(1, 2))
    count = visible.sum(dim=(1, 2))
    mean = total / count.clamp(min=1).to(torch.float32)
    return torch.where(count > 0, mean, torch.full_like(mean, float("-inf")))


def low_tokens(importance: torch.Tensor, ratio: float = 0.5, threshold: float | None = None) -> torch.Tensor:
    """Bool ``[batch, seq]``: the tokens that take the low format.

    Without ``threshold``: per sequence the ``round(ratio * seq)`` least important tokens (Python's
    ``round``: half to even), ties broken by position, the later token being less important.  With
    ``threshold``: the tokens whose importance is below it (NaN importance counts as not below).
    """
    if importance.dim() != 2:
        raise ValueError(f"token importance must be [batch, seq], not {list(importance.shape)}")
    if threshold is not None:
        return importance < threshold
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"token ratio must be in [0, 1], not {ratio}")
    batch, seq = importance.shape
    k = int(round(ratio * seq))
    # A stable ascending sort of the reversed sequence puts the later of two equal tokens first.
    order = torch.argsort(importance.flip(-1), dim=-1, stable=True)
    chosen = (seq - 1) - order[:, :k]
    mask = torch.zeros(batch, seq, dtype=torch.bool, device=importance.device)
    return mask.scatter_(1, chosen, True)


def _format(f: str | Format) -> Format:
    return f if isinstance(f, Format) else parse(f)


def token_mixed(x: torch.Tensor, importance: torch.Tensor, high: str | Format, low: str | Format,
                ratio: float = 0.5, threshold: float | None = None, *,
                return_low: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantize each token (row) of ``x`` ``[batch, seq, d]`` (or ``[seq, d]`` with batch 1) with
    ``high`` or ``low`` as :func:`low_tokens` chooses from ``importance`` ``[batch, seq]``.

    Both formats quantize the whole of ``x`` (``parse(spec).quantize``, dynamic scales) and each row is
    taken from one of the two results: per-token formats (``int8:token``, MX blocks along ``d``) make
    that the same as quantizing the rows apart; a per-tensor dynamic format takes its scale from every
    token.  With ``return_low`` also the bool ``[batch, seq]`` mask of low tokens (to count bits).
    """
    if x.dim() not in (2, 3):
        raise ValueError(f"token_mixed input must be [batch, seq, d] or [seq, d], not {list(x.shape)}")
    xs = x if x.dim() == 3 else x.unsqueeze(0)
    if importance.dim() != 2 or tuple(importance.shape) != tuple(xs.shape[:2]):
        raise ValueError(f"token importance must be [batch, seq] = {list(xs.shape[:2])} to match the "
                         f"activation {list(x.shape)}, not {list(importance.shape)}")
    mask = low_tokens(importance, ratio, threshold)
    y = torch.where(mask.unsqueeze(-1), _format(low).quantize(xs), _format(high).quantize(xs))
    y = y if x.dim() == 3 else y.squeeze(0)
    return (y, mask) if return_low else y


def average_bits(n_low: int, n_total: int, high: str | Format, low: str | Format) -> float:
    """Average activation bits per element when ``n_low`` of ``n_total`` equal-width tokens are low
    (each format's ``bits_per_element``, shared scales included)."""
    if n_total <= 0:
        return 0.0
    hb, lb = _format(high).bits_per_element, _format(low).bits_per_element
    return (n_low * lb + (n_total - n_low) * hb) / n_total


__all__ = ["METHODS", "VISIBLE_MIN", "average_bits", "low_tokens", "token_importance", "token_mixed"]
