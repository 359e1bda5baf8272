"""Splitting a tensor into blocks of ``k`` along one axis, and back.

Ragged last blocks are padded (never wrapped into the next row), so every block
belongs to exactly one row of the original tensor.
"""

from __future__ import annotations

from typing import Callable

import torch


def normalize_axis(axis: int, ndim: int) -> int:
    if ndim == 0:
        return 0
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim - 1}] for a {ndim}-d tensor, not {axis}")
    return axis % ndim


def split_blocks(
    x: torch.Tensor, axis: int, k: int, fill: str = "zero"
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """View ``x`` as ``(..., nblocks, k)`` blocks along ``axis``.

    ``fill="zero"`` pads with zeros (neutral for max-abs statistics);
    ``fill="edge"`` repeats the row's last element (neutral for min and max).
    Returns the blocks and a function mapping a tensor of the same block shape
    back to ``x``'s shape.
    """
    if x.ndim == 0:
        x = x.reshape(1)
        scalar = True
    else:
        scalar = False
    ax = normalize_axis(axis, x.ndim)
    xm = x.movedim(ax, -1)
    n = xm.shape[-1]
    pad = (-n) % k
    if pad:
        if fill == "zero":
            tail = xm.new_zeros(*xm.shape[:-1], pad)
        else:
            tail = xm[..., -1:].expand(*xm.shape[:-1], pad)
        xm = torch.cat([xm, tail], dim=-1)
    blocks = xm.reshape(*xm.shape[:-1], xm.shape[-1] // k, k)

    def merge(b: torch.Tensor) -> torch.Tensor:
        y = b.reshape(*b.shape[:-2], b.shape[-2] * b.shape[-1])
        if pad:
            y = y[..., :n]
        y = y.movedim(-1, ax)
        return y.reshape(()) if scalar else y

    return blocks, merge
