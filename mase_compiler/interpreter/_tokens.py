"""Kernels of ``quant.token_importance`` and ``quant.token_cast`` (EdgeQAT token-adaptive bits).

Registered in the interpreter's :data:`~mase_compiler.interpreter.kernels.KERNELS`; the arithmetic is
:mod:`mase_compiler.numerics.tokens`, which the emitted PyTorch model calls too.
"""

from __future__ import annotations

import torch

from ..numerics.tokens import token_importance, token_mixed
from .kernels import kernel, p_float, p_str


@kernel("quant.token_importance")
def _token_importance(op, env):
    method = p_str(op, "method")
    return lambda logits: token_importance(logits, method)


@kernel("quant.token_cast")
def _token_cast(op, env):
    high, low = op.properties["high"].format, op.properties["low"].format
    ratio, threshold = p_float(op, "ratio"), p_float(op, "threshold")

    def cast(x: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
        return token_mixed(x, importance, high, low, ratio, threshold)

    return cast
