"""HLS C++ backend (``--target hls``), in progress.

The package will hold the emitter that writes each dataflow kernel as a C++
function with HLS pragmas, and ``masec sim out/ --csim``, which compiles the
emitted C++ with g++ and compares its outputs bit for bit with the
hardware-exact interpreter (issue 6, docs/DESIGN §6).  What exists so far:

- ``include/masec_int.h``: the bit-accurate integer header the emitted code uses
  (``masec::Int<W, S>``, rounding shifts, ``requantize``, ``Fixed<W, F, S>``,
  ``dot<N>``, MXINT8 block dot products), header-only C++17 and tested
  bit for bit against :mod:`mase_compiler.numerics` in ``tests/test_hls_int.py``;
- :mod:`._gxx`: finding g++, compiling a C++ file against that header with
  warnings as errors, and running the result;
- :mod:`._emit`: ``emit(model, out)`` writes HLS C++ for a lowered
  ``dataflow.quantize -> dataflow.linear* -> dataflow.dequantize`` model (one
  pipelined function per layer, ``#pragma HLS DATAFLOW`` top, constant arrays,
  a testbench and golden vectors from the hardware-exact interpreter);
  ``simulate(out)`` compiles it with g++ and compares bit for bit (``masec sim
  --csim``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

INCLUDE_DIR = Path(__file__).parent / "include"
"""Folder holding ``masec_int.h``; pass it to the compiler as ``-I``."""

from ._emit import emit  # noqa: E402  (INCLUDE_DIR first: the emitter reads it)
from ._emit import run as simulate  # noqa: E402


def run(out: Path, inputs: Mapping[str, object] | None = None, device: str = "cpu") -> dict:
    """The target contract's ``run``: HLS C++ is checked by C-simulation, not run on new inputs."""
    from .. import BackendError

    raise BackendError(f"an --target hls output is checked bit for bit by C-simulation: run 'masec sim {out} --csim'")


__all__ = ["INCLUDE_DIR", "emit", "run", "simulate"]
