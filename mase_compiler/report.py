"""Per-layer quantization error of a compiled model (``masec report OUT``).

``report(out)`` reads what ``masec compile`` wrote (docs/quantized-ir.md): the
quantized IR and the reference inputs.  The FP32 baseline is the same IR with
every ``quant.cast`` bypassed (a clone whose casts are replaced by their inputs;
the weight store is shared, nothing is copied), so a layer's error is the error
its quantized operands cause, upstream error included, exactly as the model
will see it.  Both versions run in the reference interpreter; its observe hook
captures the output of every *quantized layer* (a compute op with a
``quant.cast`` operand, possibly through transposes or reshapes) and the two
runs are matched by op order.

The result goes to ``OUT/report.json`` and, as a bar chart of per-layer SQNR
coloured by format, to ``OUT/report.png``.  The metrics are those of
:mod:`mase_compiler.metrics`, as in ``compile.json`` and ``masec verify``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from xdsl.ir import Operation, SSAValue

from .dialects.graph import node_name
from .dialects.quant import CastOp, bypass_casts
from .interpreter import Interpreter, Observer
from .interpreter.kernels import KERNELS, KernelEnv
from .jsonout import dumps
from .metrics import compare
from .model import Model, ModelError

__all__ = [
    "ReportError", "check_out_dir", "json_text", "load_compile_info", "load_quantized", "load_reference", "report",
    "write_atomic",
]

# Ops that only move data: a cast seen through them still quantizes the consumer's operand.
_VIEW_OPS = frozenset({"graph.transpose", "graph.reshape", "graph.squeeze", "graph.unsqueeze", "graph.flatten"})
# SQNR bars are clipped here in the plot (an exact layer has SQNR = inf).
_PLOT_MAX_DB = 120.0


class ReportError(ValueError):
    """An output directory that ``report``/``verify`` cannot read."""


def _metrics(ref: torch.Tensor | np.ndarray, x: torch.Tensor | np.ndarray) -> dict[str, float]:
    """SQNR, cosine, relative RMSE and max abs error of ``x`` against ``ref`` (:mod:`mase_compiler.metrics`)."""
    m = compare(_tensor(ref), _tensor(x))
    return {k: m[k] for k in ("sqnr_db", "cosine", "rel_rmse", "max_abs_error")}


def _tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


# ---- files --------------------------------------------------------------------------------------
def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary sibling and a rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def json_text(obj: object) -> str:
    """JSON with non-finite floats as strings ("inf", "-inf", "nan"): every parser reads it."""
    return dumps(obj)


def check_out_dir(path: str | os.PathLike) -> Path:
    """``path`` as a compile output directory, or a one-line error."""
    out = Path(path)
    if not out.is_dir():
        raise ReportError(f"output directory {out} does not exist: pass the directory that masec compile -o wrote")
    return out


def load_reference(out: Path) -> dict[str, dict[str, np.ndarray]]:
    """``reference.npz`` split by prefix: ``{"input": {...}, "fp32": {...}, "quantized": {...}}``."""
    path = out / "reference.npz"
    if not path.is_file():
        raise ReportError(f"{path} does not exist: masec compile writes it; recompile into {out}")
    groups: dict[str, dict[str, np.ndarray]] = {"input": {}, "fp32": {}, "quantized": {}}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                prefix, _, name = key.partition("/")
                if prefix in groups and name:
                    groups[prefix][name] = data[key]
    except (OSError, ValueError) as e:
        raise ReportError(f"cannot read {path}: {e}") from None
    if not groups["input"]:
        raise ReportError(f"{path} has no input/<name> arrays: recompile into {out}")
    return groups


def load_compile_info(out: Path) -> dict[str, object] | None:
    """``compile.json`` as a dict, or None when the directory has none."""
    path = out / "compile.json"
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"cannot read {path}: {e}") from None
    if not isinstance(info, dict):
        raise ReportError(f"{path} must hold a JSON object, not {type(info).__name__}")
    return info


def load_quantized(out: Path) -> Model:
    path = out / "quantized.mlir"
    if not path.is_file():
        raise ReportError(f"{path} does not exist: masec compile writes it; recompile into {out}")
    try:
        return Model.load(path)
    except ModelError as e:
        raise ReportError(str(e)) from None


# ---- the IR -------------------------------------------------------------------------------------
def _cast_behind(v: SSAValue) -> CastOp | None:
    """The ``quant.cast`` that produces ``v``, looking through data-movement ops."""
    op = v.owner
    while isinstance(op, Operation):
        if isinstance(op, CastOp):
            return op
        if op.name not in _VIEW_OPS or not op.operands:
            return None
        op = op.operands[0].owner
    return None


def _is_weight_cast(cast: CastOp) -> bool:
    """Whether ``cast`` quantizes a parameter (a ``graph.weight``, possibly through data-movement ops)."""
    owner = cast.input.owner
    while isinstance(owner, Operation) and owner.name in _VIEW_OPS and owner.operands:
        owner = owner.operands[0].owner
    return isinstance(owner, Operation) and owner.name == "graph.weight"


def _layers(model: Model) -> list[tuple[int, Operation, list[CastOp]]]:
    """(index in main's body, op, its operand casts) of every quantized layer, in op order."""
    found = []
    for i, op in enumerate(model.main.body.ops):
        if isinstance(op, CastOp) or op.name in _VIEW_OPS:
            continue
        casts = [c for c in (_cast_behind(v) for v in op.operands) if c is not None]
        if casts:
            found.append((i, op, casts))
    return found


def _bypassed(model: Model) -> tuple[Model, list[Operation]]:
    """A clone of ``model`` with every ``quant.cast`` replaced by its input, and its ops in the original order."""
    clone = Model(model.module.clone(), model.weights)
    ops = list(clone.main.body.ops)
    bypass_casts(clone.module)
    return clone, ops


def _layer_names(ops: list[Operation]) -> dict[int, str]:
    """Source-node names, or ``<kind>_<n>`` (n counts ops of that kind) where the frontend left none."""
    names: dict[int, str] = {}
    counts: dict[str, int] = {}
    for i, op in enumerate(ops):
        kind = op.name.partition(".")[2]
        n = counts.get(kind, 0)
        counts[kind] = n + 1
        names[i] = node_name(op) or f"{kind}_{n}"
    return names


def _format_info(casts: list[CastOp], weight: bool) -> tuple[str | None, float | None]:
    picked = [c for c in casts if _is_weight_cast(c) == weight]
    if not picked:
        return None, None
    specs = list(dict.fromkeys(c.format.spec.data for c in picked))
    bits = max(c.format.format.bits_per_element for c in picked)
    return ",".join(specs), float(bits)


def _weight_bytes_from_ir(model: Model) -> dict[str, int]:
    """FP32 and quantized weight bytes: a cast weight costs its format's bits, its scales their bytes."""
    fp32 = quant = 0
    for op in model.main.body.ops:
        if op.name != "graph.weight":
            continue
        arr = model.weights[op.properties["name"].data]
        users = [u.operation for u in op.results[0].uses]
        as_input = [u for u in users if isinstance(u, CastOp) and u.input == op.results[0]]
        as_param = [u for u in users if isinstance(u, CastOp) and u.input != op.results[0]]
        plain = len(users) > len(as_input) + len(as_param) or not users  # read in FP32 somewhere
        if as_input:
            quant += math.ceil(arr.size * max(c.format.format.bits_per_element for c in as_input) / 8)
        if plain or as_input:
            fp32 += arr.nbytes
        if plain or (as_param and not as_input):  # a scale, or a weight also read unquantized (tied embeddings)
            quant += arr.nbytes
    return {"fp32": fp32, "quantized": quant}


def _weight_bytes_from_compile(info: Mapping[str, object] | None) -> dict[str, int] | None:
    """Weight bytes as compile.json records them (``weight_bytes: {fp32, quantized}``), when it does."""
    if not info:
        return None
    wb = info.get("weight_bytes")
    if not isinstance(wb, Mapping):
        return None
    f, q = wb.get("fp32"), wb.get("quantized")
    # A backend that did not count a side records 0: then the IR's estimate is the better number.
    if isinstance(f, int) and isinstance(q, int) and f > 0 and q > 0:
        return {"fp32": f, "quantized": q}
    return None


# ---- the report ---------------------------------------------------------------------------------
def _capture(wanted: set[int]) -> tuple[dict[int, torch.Tensor], Observer]:
    """An observer that keeps (a copy of) the first result of each op whose id is in ``wanted``."""
    seen: dict[int, torch.Tensor] = {}

    def observe(op: Operation, operands: list[torch.Tensor], results: tuple[torch.Tensor, ...]) -> None:
        if id(op) in wanted:
            seen[id(op)] = results[0].detach().to("cpu", copy=True)

    return seen, observe


def _compare_with(fp32: dict[int, torch.Tensor], pairs: dict[int, int]) -> tuple[dict[int, dict[str, float]], Observer]:
    """An observer that scores each op in ``pairs`` (its id -> the id of its FP32 twin) as it runs,
    dropping the FP32 copy at once so that only one run's layer outputs are held at a time."""
    scores: dict[int, dict[str, float]] = {}

    def observe(op: Operation, operands: list[torch.Tensor], results: tuple[torch.Tensor, ...]) -> None:
        twin = pairs.get(id(op))
        if twin is not None:
            scores[id(op)] = _metrics(fp32.pop(twin), results[0])

    return scores, observe


class _OwnError:
    """Each layer's own error: the layer evaluated on the FP32 run's activations, cast as the quantized model
    casts them, with its quantized weights, against its FP32 output (the total SQNR also carries upstream error).

    Activation casts sit right on the layer's operands (docs/quantized-ir.md), so the FP32 run's operand is the
    cast's input; weight-side operands carry no upstream error and are taken from the quantized run as they are.
    """

    def __init__(self, model: Model, layers: list[tuple[int, Operation, list[CastOp]]], fp32_ops: list[Operation],
                 device: str | None):
        env = KernelEnv(model.weights, torch.device(device or "cpu"))
        self.acts: dict[int, dict[int, CastOp]] = {}  # id(layer) -> operand index -> activation cast
        self.twin: dict[int, int] = {}  # id(FP32 twin) -> id(layer)
        self.kernels: dict[int, object] = {}
        for i, op, _ in layers:
            direct = {k: v.owner for k, v in enumerate(op.operands) if isinstance(v.owner, CastOp) and not _is_weight_cast(v.owner)}
            self.acts[id(op)] = direct
            self.twin[id(fp32_ops[i])] = id(op)
            self.kernels[id(op)] = KERNELS[op.name](op, env)
            for c in direct.values():
                self.kernels[id(c)] = KERNELS[c.name](c, env)
        self.fp32_in: dict[int, dict[int, torch.Tensor]] = {}
        self.params: dict[int, list[torch.Tensor]] = {}  # id(cast) -> its scale/zero-point operands
        self.scores: dict[int, dict[str, float]] = {}

    def observe_fp32(self, op: Operation, operands: list[torch.Tensor], results: tuple[torch.Tensor, ...]) -> None:
        layer = self.twin.get(id(op))
        if layer is not None:
            self.fp32_in[layer] = {k: operands[k] for k in self.acts[layer]}

    def observe_quantized(self, op: Operation, operands: list[torch.Tensor], fp32_out: torch.Tensor | None) -> None:
        if isinstance(op, CastOp):
            self.params[id(op)] = operands[1:]
            return
        casts = self.acts.get(id(op))
        if casts is None or fp32_out is None:
            return
        local = list(operands)
        for k, c in casts.items():
            local[k] = self.kernels[id(c)](self.fp32_in[id(op)][k], *self.params[id(c)])
        del self.fp32_in[id(op)]
        self.scores[id(op)] = _metrics(fp32_out, self.kernels[id(op)](*local))


def report(out_dir: str | os.PathLike, inputs: Mapping[str, np.ndarray] | None = None, png: bool = True,
           device: str | None = None) -> dict[str, object]:
    """Per-layer and per-output error of the quantized model in ``OUT`` against its FP32 self.

    Writes ``OUT/report.json`` (and ``OUT/report.png`` unless ``png=False``) and returns the
    same dict: ``layers`` (name, op, weight/activation format and bits, SQNR dB, cosine,
    relative RMSE, max abs error of its output against FP32 — upstream error included — and
    ``own_sqnr_db``/``own_cosine``: the layer alone, on FP32 inputs), ``outputs`` (the same metrics per model output) and
    ``totals`` (weight bytes FP32 vs quantized, from compile.json when it records them).
    ``inputs`` replaces the reference inputs of ``reference.npz``.
    """
    out = check_out_dir(out_dir)
    if png:
        _require_matplotlib()
    model = load_quantized(out)
    if inputs is None:
        inputs = load_reference(out)["input"]
    layers = _layers(model)
    fp32_model, fp32_ops = _bypassed(model)
    names = _layer_names(list(model.main.body.ops))

    fp32_seen, fp32_capture = _capture({id(fp32_ops[i]) for i, _, _ in layers})
    own = _OwnError(model, layers, fp32_ops, device)

    def fp32_observe(op, operands, results):
        own.observe_fp32(op, operands, results)
        fp32_capture(op, operands, results)

    fp32_out = Interpreter(fp32_model, device)(inputs, observe=fp32_observe)
    twin_of = {id(op): id(fp32_ops[i]) for i, op, _ in layers}
    scores, q_score = _compare_with(fp32_seen, twin_of)

    def q_observe(op, operands, results):
        twin = twin_of.get(id(op))
        own.observe_quantized(op, operands, fp32_seen.get(twin) if twin is not None else None)
        q_score(op, operands, results)

    q_out = Interpreter(model, device)(inputs, observe=q_observe)

    rows = []
    for i, op, casts in layers:
        wfmt, wbits = _format_info(casts, weight=True)
        afmt, abits = _format_info(casts, weight=False)
        rows.append({"name": names[i], "op": op.name.partition(".")[2], "weight_format": wfmt, "act_format": afmt,
                     "weight_bits": wbits, "act_bits": abits, **scores[id(op)],
                     "own_sqnr_db": own.scores[id(op)]["sqnr_db"], "own_cosine": own.scores[id(op)]["cosine"]})
    outputs = [{"name": n, **_metrics(fp32_out[n], q_out[n])} for n in model.output_names]

    info = load_compile_info(out)
    wb = _weight_bytes_from_compile(info)
    source = "compile.json" if wb else "ir"
    wb = wb or _weight_bytes_from_ir(model)
    totals = {"quantized_layers": len(rows), "weight_bytes_fp32": wb["fp32"], "weight_bytes_quantized": wb["quantized"],
              "compression": wb["fp32"] / wb["quantized"] if wb["quantized"] else None, "weight_bytes_source": source}
    from .cost import model_cost

    result: dict[str, object] = {
        "out": str(out), "inputs": {k: list(np.shape(v)) for k, v in inputs.items()},
        "layers": rows, "outputs": outputs, "totals": totals,
        # Hardware cost of each matmul/conv at the formats chosen (mase_compiler/cost: bytes, bit-ops, area, energy).
        "cost": model_cost(model).as_dict(),
    }
    write_atomic(out / "report.json", json_text(result))
    if png:
        write_atomic(out / "report.png", _plot(rows, outputs))
    return result


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("report.png needs matplotlib: pip install matplotlib, or pass --no-plot") from None


def _plot(rows: list[dict[str, object]], outputs: list[dict[str, object]]) -> bytes:
    """PNG bytes: one SQNR bar per layer, coloured by (weight, activation) format, model outputs as lines."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    def db(v: object) -> float:
        return max(-_PLOT_MAX_DB, min(_PLOT_MAX_DB, float(v)))  # type: ignore[arg-type]

    labels = [f"w={r['weight_format'] or '-'} a={r['act_format'] or '-'}" for r in rows]
    palette = list(dict.fromkeys(labels))
    colour = {label: f"C{i % 10}" for i, label in enumerate(palette)}
    longest = max((len(str(r["name"])) for r in rows), default=0)
    fig = Figure(figsize=(max(6.0, 0.28 * len(rows) + 2.0), min(12.0, 3.5 + 0.055 * longest)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(range(len(rows)), [db(r["sqnr_db"]) for r in rows], color=[colour[label] for label in labels])
    handles = [Patch(color=colour[label], label=label) for label in palette]
    for k, o in enumerate(outputs):
        handles.append(ax.axhline(db(o["sqnr_db"]), color="black", linestyle=("--", ":", "-.")[k % 3], linewidth=1.2,
                                  label=f"output {o['name']}: {float(o['sqnr_db']):.1f} dB"))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([str(r["name"]) for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("SQNR vs FP32 (dB, higher is better)")
    ax.set_title("masec report: per-layer output SQNR")
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
