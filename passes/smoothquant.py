"""``smoothquant``: migrate activation outliers into the weights (Xiao et al., "SmoothQuant:
Accurate and Efficient Post-Training Quantization for Large Language Models", ICML 2023, §4).

For every scalable group (an activation ``X`` read only by matmuls with ``[K, N]`` weights; see
``passes/_scaling.py``) the pass picks one scale per input channel ``j``::

    s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)          (SmoothQuant eq. 4)

with ``max|W_j|`` over row ``j`` of every weight of the group, and rewrites ``X W`` as
``(X diag(s)^-1)(diag(s) W)``: each consumer weight gets a new entry ``<name>.scaled``, and
``1/s`` is folded into ``X``'s producer (LayerNorm/RMSNorm affine parameters, a per-channel
multiply, or the output columns of a producing matmul and its bias), or, where nothing can
absorb it, applied by an explicit ``graph.mul`` by a new weight (counted as ``explicit``).
The float function is unchanged (a diagonal matrix and its inverse cancel; each rewritten
weight rounds once in float32).  Scales are clamped to [1e-5, 1e5]; a channel whose
activation or weight maximum is zero keeps scale 1.

Channel maxima come from the ``channel_absmax`` that ``calibrate`` stored on ``X`` or, where
there is none, from running the model on the session's calibration data.  The statistics of
values the pass changes are dropped: run ``calibrate`` after it (``smoothquant,calibrate,quantize``).

Options: ``alpha`` (migration strength in [0, 1], default 0.5); ``explicit`` (default true):
false leaves groups whose producer cannot absorb ``1/s`` unscaled (``unfoldable`` in the notes)
instead of adding a ``graph.mul`` at run time.

A second run finds ``s = 1`` in every channel (the maxima it measures are those of the smoothed
model, ``(a/s)^alpha / (s w)^(1-alpha) = 1``) and leaves groups whose scales are within 0.1 % of 1
alone, so it changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from ..calibration.stats import get_stats
from ..session import current
from ._scaling import apply_scales, find_groups, is_identity, observe, smooth_scales, weight_absmax


@dataclass(frozen=True)
class SmoothQuant(ModulePass):
    """Per-channel smoothing of matmul inputs, s = max|X|^alpha / max|W|^(1-alpha), folded into producers."""

    name = "smoothquant"

    alpha: float | int = 0.5
    explicit: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"smoothquant alpha must be a number in [0, 1], not {self.alpha!r}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        session = current(self.name)
        model = session.model
        if op is not model.module:
            raise ValueError("pass 'smoothquant' must run on the session's model (masec opt/compile), not on another module")
        groups = find_groups(model)
        maxima: list[torch.Tensor | None] = []
        for grp in groups:
            ch = (get_stats(grp.value) or {}).get("channel_absmax")
            maxima.append(torch.tensor(ch, dtype=torch.float32) if ch is not None and len(ch) == grp.k else None)
        missing = [i for i, m in enumerate(maxima) if m is None]
        if missing:
            if session.calibration is None:
                raise ValueError("pass 'smoothquant' needs activation channel maxima: put 'calibrate' before it "
                                 "or pass calibration data (masec compile --calib DATA)")
            seen = observe(model, session.calibration, [groups[i] for i in missing], samples=0)
            for i, o in zip(missing, seen):
                maxima[i] = o.absmax
        done = {"folded": 0, "explicit": 0, "unfoldable": 0, "unchanged": 0}
        for grp, amax in zip(groups, maxima):
            assert amax is not None
            s = smooth_scales(amax, weight_absmax(grp.weights(model)), float(self.alpha))
            if is_identity(s):
                done["unchanged"] += 1
                continue
            done[apply_scales(model, grp, s, bool(self.explicit))] += 1
        session.notes.update({"groups": len(groups), **done, "alpha": float(self.alpha),
                              "maxima": "calibrate" if not missing else ("observed" if len(missing) == len(groups) else "mixed")})
