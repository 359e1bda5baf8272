"""HLS C++ backend (``--target hls``): each dataflow kernel a C++ function template with HLS
pragmas, checked by ``masec sim out/ --csim`` (g++, bit for bit against the hardware-exact
interpreter).  The package holds:

- ``include/masec_int.h``: the bit-accurate integer header the emitted code uses
  (``masec::Int<W, S>``, rounding shifts, ``requantize``, ``Fixed<W, F, S>``,
  ``dot<N>``, MXINT8 block dot products), header-only C++17 and tested
  bit for bit against :mod:`mase_compiler.numerics` in ``tests/test_hls_int.py``;
- :mod:`._gxx`: finding g++, compiling a C++ file against that header with
  warnings as errors, and running the result;
- ``include/masec_ops.h``: one template per dataflow op (linear, matmul, gather,
  rescale, add, lut, softmax, layer norm), bit-exact with ``numerics.intops``;
- :mod:`._emit`: ``emit(model, out)`` writes HLS C++ for a lowered model from its
  hardware graph (one call per kernel under ``#pragma HLS DATAFLOW``, constant
  arrays, a testbench and golden vectors from the hardware-exact interpreter);
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
