"""``aqas``: activation-quantization-aware scaling (the W4A8 paper: Lee et al., "Enhancing Computation
Efficiency in Large Language Models through Weight and Activation Quantization", EMNLP 2023, which
also introduces SLAC and dINT).

SmoothQuant (Xiao et al., ICML 2023, §4) balances activation and weight ranges with
``s = max|X|^alpha / max|W|^(1 - alpha)`` and one ``alpha`` for the whole model.  With 4-bit
weights the balance point moves: pushing outliers into the weights hurts a 16-level grid more than
it helps the 8-bit activations.  AQAS therefore chooses the scale of each group by the error of
the *quantized* product it will actually compute::

    min_s  sum_i || Q_a(X diag(s)^-1) Q_w(diag(s) W_i) - X W_i ||^2

over the group's consumers ``W_i``, on calibration rows of ``X`` captured with the interpreter.
The candidates are the SmoothQuant family over the ``alphas`` grid, one ``alpha`` per group
(``alpha = 0`` is ``s = 1/max|W|``), plus ``s = 1`` (no scaling): the chosen scales are never worse
than round-to-nearest without scaling on this objective.  ``Q_w``/``Q_a`` are the formats'
``quantize`` as the ``quantize`` pass applies them: per output channel (axis 1 of ``[K, N]``) or
groups/MX blocks along K for weights; for a static per-tensor activation format the range of
``X/s`` over the whole calibration set (from per-channel minima and maxima), as minmax calibration
after the pass will set it.

The chosen ``s`` is applied as in ``smoothquant`` (see ``passes/_scaling.py``): consumer weights
get new entries ``<name>.scaled = diag(s) W``, and ``1/s`` is folded into the producer
(LayerNorm/RMSNorm parameters, a per-channel multiply, a producing matmul's columns and bias) or,
where nothing absorbs it, applied by an explicit ``graph.mul`` (``explicit`` in the notes).  The
float function is unchanged up to one float32 rounding per rewritten weight.  Statistics of
changed values are dropped: run ``calibrate`` after ``aqas``.

Options: ``w`` (weight format, default ``int4:channel``), ``a`` (activation format, default
``int8``), ``alphas`` (the grid, default 0, 0.05, ..., 1), ``samples`` (calibration rows kept per
group, default 512), ``min_gain`` (relative error reduction below which a group is left alone,
default 0.001), ``explicit`` (default true; false leaves groups whose producer cannot absorb
``1/s`` unscaled, ``unfoldable`` in the notes, instead of adding a ``graph.mul``).

Notes: ``groups``, ``folded``, ``explicit``, ``unchanged`` (counts), ``mean_error_reduction``
(mean over groups of ``1 - error_after / error_before``), and per group its name, ``alpha``
(None = no scaling) and the relative errors ``||.||^2 / ||X W||^2`` before and after.

A second run changes nothing: its candidates, composed with the scales already applied, are the
first run's candidates, and the best of them (now ``s = 1``) is kept unless another beats it by
more than ``min_gain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ..session import current
from ._scaling import Observed, activation_quantizer, apply_scales, find_groups, fold_plan, observe, product_error, \
    smooth_scales, weight_absmax, weight_quantizer

DEFAULT_ALPHAS = tuple(round(0.05 * i, 2) for i in range(21))


@dataclass(frozen=True)
class Aqas(ModulePass):
    """Per-group scales chosen by the error of the quantized product (W4A8 paper's AQAS), folded into producers."""

    name = "aqas"

    w: str = "int4:channel"
    a: str = "int8"
    alphas: tuple[float | int, ...] = field(default=DEFAULT_ALPHAS)  # int too, so that "alphas=0,0.5,1" parses
    samples: int = 512
    min_gain: float | int = 1e-3
    explicit: bool = True

    def __post_init__(self) -> None:
        weight_quantizer(self.w, "aqas option w")
        activation_quantizer(self.a, "aqas option a")
        alphas = self.alphas if isinstance(self.alphas, tuple) else (self.alphas,)
        if not alphas:
            raise ValueError("aqas alphas must list at least one value in [0, 1], not an empty list")
        for x in alphas:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= float(x) <= 1.0:
                raise ValueError(f"aqas alphas must be numbers in [0, 1], not {x!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"aqas samples must be a positive integer, not {self.samples!r}")
        if isinstance(self.min_gain, bool) or not 0.0 <= float(self.min_gain) < 1.0:
            raise ValueError(f"aqas min_gain must be a number in [0, 1), not {self.min_gain!r}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        session = current(self.name)
        model = session.model
        if op is not model.module:
            raise ValueError("pass 'aqas' must run on the session's model (masec opt/compile), not on another module")
        if session.calibration is None:
            raise ValueError("pass 'aqas' needs calibration data: pass it, e.g. 'masec compile --calib DATA'")
        qw = weight_quantizer(self.w, "aqas option w")
        qa = activation_quantizer(self.a, "aqas option a")
        alphas = [float(x) for x in (self.alphas if isinstance(self.alphas, tuple) else (self.alphas,))]
        groups = find_groups(model)
        seen = observe(model, session.calibration, groups, self.samples)
        done = {"folded": 0, "explicit": 0, "unfoldable": 0, "unchanged": 0}
        per_group = []
        reductions = []
        for grp, obs in zip(groups, seen):  # last group first (see find_groups); weights read as they are now
            weights = grp.weights(model)
            if not self.explicit and fold_plan(grp.value, grp.k, top=True) is None:
                done["unfoldable"] += 1  # not worth a search: it could not be applied
                continue
            alpha, s, before, after, energy = self.choose(obs, weights, alphas, qa, qw)
            if alpha is None:
                done["unchanged"] += 1
            else:
                how = apply_scales(model, grp, s, bool(self.explicit))
                done[how] += 1
                if how == "unfoldable":
                    alpha, after = None, before
            energy = energy or 1.0
            per_group.insert(0, {"group": grp.name, "alpha": alpha, "error_before": before / energy,
                                 "error_after": after / energy})
            reductions.append(1.0 - after / before if before > 0 else 0.0)
        session.notes.update({
            "groups": len(groups), **done, "w": self.w, "a": self.a,
            "mean_error_reduction": sum(reductions) / len(reductions) if reductions else 0.0,
            "per_group": per_group,
        })

    def choose(self, obs: Observed, weights: list[torch.Tensor], alphas: list[float],
               qa, qw) -> tuple[float | None, torch.Tensor, float, float, float]:
        """(alpha or None for no scaling, s, error without scaling, error with s, ||X W||^2) for one group."""
        x = obs.rows
        one = torch.ones(x.shape[1])
        if x.shape[0] == 0:
            return None, one, 0.0, 0.0, 0.0
        ref = x @ torch.cat(weights, dim=1)
        energy = float(ref.double().pow(2).sum())
        base = product_error(x, weights, ref, one, qa, qw, obs.lo, obs.hi)
        w_absmax = weight_absmax(weights)
        best: tuple[float | None, torch.Tensor, float] = (None, one, base)
        for alpha in alphas:
            s = smooth_scales(obs.absmax, w_absmax, alpha)
            err = product_error(x, weights, ref, s, qa, qw, obs.lo, obs.hi)
            if err < best[2]:
                best = (alpha, s, err)
        if best[0] is not None and not best[2] < base * (1.0 - float(self.min_gain)):
            best = (None, one, base)
        return best[0], best[1], base, best[2], energy
