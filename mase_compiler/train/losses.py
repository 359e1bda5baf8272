"""The QAT loss of EdgeQAT (Shen et al., "EdgeQAT: Entropy and Distribution Guided Quantization-Aware
Training for the Acceleration of Lightweight LLMs on the Edge", 2024, §3): a task loss, distillation from
the full-precision teacher, an entropy term that keeps the information of the quantized query / key
(§3.2), and a distribution term that keeps the student's attention maps near the teacher's (§3.3).

Every function returns a scalar tensor that gradients flow through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attention_stats import attention_kl, gaussian_entropy

# Weights of the terms in :func:`total` (EdgeQAT weighs its terms equally but for the entropy term,
# whose magnitude in nats is larger and grows without bound as the variance does: 0.1 keeps it a regularizer).
DEFAULT_WEIGHTS: dict[str, float] = {"task": 1.0, "distill": 1.0, "entropy": 0.1, "distribution": 1.0}


def task_loss(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Next-token cross entropy of a language model: position ``t``'s logits ``[batch, seq, vocab]``
    predict token ``t + 1`` of ``input_ids`` ``[batch, seq]``; the mean over the ``batch * (seq - 1)``
    predictions (nats)."""
    if logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
        raise ValueError(f"task_loss needs logits [batch, seq, vocab] and input_ids [batch, seq], "
                         f"not {list(logits.shape)} and {list(input_ids.shape)}")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), input_ids[:, 1:].reshape(-1).long())


def distill_loss(student_logits: Tensor, teacher_logits: Tensor, T: float = 1.0) -> Tensor:
    """Knowledge distillation (Hinton et al. 2015): ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``
    over the last axis, the mean over all other positions.  ``T^2`` keeps the gradient's size independent
    of the temperature."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"distill_loss needs logits of one shape, not {list(student_logits.shape)} and "
                         f"{list(teacher_logits.shape)}")
    if T <= 0:
        raise ValueError(f"distillation temperature T must be > 0, not {T}")
    log_s = F.log_softmax(student_logits.float() / T, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / T, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(dim=-1)
    return kl.mean() * T * T


def entropy_loss(tensors: Sequence[Tensor]) -> Tensor:
    """EdgeQAT's entropy term: minus the mean over ``tensors`` (the quantized queries and keys) of their
    Gaussian entropy ``0.5 * log(2*pi*e*var)`` (population variance, :func:`gaussian_entropy`), so that
    minimizing the loss maximizes the information the quantized values keep (§3.2).  Zero for no tensors."""
    if not tensors:
        return torch.zeros(())
    return -torch.stack([gaussian_entropy(t) for t in tensors]).mean()


def distribution_loss(student_maps: Sequence[Tensor], teacher_maps: Sequence[Tensor]) -> Tensor:
    """EdgeQAT's distribution term: per attention block, the mean over attention rows of
    ``KL(teacher || student)`` (:func:`attention_kl`), averaged over the blocks (§3.3).  Zero for no blocks."""
    if len(student_maps) != len(teacher_maps):
        raise ValueError(f"distribution_loss needs one teacher map per student map, not {len(teacher_maps)} "
                         f"for {len(student_maps)}")
    if not student_maps:
        return torch.zeros(())
    return torch.stack([attention_kl(t, s) for s, t in zip(student_maps, teacher_maps)]).mean()


def total(terms: Mapping[str, Tensor | None], weights: Mapping[str, float] | None = None) -> Tensor:
    """``sum(weights[k] * terms[k])`` over the terms present (``None`` terms are left out); missing
    weights default to :data:`DEFAULT_WEIGHTS` (task 1, distill 1, entropy 0.1, distribution 1)."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    unknown = sorted(set(terms) - set(w))
    if unknown:
        raise ValueError(f"loss terms must be among {', '.join(DEFAULT_WEIGHTS)}, not {', '.join(unknown)}")
    parts = [w[k] * v for k, v in terms.items() if v is not None and w[k] != 0]
    if not parts:
        raise ValueError("total: every loss term is absent or weighted 0")
    return torch.stack([p.float().reshape(()) for p in parts]).sum()


__all__ = ["DEFAULT_WEIGHTS", "distill_loss", "distribution_loss", "entropy_loss", "task_loss", "total"]
