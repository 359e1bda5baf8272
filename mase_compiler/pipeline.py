"""Pass registry, named presets and MLIR-style pipeline strings.

A pipeline is ``pass{opt=value other=value},next-pass``, parsed once by xDSL's
pipeline parser and run in order with the module verified after every pass.
A preset name (``w8a8``, ``fp8``, ``mxfp4``, ...) stands for the pipeline it
expands to and may be mixed with passes (``w8a8,dce``).  Each registry entry is
a lazy factory so that importing masec does not import every pass.  Registry
keys must equal the passes' ``name`` (tested).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from xdsl.ir import Operation
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.arg_spec import ArgSpec, parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError

from .dialects import make_context
from .model import Model
from .numerics._options import suggestion
from .session import Session, open_session


class PipelineError(ValueError):
    """A pipeline string that names an unknown pass or option, or a pass that failed or broke the IR."""


def _cse() -> type[ModulePass]:
    from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination

    return CommonSubexpressionElimination


def _dce() -> type[ModulePass]:
    from xdsl.transforms.dead_code_elimination import DeadCodeElimination

    return DeadCodeElimination


def _canonicalize() -> type[ModulePass]:
    from xdsl.transforms.canonicalize import CanonicalizePass

    return CanonicalizePass


def _calibrate() -> type[ModulePass]:
    from .passes.calibrate import Calibrate

    return Calibrate


def _quantize() -> type[ModulePass]:
    from .passes.quantize import Quantize

    return Quantize


def _search() -> type[ModulePass]:
    from .passes.search import Search

    return Search


def _sensitivity() -> type[ModulePass]:
    from .passes.sensitivity import Sensitivity

    return Sensitivity


def _mx_block_size() -> type[ModulePass]:
    from .passes.mx_block_size import MxBlockSize

    return MxBlockSize


def _lower_dataflow() -> type[ModulePass]:
    from .passes.lower_dataflow import LowerDataflow

    return LowerDataflow


def _smoothquant() -> type[ModulePass]:
    from .passes.smoothquant import SmoothQuant

    return SmoothQuant


def _aqas() -> type[ModulePass]:
    from .passes.aqas import Aqas

    return Aqas


def _attention_stats() -> type[ModulePass]:
    from .passes.attention_stats import AttentionStats

    return AttentionStats


def _token_bits() -> type[ModulePass]:
    from .passes.token_bits import TokenBits

    return TokenBits


# For passes whose class has no docstring (xDSL's cse and dce).
SUMMARIES = {
    "cse": "Common subexpression elimination of pure ops.",
    "dce": "Removes pure ops whose results are unused.",
}

PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "aqas": _aqas,
    "attention-stats": _attention_stats,
    "calibrate": _calibrate,
    "canonicalize": _canonicalize,
    "cse": _cse,
    "dce": _dce,
    "lower-dataflow": _lower_dataflow,
    "mx-block-size": _mx_block_size,
    "quantize": _quantize,
    "search": _search,
    "sensitivity": _sensitivity,
    "smoothquant": _smoothquant,
    "token-bits": _token_bits,
}

_W4 = '"int4:channel"'
_D4 = '"dint4:channel"'

# Named pipelines.  Calibration comes first because quantize turns its statistics into static scales.
PRESETS: dict[str, tuple[str, str]] = {
    # Static integer W8A8: int8 per-channel weights, asymmetric uint8 per-tensor activations (as ONNX
    # Runtime's static QDQ does), MSE-optimal ranges.  On all-MiniLM-L6-v2 (bench/accuracy.py) symmetric
    # int8 activations lose 0.008 embedding cosine to uint8: post-GELU and post-softmax inputs are skewed.
    "w8a8": ('calibrate{method=mse format=uint8},quantize{w="int8:channel" a=uint8}',
             "int8 per-channel weights, uint8 per-tensor static activations (MSE-calibrated)"),
    # FP8-BERT (Li et al.): E4M3 weights and activations, per-tensor scales from simple max calibration.
    "fp8": ("calibrate{method=minmax},quantize{w=fp8_e4m3 a=fp8_e4m3}",
            "FP8-BERT: E4M3 weights and activations, per-tensor max-calibrated scales"),
    # MX formats carry their own per-block scales: no calibration needed (OCP MX v1.0).
    "mxfp8": ("quantize{default=mxfp8_e4m3}", "MXFP8 (E4M3 elements) weights and activations, blocks of 32"),
    "mxfp6": ("quantize{default=mxfp6_e2m3}", "MXFP6 (E2M3 elements) weights and activations, blocks of 32"),
    "mxfp4": ("quantize{default=mxfp4}", "MXFP4 (E2M1 elements) weights and activations, blocks of 32"),
    "mxint8": ("quantize{default=mxint8}", "MXINT8 weights and activations, blocks of 32"),
    # Integer hardware (--target sv / hls): int8 per-channel weights and uint8 per-tensor activations into every
    # matmul (as w8a8), residual sums and norm inputs on int16 grids, softmax / layer norm / GELU as integer
    # kernels (docs/hardware.md).  int8 residual grids lose 13 dB on MiniLM's first layer (outlier channels).
    "hw-int8": ('calibrate{method=mse format=uint8},quantize{w="int8:channel" a=uint8},lower-dataflow{internal=int16}',
                "integer hardware: int8 weights, uint8 activations, int16 residuals, for --target sv / hls"),
    # MASE: per-layer MX formats chosen by the exact ILP on measured sensitivities, at most 4.5 bits per
    # weight / activation element on average (scales included).
    "mx4-search": ('search{formats="mxint8,mxfp6_e2m3,mxfp4" budget=4.5}',
                   "mixed MX formats per layer tensor, <= 4.5 bits per element on average (search, exact ILP)"),
    "w4a16": ('quantize{w="int4:group=128"}', "int4 weights in groups of 128 along the reduction axis, float activations"),
    # W4A8 (Lee et al., EMNLP 2023): int4 per-channel weights, static 8-bit activations.  Scaling passes come
    # first because they change the activations; calibration must see the scaled ones (they drop stale stats).
    "w4a8": (f"calibrate{{method=mse format=uint8}},quantize{{w={_W4} a=uint8}}",
             "round-to-nearest W4A8: int4 per-channel weights, uint8 per-tensor static activations"),
    "w4a8-smoothquant": (f"smoothquant{{alpha=0.5}},calibrate{{method=mse format=uint8}},quantize{{w={_W4} a=uint8}}",
                         "W4A8 after SmoothQuant (alpha 0.5) per-channel scaling, folded into the producers"),
    "w4a8-aqas": (f"aqas{{w={_W4} a=uint8}},calibrate{{method=mse format=uint8}},quantize{{w={_W4} a=uint8}}",
                  "W4A8 after activation-quantization-aware scaling (AQAS), folded into the producers"),
    "w4a8-aqas-dint": (f"aqas{{w={_D4} a=uint8}},calibrate{{method=mse format=uint8}},quantize{{w={_D4} a=uint8}}",
                       "W4A8-AQAS with dINT4 weights (integer grid plus denormal codes near zero)"),
}


def passes() -> list[dict[str, object]]:
    """Every registered pass with its options (name, type, default) and the first line of its docstring."""
    rows = []
    for key, factory in sorted(PASSES.items()):
        cls = factory()
        opts = [
            {"name": f.name, "type": str(f.type), "default": _default(f)}
            for f in dataclasses.fields(cls)
        ] if dataclasses.is_dataclass(cls) else []
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({"name": key, "options": opts, "summary": doc[0] if doc else SUMMARIES.get(key, "")})
    return rows


def presets() -> list[dict[str, str]]:
    """Every named preset with the pipeline it expands to."""
    return [{"name": k, "pipeline": p, "summary": s} for k, (p, s) in PRESETS.items()]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _parse_specs(spec: str) -> list[ArgSpec]:
    try:
        return list(parse_pipeline(spec))
    except ArgSpecParseError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise PipelineError(f"cannot parse pipeline {spec!r}: {lines[-1].strip() if lines else e}") from None


def expand(spec: str) -> list[ArgSpec]:
    """The pass specs of a pipeline string, presets replaced by their pipelines."""
    out: list[ArgSpec] = []
    for s in _parse_specs(spec.strip()) if spec.strip() else []:
        if s.name in PRESETS and s.name not in PASSES:
            if s.parameters:
                raise PipelineError(f"preset {s.name!r} takes no options; write its pipeline instead: {PRESETS[s.name][0]}")
            out.extend(_parse_specs(PRESETS[s.name][0]))
        else:
            out.append(s)
    return out


def expanded_text(spec: str) -> str:
    """The pipeline string with presets written out (what ``compile.json`` records)."""
    return ",".join(str(s) for s in expand(spec))


def parse(spec: str) -> list[ModulePass]:
    """The passes a pipeline string names, options validated; errors name the closest valid names."""
    result = []
    for s in expand(spec):
        if s.name not in PASSES:
            raise PipelineError(
                f"unknown pass or preset {s.name!r}" + suggestion(s.name, [*PASSES, *PRESETS]) + " ('masec passes' lists them)"
            )
        cls = PASSES[s.name]()
        if dataclasses.is_dataclass(cls):
            fields = [f.name for f in dataclasses.fields(cls)]
            for key in s.parameters:
                if key not in fields:
                    valid = ", ".join(fields) if fields else "none"
                    raise PipelineError(f"pass {s.name!r} has no option {key!r}" + suggestion(key, fields) + f" (options: {valid})")
        try:
            result.append(cls.from_pass_spec(s))
        except Exception as e:  # xDSL reports ill-typed options, our passes out-of-range values
            raise PipelineError(f"pass {s.name!r}: {str(e).strip().splitlines()[0]}") from None
    return result


def _census(model: Model) -> collections.Counter[str]:
    return collections.Counter(op.name for op in model.module.walk() if isinstance(op, Operation))


def run_pipeline(
    model: Model,
    spec: str,
    *,
    session: Session | None = None,
    print_ir_after_all: Callable[[str, str], None] | None = None,
    verify_each: bool = True,
) -> list[dict[str, Any]]:
    """Run ``spec`` on ``model`` in place, verifying after every pass.

    Returns one record per pass: its name and options, seconds, the op counts it
    changed, weights it added or removed, and the facts it noted in the session.
    ``print_ir_after_all(pass_name, ir_text)`` is called after each pass when given.
    """
    passes = parse(spec)
    ctx = make_context()
    session = session or Session(model)
    if session.model is not model:
        raise ValueError("the session's model must be the model the pipeline runs on")
    records: list[dict[str, Any]] = []
    with open_session(session):
        for p in passes:
            before, weights_before = _census(model), set(model.weights)
            session.notes = {}
            t0 = time.perf_counter()
            try:
                PassPipeline((p,)).apply(ctx, model.module)
            except PipelineError:
                raise
            except (ValueError, RuntimeError) as e:  # a pass refusing its input: one line, naming the pass
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise PipelineError(f"pass {p.name!r}: {msg}") from e
            seconds = time.perf_counter() - t0
            if verify_each:
                try:
                    model.module.verify()
                except Exception as e:
                    raise PipelineError(f"IR does not verify after pass {p.name!r}: {str(e).strip().splitlines()[-1]}") from None
            after, weights_after = _census(model), set(model.weights)
            delta = {k: after[k] - before[k] for k in sorted(set(before) | set(after)) if after[k] != before[k]}
            records.append({
                "pass": p.name,
                "options": str(p.pipeline_pass_spec()),
                "seconds": seconds,
                "ops_changed": delta,
                "weights_added": len(weights_after - weights_before),
                "weights_removed": len(weights_before - weights_after),
                "notes": dict(session.notes),
            })
            if print_ir_after_all is not None:
                print_ir_after_all(p.name, model.text())
    return records
