"""Variants of the lowered 16->8->4 int8 MLP that the SV and HLS emitter tests both use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from mase_compiler.interpreter import Interpreter
from mase_compiler.model import Model
from mase_compiler.numerics.requant import requantize

from test_lower_dataflow import PIPELINE, _lowered  # noqa: F401  (re-exported for the emitter tests)


def inputs(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)) * 2


def with_zero_points(hw: Model) -> Model:
    """Nonzero zero points on both sides of the hidden codes and a narrower clamp."""
    text = hw.text()
    text = text.replace("zp_in = 0 : i64", "zp_in = -5 : i64", 1)           # layer 1 input zero point
    text = text.replace("zp_out = 0 : i64, lo = 0 : i64, hi = 127 : i64",  # layer 1 output
                        "zp_out = 9 : i64, lo = -100 : i64, hi = 90 : i64", 1)
    text = text.replace("zp_in = 0 : i64", "zp_in = 9 : i64", 1)            # layer 2 input
    assert "zp_in = -5" in text and "zp_out = 9" in text and "zp_in = 9" in text
    return Model.parse(text, hw.weights)


def with_ties(hw: Model, x: torch.Tensor) -> Model:
    """Layer 1 with M/2^S = 2^-7 exactly, so that rounding ties are common on ``x``: a requantizer that
    rounds half up (= half away once relu clamps negatives to 0) differs from half to even."""
    hw.weights["w1.m"] = np.full(8, 1 << 30, dtype=np.int64)
    hw.weights["w1.s"] = np.full(8, 37, dtype=np.int64)
    seen = {}
    Interpreter(hw)({"x": x}, observe=lambda op, ins, outs: seen.setdefault(op.name, ins[0]))
    acc = (seen["dataflow.linear"].to(torch.int64) @ torch.as_tensor(hw.weights["w1.codes"]).to(torch.int64)
           + torch.as_tensor(hw.weights["w1.bias_q"]).to(torch.int64))
    even = requantize(acc, 1 << 30, 37, 0, 0, 127, mode="even")
    away = requantize(acc, 1 << 30, 37, 0, 0, 127, mode="away")
    assert int((even != away).sum()) > 0  # the inputs do exercise ties
    return hw


def with_softmax(hw: Model) -> Model:
    """The lowered MLP followed by a graph.softmax: an op no hardware backend supports."""
    text = hw.text().replace(
        "func.return %3 : tensor<?x4xf32>",
        "%4 = graph.softmax %3 {axis = -1 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32>\n    func.return %4 : tensor<?x4xf32>")
    return Model.parse(text, hw.weights)


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mase_compiler.cli", *argv], capture_output=True, text=True)


def cli_compile(tmp_path: Path, target: str) -> tuple[subprocess.CompletedProcess, Path]:
    """``masec compile`` of the MLP (ONNX + calibration .npz written into ``tmp_path``) with lower-dataflow."""
    from test_quantize import _calib, _model

    _model(tmp_path)  # writes tmp_path/mlp.onnx
    np.savez(tmp_path / "calib.npz", x=np.concatenate([b["x"] for b in _calib()]))
    out = tmp_path / "out"
    res = cli("compile", str(tmp_path / "mlp.onnx"), "-p", f"{PIPELINE},lower-dataflow", "--target", target,
              "--calib", str(tmp_path / "calib.npz"), "-o", str(out))
    return res, out
