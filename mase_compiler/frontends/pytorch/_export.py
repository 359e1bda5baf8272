"""nn.Module -> torch.export -> torch-mlir's FX importer -> generic-form MLIR text, without weights.

torch-mlir would put every parameter into the text as a ``dense_resource`` blob
(all-MiniLM-L6-v2: ~180 MB, and each tensor goes through ``tolist()``).  Instead
importer hooks turn every parameter, buffer and lifted constant into
``"masec.param"() {name = "<FQN>"}`` and the tensors are handed over directly.
Using ``FxImporter.import_program`` (not ``import_frozen_program``) also takes
non-persistent buffers (HF BERT's ``position_ids``) from the program's
constants, where ``import_frozen_program`` looks only in the state dict and fails.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import ConstantArgument, InputKind, TensorArgument

from ..errors import FrontendError

PARAM_OP = "masec.param"


@dataclass
class StateTensor:
    """A parameter, buffer or constant of the exported program.

    ``weight``: a parameter or persistent buffer, which goes to the weight store under its FQN;
    otherwise a constant (non-persistent buffer, lifted tensor constant) that the
    converter may fold at import time.
    """

    tensor: torch.Tensor
    weight: bool


@dataclass
class TorchMLIR:
    text: str
    locations: list[str]  # "node <fx name> at <file>:<line>" of each top-level op of @main, in order
    state: dict[str, StateTensor] = field(default_factory=dict)
    input_names: list[str] = field(default_factory=list)


def _decomposition_table() -> dict:
    """Core ATen, except ops that map one-to-one onto graph ops (linear, matmul, layer_norm,
    rms_norm, silu, hardtanh, softplus) and scaled_dot_product_attention, whose decomposition in
    torch 2.13 changes output strides so that HF GPT-2's later ``view`` fails (``_ops_nn`` lowers it)."""
    table = torch.export.default_decompositions()
    aten = torch.ops.aten
    for op in (aten.linear.default, aten.matmul.default, aten.layer_norm.default, aten.rms_norm.default, aten.silu.default,
               aten.hardtanh.default, aten.softplus.default, aten.scaled_dot_product_attention.default):
        table.pop(op, None)
    return table


def export(module: torch.nn.Module, args: tuple, kwargs: dict, dynamic_shapes: Any) -> ExportedProgram:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecation noise (pytree LeafSpec)
        try:
            prog = torch.export.export(module, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
        except Exception as e:  # torch.export raises many types (UserError, Unsupported, RuntimeError, ...)
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise FrontendError(f"torch.export failed: {type(e).__name__}: {first}") from e
        return prog.run_decompositions(_decomposition_table())


def to_torch_mlir(prog: ExportedProgram) -> TorchMLIR:
    from torch_mlir import ir
    from torch_mlir.dialects import torch as torch_d
    from torch_mlir.extras.fx_importer import FxImporter, FxImporterHooks

    names = []
    for spec in prog.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT or isinstance(spec.arg, ConstantArgument):
            continue  # constant inputs are baked into the program
        if not isinstance(spec.arg, TensorArgument):
            raise FrontendError(f"input {spec.arg.name!r} must be a tensor, not {type(spec.arg).__name__}")
        names.append(spec.arg.name)
    state: dict[str, StateTensor] = {}
    constant_names = {id(t): name for name, t in prog.constants.items() if isinstance(t, torch.Tensor)}

    def param_op(name: str, tensor: torch.Tensor, weight: bool, ir_type) -> Any:
        state.setdefault(name, StateTensor(tensor, weight))
        return ir.Operation.create(PARAM_OP, results=[ir_type], attributes={"name": ir.StringAttr.get(name)}).result

    class Hooks(FxImporterHooks):
        def resolve_input(self, gni, value, info):
            spec = info.input_spec
            weight = spec.kind == InputKind.PARAMETER or (spec.kind == InputKind.BUFFER and spec.persistent)
            return param_op(spec.target, value, weight, info.ir_type)

        def resolve_literal(self, gni, literal, info):
            if not isinstance(literal, torch.Tensor):
                return None
            name = constant_names.get(id(literal)) or f"literal{len(state)}"
            return param_op(name, literal, False, gni._cc.get_vtensor_type(literal.size(), literal.dtype))

    context = ir.Context()
    torch_d.register_dialect(context)
    context.allow_unregistered_dialects = True
    importer = FxImporter(context=context, hooks=Hooks())
    _name_locations(importer, ir)
    try:
        func = importer.import_program(prog, func_name="main")
    except Exception as e:
        raise FrontendError(f"torch-mlir's FX importer failed: {type(e).__name__}: {e}") from e
    locations = [_describe_location(str(op.location)) for op in func.regions[0].blocks[0].operations]
    text = importer.module.operation.get_asm(print_generic_op_form=True, large_elements_limit=64)
    if "dense_resource" in text:
        raise FrontendError("internal error: a tensor literal was not routed to the weight store")
    return TorchMLIR(text, locations, state, names)


def _name_locations(importer: Any, ir: Any) -> None:
    """Wrap each op's location in its FX node's name (``loc("addmm"(callsite(...)))``) for error messages."""
    from torch_mlir.extras.fx_importer import ContextCache

    class NamedLocations(ContextCache):
        __slots__ = ()

        def get_node_location(self, node: Any) -> Any:
            loc = super().get_node_location(node)
            return ir.Location.name(node.name, childLoc=loc if loc is not None else ir.Location.unknown(self._c), context=self._c)

    importer._cc = NamedLocations(importer._c, py_attr_tracker=importer._py_attr_tracker)


_NODE = re.compile(r'^loc\("([^"]+)"')
_FILE_LINE = re.compile(r'"([^"]+)":(\d+)')


def _describe_location(loc: str) -> str:
    """``node <name> at <file>:<line>`` from an MLIR location (the innermost frame of its call stack)."""
    node, frame = _NODE.search(loc), _FILE_LINE.search(loc.split('"(', 1)[-1])
    where = f"{frame.group(1)}:{frame.group(2)}" if frame else ""
    if node is None:
        return where
    return f"node {node.group(1)}" + (f" at {where}" if where else "")
