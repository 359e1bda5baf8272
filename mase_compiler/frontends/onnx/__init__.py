"""The ONNX frontend: ``import_onnx(path_or_model) -> Model``.

Opsets 13–24 of the default domain; external data included.  Weights are not
copied: large initializers become weight-store entries that are numpy views of
the memory-mapped file (or of the external data files).  Shape inference
(with data propagation) gives every value its type; symbolic dims become ``?``.
Float initializers and anything over 16 elements go to the weight store
(``graph.weight``, named as in the ONNX file); small integer ones become
``graph.constant``.  Nodes computing on small constants are folded.

Errors are one line (:class:`FrontendError`): a file that is not ONNX, an opset
outside 13–24, a dangling input, or the list of every unsupported op type with
one node of each.
"""

from __future__ import annotations

import os

import onnx
from xdsl.ir import Attribute

from ...dialects.graph import tensor_type
from ...model import Model
from ..errors import FrontendError
from . import _ops  # noqa: F401  (registers the converters)
from ._importer import CONVERTERS, DEFAULT_DOMAINS, MAX_OPSET, MIN_OPSET, Importer, element_type, node_label
from ._load import load

__all__ = ["FrontendError", "SUPPORTED_OPS", "import_onnx"]

SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(CONVERTERS))


def import_onnx(src: str | os.PathLike | onnx.ModelProto, base_dir: str | os.PathLike | None = None) -> Model:
    """Import an ONNX file (or ModelProto) as a graph-dialect :class:`Model`.

    ``base_dir`` is where external data files are looked up (default: the file's
    directory; required for a ModelProto whose initializers use external data).
    """
    loaded = load(src, base_dir)
    model = loaded.model
    opset = _check_opset(model)
    if model.functions:
        try:
            model = onnx.inliner.inline_local_functions(model)
        except Exception as e:
            raise FrontendError(f"cannot inline the model's local functions: {e}") from None
        loaded.model = model
    _check_ops(model.graph)
    types = _infer_types(model)
    model_ir = Importer(loaded, types, opset).run()
    try:
        model_ir.verify()
    except Exception as e:  # an importer bug: say which op
        raise FrontendError(f"the imported IR does not verify: {str(e).strip().splitlines()[-1]}") from None
    return model_ir


def _check_opset(model: onnx.ModelProto) -> int:
    if not model.HasField("graph"):
        raise FrontendError("the ONNX model has no graph (truncated or not an ONNX file?)")
    versions = {o.domain: o.version for o in model.opset_import}
    default = [versions[d] for d in DEFAULT_DOMAINS if d in versions]
    if not default:
        raise FrontendError("the ONNX model imports no opset of the default domain (truncated or not an ONNX file?)")
    v = default[0]
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise FrontendError(f"ONNX opset must be between {MIN_OPSET} and {MAX_OPSET}, not {v}")
    return v


def _check_ops(graph: onnx.GraphProto) -> None:
    """One error listing every unsupported op type, with the first node of each."""
    first: dict[str, str] = {}
    for i, node in enumerate(graph.node):
        if node.domain not in DEFAULT_DOMAINS:
            key = f"{node.domain}.{node.op_type}"
        elif node.op_type not in CONVERTERS:
            key = node.op_type
        else:
            continue
        first.setdefault(key, node_label(node, i))
    if first:
        raise FrontendError("unsupported ONNX ops: " + ", ".join(f"{k} ({v})" for k, v in first.items()))


def _infer_types(model: onnx.ModelProto) -> dict[str, Attribute]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:
        raise FrontendError(f"ONNX shape inference failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    types: dict[str, Attribute] = {}
    g = inferred.graph
    for vi in (*g.input, *g.value_info, *g.output):
        if not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if tt.elem_type == 0:
            continue
        try:
            elem = element_type(tt.elem_type, f"value '{vi.name}'")
        except FrontendError:
            continue
        if tt.HasField("shape"):
            types[vi.name] = tensor_type(elem, [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim])
        else:
            types[vi.name] = tensor_type(elem, None)
    return types

