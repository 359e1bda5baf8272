"""Pass registry and MLIR-style pipeline strings.

A pipeline is ``pass{opt=value other=value},next-pass``, parsed once by xDSL's
pipeline parser and run in order with the module verified after every pass.
Each registry entry is a lazy factory so that importing masec does not import
every pass.  Registry keys must equal the passes' ``name`` (tested).
"""

from __future__ import annotations

from typing import Callable

from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.arg_spec import parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError

from .dialects import make_context
from .model import Model
from .numerics._options import suggestion


class PipelineError(ValueError):
    """A pipeline string that names an unknown pass or option, or a pass that broke the IR."""


def _cse() -> type[ModulePass]:
    from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination

    return CommonSubexpressionElimination


def _dce() -> type[ModulePass]:
    from xdsl.transforms.dead_code_elimination import DeadCodeElimination

    return DeadCodeElimination


def _canonicalize() -> type[ModulePass]:
    from xdsl.transforms.canonicalize import CanonicalizePass

    return CanonicalizePass


# For passes whose class has no docstring (xDSL's cse and dce).
SUMMARIES = {
    "cse": "Common subexpression elimination of pure ops.",
    "dce": "Removes pure ops whose results are unused.",
}

PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "canonicalize": _canonicalize,
    "cse": _cse,
    "dce": _dce,
}


def passes() -> list[dict[str, object]]:
    """Every registered pass with its options (name, type, default) and the first line of its docstring."""
    import dataclasses

    rows = []
    for key, factory in sorted(PASSES.items()):
        cls = factory()
        opts = [
            {"name": f.name, "type": str(f.type), "default": None if f.default is dataclasses.MISSING else f.default}
            for f in dataclasses.fields(cls)
        ] if dataclasses.is_dataclass(cls) else []
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({"name": key, "options": opts, "summary": doc[0] if doc else SUMMARIES.get(key, "")})
    return rows


def parse(spec: str) -> list[ModulePass]:
    """The passes a pipeline string names, options validated; errors name the closest valid names."""
    spec = spec.strip()
    if not spec:
        return []
    try:
        specs = list(parse_pipeline(spec))
    except ArgSpecParseError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise PipelineError(f"cannot parse pipeline {spec!r}: {lines[-1].strip() if lines else e}") from None
    passes = []
    for s in specs:
        if s.name not in PASSES:
            raise PipelineError(f"unknown pass {s.name!r}" + suggestion(s.name, PASSES) + " ('masec passes' lists them)")
        cls = PASSES[s.name]()
        try:
            passes.append(cls.from_pass_spec(s))
        except Exception as e:  # xDSL reports unknown/ill-typed options as various exceptions
            raise PipelineError(f"pass {s.name!r}: {str(e).strip().splitlines()[0]}") from None
    return passes


def run_pipeline(model: Model, spec: str) -> Model:
    """Run ``spec`` on ``model`` in place, verifying after every pass; returns the model."""
    passes = parse(spec)
    ctx = make_context()
    for p in passes:
        PassPipeline((p,)).apply(ctx, model.module)
        try:
            model.module.verify()
        except Exception as e:
            raise PipelineError(f"IR does not verify after pass {p.name!r}: {str(e).strip().splitlines()[-1]}") from None
    return model
