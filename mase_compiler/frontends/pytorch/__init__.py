"""The PyTorch frontend: ``nn.Module`` -> torch.export -> torch-mlir's FX importer -> graph dialect.

    model = import_module(module.eval(), (input_ids, attention_mask), input_names=["input_ids", "attention_mask"])

Steps (DESIGN.md §1):

1. ``torch.export`` traces the module (non-strict), then decomposes to core ATen,
   keeping the few ops that map one-to-one onto graph ops (``linear``,
   ``matmul``, ``layer_norm``, ...) and ``scaled_dot_product_attention``.
2. torch-mlir's FX importer turns the program into the ``torch`` dialect.
   Parameters and buffers do not go into the text: importer hooks emit
   ``"masec.param"() {name = "<FQN>"}`` and the tensors are taken from the
   exported program directly (``_export``).
3. xDSL parses the generic-form text with a stub ``!torch.vtensor`` type (``_torch_ir``).
4. Each torch op is converted to graph ops (``_lower`` walks, ``_ops_*`` convert).  Parameters
   and persistent buffers become ``graph.weight`` entries named by their FQN;
   ops whose inputs are all known at import time (non-persistent buffers,
   constants, static shapes) are folded by running the ATen op.

Unsupported ops stop the import with one :class:`FrontendError` that names every
unsupported op type with the source location of its first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from xdsl.dialects.func import FuncOp

from ...model import Model
from ...weights import WeightStore
from ..errors import FrontendError
from . import _ops_basic, _ops_nn, _ops_shape  # noqa: F401  (register the converters)
from ._export import export, to_torch_mlir
from ._lower import CONVERTERS, Lowering
from ._torch_ir import parse

__all__ = ["FrontendError", "import_module", "supported_ops"]


def import_module(module: torch.nn.Module, example_inputs: tuple | list | Mapping[str, Any], *,
                  input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                  dynamic_shapes: Any = None) -> Model:
    """Import ``module`` (in eval mode) traced on ``example_inputs`` into a graph-dialect :class:`Model`.

    ``example_inputs``: a tuple of positional arguments, or a dict of keyword
    arguments.  ``input_names`` default to the names of the forward's
    parameters (the dict's keys); ``output_names`` to ``output`` (one output)
    or ``output0``, ``output1``, ...  ``dynamic_shapes`` is passed to
    ``torch.export.export`` (e.g. ``({0: Dim("batch")},)``); dims it leaves
    static are static in the IR.
    """
    if not isinstance(module, torch.nn.Module):
        raise FrontendError(f"module must be a torch.nn.Module, not {type(module).__name__}")
    if module.training:
        raise FrontendError("module must be in eval mode (call module.eval() first), not training mode")
    if isinstance(example_inputs, Mapping):
        args, kwargs = (), dict(example_inputs)
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    else:
        raise FrontendError(f"example_inputs must be a tuple or a dict, not {type(example_inputs).__name__}")

    prog = export(module, args, kwargs, dynamic_shapes)
    tm = to_torch_mlir(prog)
    names = list(input_names) if input_names is not None else tm.input_names
    torch_module = parse(tm.text)
    func = next(op for op in torch_module.ops if isinstance(op, FuncOp) and op.sym_name.data == "main")
    if len(names) != len(func.args):
        raise FrontendError(f"input_names must name the {len(func.args)} tensor inputs, not {len(names)}")
    weights = WeightStore()
    graph_module = Lowering(tm, weights).run(func, names, output_names)
    model = Model(graph_module, weights)
    try:
        model.verify()
    except Exception as e:  # a converter bug: say so rather than hand back invalid IR
        raise FrontendError(f"internal error: the imported IR does not verify: {str(e).strip().splitlines()[-1]}") from e
    return model


def supported_ops() -> list[str]:
    """The torch ops the frontend converts (ATen names without the ``torch.`` prefix)."""
    return sorted(CONVERTERS)
