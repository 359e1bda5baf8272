"""``sensitivity``: how much each quantized tensor alone hurts the model's outputs (measures, never rewrites).

For every matmul/conv operand that ``quantize`` would cast, grouped per layer and role (the weight, or the
activation operands of one op: the ``(layer, role)`` tensors that ``quantize``'s ``rules`` and
:mod:`mase_compiler.search` address), and for every candidate format, the pass quantizes ONLY that tensor
(everything else stays FP32), runs the calibration batches and compares the outputs with the FP32 run:

- ``sqnr_db`` and ``cosine`` of all model outputs, flattened and concatenated over the batches;
- ``kl``: mean over rows of KL(softmax(ref) || softmax(quantized)) along the last axis of every float output
  with a last axis of 2 or more.  It is the right distance when the outputs are logits (classifiers, language
  models) and is always computed; ``logits`` in the table says whether every output looked like logits
  (rank >= 2, last axis >= 2), so a consumer knows whether to trust ``kl`` or ``sqnr_db``;
- ``loss_delta``: mean task loss minus the FP32 one, only when the session carries a ``loss`` callable
  (``session.loss(outputs, batch) -> float``); ``None`` otherwise.

This is the per-layer sensitivity analysis of MASE's mixed-precision search (Cheng et al., "MASE: An
Efficient Representation for Software-Defined ML Hardware System Exploration"; Zhang et al., "Revisiting
Block-based Quantisation", on MX-like formats) over the OCP Microscaling formats (Rouhani et al., 2023,
"Microscaling Data Formats for Deep Learning"), one forward per (tensor, format) pair.  Cost is kept simple:
each pair quantizes a fresh copy of the IR (static activation scales come from ONE ``calibrate`` run on a
copy made up front) and re-runs the whole model over all batches; FP32 prefixes are not cached.  The pairs
are evaluations of :class:`mase_compiler.search.evaluate.Evaluator`, so ``workers=N`` runs them in N
processes (the ``search`` pass shares that pool with its evolutionary strategy).

Each row's ``bits`` is the tensor's exact storage per element in that format (:func:`mase_compiler.cost.tensor_bytes`
for its shape and the axis ``quantize`` would block along: every scale, and the padding of MX blocks longer than
a short reduction axis, included; an activation is priced per calibration batch, the first), not the format's
asymptotic figure: mxfp4 on a K = 8 axis stores 17 bits per element, not 4.25.

The table (a list of JSON rows) goes to ``session.notes["sensitivity"]``; with ``out=PATH`` it is also
written as JSON to PATH and plotted (SQNR per tensor and format) to PATH with a ``.png`` suffix.
:func:`mase_compiler.passes.sensitivity.to_table` turns it into the ``{Tensor: {format: error}}`` table
(a :class:`mase_compiler.search.Table`, carrying the rows' bits) that :meth:`mase_compiler.search.Problem.build` takes.

Options: ``formats`` (comma-separated specs, default ``int8,mxint8,mxfp4``), ``tensors``
(``weights|activations|both``), ``out`` (a JSON path, or empty), ``ops`` (default ``matmul,conv``),
``method`` (the calibration method for static activation formats, default ``minmax``), ``workers``
(evaluation processes, default 1).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from mase_compiler.model import Model
from mase_compiler.numerics import DIntFormat, IntFormat, MinifloatFormat, parse
from mase_compiler.session import Session, current, open_session
from mase_compiler.weights import WeightStore

TENSORS = ("weights", "activations", "both")
Row = dict[str, Any]


@dataclass(frozen=True)
class Sensitivity(ModulePass):
    """Measures output SQNR / cosine / KL (and task-loss delta) with one tensor at a time quantized."""

    name = "sensitivity"

    formats: str = "int8,mxint8,mxfp4"
    tensors: str = "both"
    out: str = ""
    ops: str = "matmul,conv"
    method: str = "minmax"
    workers: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise ValueError(f"sensitivity workers must be an integer >= 1, not {self.workers!r}")
        if self.tensors not in TENSORS:
            raise ValueError(f"sensitivity tensors must be one of {', '.join(TENSORS)}, not {self.tensors!r}")
        if not self.specs:
            raise ValueError("sensitivity formats must name at least one format, e.g. 'int8,mxfp4'")
        for s in self.specs:
            try:
                parse(s)
            except ValueError as e:
                raise ValueError(f"sensitivity formats: {e}") from None
        from .quantize import Quantize

        Quantize(ops=self.ops)  # validates the op kinds with quantize's own message
        from .calibrate import Calibrate

        Calibrate(method=self.method)

    @property
    def specs(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.formats.split(",") if s.strip())

    def count(self, model: Model, batches: list[dict]) -> int:
        """How many (tensor, format) evaluations :func:`measure` will run."""
        return len(_targets(model, self.ops, self.roles, batches[0])) * len(self.specs)

    @property
    def roles(self) -> tuple[str, ...]:
        return {"weights": ("weight",), "activations": ("activation",), "both": ("weight", "activation")}[self.tensors]

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        session = current(self.name)
        if session.calibration is None:
            raise ValueError("pass 'sensitivity' needs calibration data to run the model on: pass it, e.g. "
                             "'masec compile --calib DATA'")
        model = session.model
        if op is not model.module:
            raise ValueError("pass 'sensitivity' must run on the session's model (masec opt/compile), not on another module")
        from mase_compiler.progress import bar
        from mase_compiler.search.evaluate import open_pool

        batches = session.calibration
        with open_pool(payload(model, batches, self.specs, self.roles, self.method, self.ops, session.loss),
                       self.workers) as pool, bar(session.progress, self.count(model, batches), "sensitivity") as advance:
            rows = measure(model, batches, self.specs, self.roles, self.ops, self.method, pool=pool, advance=advance)
        session.notes["sensitivity"] = rows
        if self.out:
            write(rows, Path(self.out))
            session.notes["sensitivity_out"] = self.out


# ---- measurement ----------------------------------------------------------------------------------
def measure(model: Model, batches: list[dict], specs: tuple[str, ...], roles: tuple[str, ...] = ("weight", "activation"),
            ops: str = "matmul,conv", method: str = "minmax",
            loss: Callable[[Mapping[str, torch.Tensor], Mapping], float] | None = None,
            pool=None, advance: Callable[[], None] | None = None) -> list[Row]:
    """The sensitivity rows, one per (tensor, format), in IR order then format order; ``model`` is not touched.

    Each row is one evaluation of :class:`mase_compiler.search.evaluate.Evaluator` (only that tensor quantized);
    ``pool`` (from :func:`mase_compiler.search.evaluate.open_pool` on :func:`payload`) runs them in worker
    processes or on Ray, in this process when ``None``; ``advance`` is called after each row (progress)."""
    from mase_compiler.search.evaluate import open_pool

    targets = _targets(model, ops, roles, batches[0])
    jobs = [((layer, role), spec) for (layer, role) in targets for spec in specs]
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(open_pool(payload(model, batches, specs, roles, method, ops, loss)))
        first = next(iter(_first_outputs(model, batches[:1])))
        logits = all(t.ndim >= 2 and t.shape[-1] >= 2 for t in first.values())
        rows = []
        for (key, spec), m in zip(jobs, pool.map([{key: spec} for key, spec in jobs])):
            (layer, role), shapes = key, targets[key]
            elements = sum(s.elements(role) for s in shapes)
            bits = sum(s.storage_bits(role, spec) for s in shapes) / elements
            rows.append({"layer": layer, "role": role, "elements": elements, "format": spec, "bits": bits,
                         "sqnr_db": m["sqnr_db"], "cosine": m["cosine"], "kl": m["kl"], "logits": logits,
                         "loss_delta": m["loss_delta"]})
            if advance is not None:
                advance()
    return rows


def payload(model: Model, batches: list[dict], specs: tuple[str, ...], roles: tuple[str, ...] = ("weight", "activation"),
            method: str = "minmax", ops: str = "matmul,conv", loss=None, metric: str = "sqnr"):
    """The evaluators' :class:`~mase_compiler.search.evaluate.Payload`: the model, calibrated once (``method``)
    when an activation format among ``specs`` needs static scales, as the replayed pipeline's calibrate does."""
    from mase_compiler.search.evaluate import Payload

    base = model
    if "activation" in roles and any(_static(s) for s in specs):
        base = _copy(model, model.text())
        _apply(base, batches, "calibrate", method=method)
    return Payload(base.text(), {k: base.weights[k] for k in base.weights}, batches, metric, ops, loss)


def _first_outputs(model: Model, batches: list[dict]) -> list[dict]:
    from mase_compiler.interpreter import Interpreter

    return [Interpreter(model)(b) for b in batches]


def _targets(model: Model, ops: str, roles: tuple[str, ...], batch: dict) -> dict[tuple[str, str], list]:
    """``{(layer, role): [LayerShape, ...]}``: the ops whose ``role`` operands quantize would cast, under their
    layer name (usually one op), with concrete shapes from one run on ``batch``, in IR then operand order."""
    from mase_compiler.search.hardware import op_shapes

    out: dict[tuple[str, str], list] = {}
    for shape in op_shapes(model, batch, ops):
        for role in dict.fromkeys(o.role for o in shape.operands):
            if role in roles:
                out.setdefault((shape.layer, role), []).append(shape)
    return out


def _static(spec: str) -> bool:
    """Whether an activation in ``spec`` needs calibrated (static) scales."""
    f = parse(spec)
    return (isinstance(f, (IntFormat, DIntFormat)) and f.granularity == "tensor") or \
        (isinstance(f, MinifloatFormat) and f.bits <= 8)


def _copy(model: Model, text: str) -> Model:
    """A private copy: re-parsed IR, a new weight store sharing the (read-only) arrays."""
    return Model.parse(text, WeightStore({k: model.weights[k] for k in model.weights}))


def _apply(model: Model, batches: list[dict], pass_name: str, **options: Any) -> None:
    """Run one pass on a copy under its own session (the outer session's model is left alone)."""
    from mase_compiler.dialects import make_context

    from .calibrate import Calibrate
    from .quantize import Quantize

    cls = {"calibrate": Calibrate, "quantize": Quantize}[pass_name]
    with open_session(Session(model, calibration=batches)):
        cls(**options).apply(make_context(), model.module)


# ---- results ------------------------------------------------------------------------------------------
def _json_safe(x: Any) -> Any:
    """inf SQNR (a lossless format) as the string 'inf': strict JSON has no Infinity."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def write(rows: list[Row], path: Path) -> Path:
    """``path`` (JSON table) and ``path.with_suffix('.png')`` (SQNR per tensor and format); returns the PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{k: _json_safe(v) for k, v in r.items()} for r in rows], indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tensors = list(dict.fromkeys(f"{r['layer']}/{'W' if r['role'] == 'weight' else 'A'}" for r in rows))
    specs = list(dict.fromkeys(r["format"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(tensors) * len(specs) ** 0.5 + 2), 3.5))
    width = 0.8 / max(1, len(specs))
    for j, spec in enumerate(specs):
        by = {f"{r['layer']}/{'W' if r['role'] == 'weight' else 'A'}": r["sqnr_db"] for r in rows if r["format"] == spec}
        ys = [min(by.get(t, 0.0), 200.0) for t in tensors]  # a lossless tensor (inf dB) is drawn at 200 dB
        ax.bar([i + j * width for i in range(len(tensors))], ys, width, label=spec)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tensors))], tensors, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("output SQNR (dB)")
    ax.set_title("sensitivity: one tensor quantized at a time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = path.with_suffix(".png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def to_table(rows: list[Row], metric: str = "sqnr_db") -> dict:
    """``{search.Tensor: {format: error}}`` for :meth:`mase_compiler.search.Problem.build`: noise power
    ``10^(-SQNR/10)`` from ``sqnr_db`` (relative to the output power), or the ``kl`` / ``loss_delta`` value.
    It is a :class:`mase_compiler.search.Table`: its ``bits`` are the rows' exact bits, which ``Problem.build``
    uses (rows without ``bits``, from older tables, leave the format's asymptotic figure)."""
    from mase_compiler.search import Table, Tensor, error_from_sqnr

    table = Table()
    for r in rows:
        t = Tensor(r["layer"], r["role"], r["elements"])
        v = r[metric]
        if isinstance(v, str):
            v = float(v)
        if v is None:
            raise ValueError(f"sensitivity metric {metric!r} must be measured for every row, not missing for {t.key}")
        table.setdefault(t, {})[r["format"]] = error_from_sqnr(v) if metric == "sqnr_db" else float(v)
        if r.get("bits") is not None:
            table.bits[(t.key, r["format"])] = float(r["bits"])
    return table


__all__ = ["Sensitivity", "measure", "to_table", "write"]
