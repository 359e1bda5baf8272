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
  warnings as errors, and running the result.
"""

from __future__ import annotations

from pathlib import Path

INCLUDE_DIR = Path(__file__).parent / "include"
"""Folder holding ``masec_int.h``; pass it to the compiler as ``-I``."""

__all__ = ["INCLUDE_DIR"]
