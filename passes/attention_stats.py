"""``attention-stats``: measure how quantization changed each attention block (an analysis pass).

Runs :func:`mase_compiler.attention_stats.measure` on the calibration data: per attention block the
Gaussian and code entropy of the query and key as the QK^T matmul reads them, and the KL divergence
of the attention maps from the FP32 model's, the two quantities EdgeQAT's QAT losses act on (Shen et
al., "EdgeQAT", 2024).  The FP32 model is the session's model with its ``quant.cast`` ops
removed (:func:`mase_compiler.attention_stats.fp32_reference`): the pipeline does not keep the model
as it was before ``quantize``, and since ``quantize`` keeps float weights and casts them at run time,
removing the casts gives back that model.  The IR is not changed.

Options: ``out`` (a JSON file to write the per-block rows to; empty: only the pass's notes get them).
Put it after ``quantize``: ``calibrate,quantize{query="int4:token" key="int4:token"},attention-stats{out=a.json}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from mase_compiler.session import current


@dataclass(frozen=True)
class AttentionStats(ModulePass):
    """Entropy of the (quantized) query/key and attention-map KL vs FP32, per attention block."""

    name = "attention-stats"

    out: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from mase_compiler.attention_stats import fp32_reference, measure
        from mase_compiler.jsonout import dumps

        session = current(self.name)
        if session.calibration is None:
            raise ValueError("pass 'attention-stats' needs calibration data: pass it, e.g. 'masec compile --calib DATA'")
        model = session.model
        if op is not model.module:
            raise ValueError("pass 'attention-stats' must run on the session's model (masec opt/compile), not on another module")
        rows = measure(model, session.calibration, reference=fp32_reference(model))
        if self.out:
            path = Path(self.out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dumps({"batches": len(session.calibration), "blocks": rows}))
        session.notes.update(blocks=len(rows), attention=rows)
