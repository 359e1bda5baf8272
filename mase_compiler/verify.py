"""Threshold gates on a compiled model for CI (``masec verify OUT --min-cosine 0.99``).

``verify(out, ...)`` runs the artifact that ``masec compile`` emitted into
``OUT`` (the compile's backend, or the IR itself with ``backend="ir"``) on the
reference inputs of ``reference.npz`` and compares every output

- with ``fp32/<name>``, the FP32 model's outputs: cosine similarity, SQNR (dB),
  relative error ``‖y - y_fp32‖ / ‖y_fp32‖`` and max abs error; these are what
  the ``min_cosine``/``min_sqnr``/``max_rel_error`` thresholds gate;
- with ``quantized/<name>``, the interpreter's outputs of the quantized IR: the
  fraction of elements that match exactly and the largest difference (a backend
  must reproduce the interpreter: bit for bit for pytorch, up to float
  reassociation for ONNX Runtime; ``min_match`` gates the fraction).

The verdict, every metric and every check come back as a :class:`VerifyResult`,
which also renders itself as JSON and as JUnit XML (one testcase per output and
metric) for CI dashboards.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .metrics import compare
from .report import ReportError, check_out_dir, json_text, load_compile_info, load_quantized, load_reference, write_atomic

__all__ = ["BACKENDS", "Check", "VerifyError", "VerifyResult", "verify"]

BACKENDS = ("auto", "ir", "pytorch", "onnx")


class VerifyError(ReportError):
    """Arguments or an output directory that verify cannot work with (exit status 2)."""


@dataclass(frozen=True)
class Check:
    """One gate: ``metric`` of ``output`` against ``threshold`` (``kind`` is ``min`` or ``max``)."""

    output: str
    metric: str
    value: float
    threshold: float
    kind: str

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.kind == "min" else self.value <= self.threshold

    def describe(self) -> str:
        """``last_hidden_state cosine 0.9512 < 0.99``: what failed and by how much."""
        rel = (">=" if self.passed else "<") if self.kind == "min" else ("<=" if self.passed else ">")
        return f"{self.output} {self.metric} {self.value:.6g} {rel} {self.threshold:g}"


@dataclass
class VerifyResult:
    """Outcome of :func:`verify`: the backend that ran, per-output metrics and every check."""

    out: Path
    backend: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, object]:
        return {
            "out": str(self.out), "backend": self.backend, "passed": self.passed, "outputs": self.metrics,
            "checks": [{"output": c.output, "metric": c.metric, "value": c.value, "threshold": c.threshold,
                        "kind": c.kind, "passed": c.passed} for c in self.checks],
        }

    def to_json(self) -> str:
        return json_text(self.to_dict())

    def to_junit(self) -> str:
        """JUnit XML: testsuite "masec verify", one testcase per (output, metric), ``<failure>`` where it fails."""
        suite = ET.Element("testsuite", name="masec verify", tests=str(len(self.checks)),
                           failures=str(len(self.failures)), errors="0")
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="backend", value=self.backend)
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"masec.verify.{self.backend}", name=f"{c.output}.{c.metric}")
            if not c.passed:
                ET.SubElement(case, "failure", message=c.describe(), type="threshold").text = c.describe()
        ET.indent(suite)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

    def write_json(self, path: str | os.PathLike) -> None:
        write_atomic(Path(path), self.to_json())

    def write_junit(self, path: str | os.PathLike) -> None:
        write_atomic(Path(path), self.to_junit())


def _check_thresholds(min_cosine: float | None, min_sqnr: float | None, max_rel_error: float | None,
                      min_match: float | None) -> None:
    if min_cosine is None and min_sqnr is None and max_rel_error is None and min_match is None:
        raise VerifyError("verify needs at least one threshold: --min-cosine, --min-sqnr, --max-rel-error or --min-match")
    for flag, v, lo, hi in (("--min-cosine", min_cosine, -1.0, 1.0), ("--min-match", min_match, 0.0, 1.0)):
        if v is not None and not lo <= v <= hi:
            raise VerifyError(f"{flag} must be in [{lo:g}, {hi:g}], not {v:g}")
    if min_sqnr is not None and math.isnan(min_sqnr):
        raise VerifyError("--min-sqnr must be a number of dB, not nan")
    if max_rel_error is not None and not max_rel_error >= 0:
        raise VerifyError(f"--max-rel-error must be >= 0, not {max_rel_error:g}")


def _run_backend(out: Path, backend: str, inputs: Mapping[str, np.ndarray], device: str) -> tuple[str, dict[str, torch.Tensor]]:
    """Run what ``out`` holds for ``backend``; returns the backend that actually ran and its outputs."""
    if backend not in BACKENDS:
        raise VerifyError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        info = load_compile_info(out)
        if info is None:
            raise VerifyError(f"{out / 'compile.json'} does not exist, so the target is unknown: pass --backend ir, pytorch or onnx")
        target = info.get("target")
        if not isinstance(target, str):
            raise VerifyError(f"{out / 'compile.json'} names no target: pass --backend ir, pytorch or onnx")
        backend = target
    if backend == "ir":
        from .interpreter import Interpreter

        return "ir", Interpreter(load_quantized(out), device)(inputs)
    from .backends import backend as get_backend

    try:
        module = get_backend(backend)
    except ImportError as e:
        raise VerifyError(f"the {backend} backend cannot be loaded ({e}): pass --backend ir to verify the IR") from None
    return backend, module.run(out, inputs, device)


def _exact_match(ref: np.ndarray, y: torch.Tensor) -> float:
    """Fraction of elements of ``y`` equal to ``ref`` (NaN matches NaN)."""
    r = torch.from_numpy(np.ascontiguousarray(ref)).flatten()
    t = y.detach().cpu().flatten()
    if r.numel() != t.numel():
        return 0.0
    if r.numel() == 0:
        return 1.0
    if r.is_floating_point() or t.is_floating_point():
        r, t = r.double(), t.double()
        return float(((r == t) | (torch.isnan(r) & torch.isnan(t))).double().mean())
    return float((r.long() == t.long()).double().mean())


def verify(out_dir: str | os.PathLike, min_cosine: float | None = None, min_sqnr: float | None = None,
           max_rel_error: float | None = None, backend: str = "auto", min_match: float | None = None,
           device: str = "cpu") -> VerifyResult:
    """Run ``OUT``'s artifact on its reference inputs and check every output against the thresholds.

    Raises :class:`VerifyError` (one line) for a missing directory or reference, a bad
    threshold, no threshold at all, or a backend whose outputs are not the reference's.
    """
    _check_thresholds(min_cosine, min_sqnr, max_rel_error, min_match)
    out = check_out_dir(out_dir)
    ref = load_reference(out)
    if not ref["fp32"]:
        raise VerifyError(f"{out / 'reference.npz'} has no fp32/<name> arrays: recompile into {out}")
    ran, outputs = _run_backend(out, backend, ref["input"], device)
    missing = [n for n in ref["fp32"] if n not in outputs]
    if missing:
        raise VerifyError(f"the {ran} backend returned outputs {', '.join(outputs) or 'none'}, but reference.npz has {', '.join(ref['fp32'])}")
    result = VerifyResult(out, ran)
    for name, fp32 in ref["fp32"].items():
        y = outputs[name].detach().cpu()
        if tuple(y.shape) != fp32.shape:
            raise VerifyError(f"output {name!r} of the {ran} backend has shape {list(y.shape)}, but reference.npz has {list(fp32.shape)}")
        m = compare(torch.from_numpy(np.ascontiguousarray(fp32)), y)
        metrics = {"cosine": m["cosine"], "sqnr_db": m["sqnr_db"], "rel_error": m["rel_rmse"], "max_abs_error": m["max_abs_error"]}
        if name in ref["quantized"]:
            q = ref["quantized"][name]
            metrics["exact_match"] = _exact_match(q, y)
            metrics["max_abs_vs_interpreter"] = compare(torch.from_numpy(np.ascontiguousarray(q)), y)["max_abs_error"]
        result.metrics[name] = metrics
        for metric, threshold, kind in (("cosine", min_cosine, "min"), ("sqnr_db", min_sqnr, "min"),
                                        ("rel_error", max_rel_error, "max"), ("exact_match", min_match, "min")):
            if threshold is not None:
                value = metrics.get(metric, math.nan)  # no quantized/<name>: the match check fails
                result.checks.append(Check(name, metric, float(value), float(threshold), kind))
    return result
