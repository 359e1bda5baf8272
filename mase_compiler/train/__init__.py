"""Quantization-aware training (EdgeQAT, Shen et al. 2024) of any model masec imports.

:class:`Trainable` executes the IR with gradients (fake quantization, straight-through estimator,
LSQ step sizes); :mod:`.losses` holds EdgeQAT's loss terms; :func:`train` runs the seeded,
checkpointed loop and writes the learned weights and steps back into plain IR.
"""

from .losses import DEFAULT_WEIGHTS, distill_loss, distribution_loss, entropy_loss, task_loss, total
from .loop import copy_model, default_task, train
from .module import Trainable

__all__ = ["DEFAULT_WEIGHTS", "Trainable", "copy_model", "default_task", "distill_loss", "distribution_loss",
           "entropy_loss", "task_loss", "total", "train"]
