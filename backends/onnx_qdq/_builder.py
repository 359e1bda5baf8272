"""A small ONNX graph builder: unique value names, nodes, initializers and constants.

The exporters in :mod:`._graph` and :mod:`._qdq` append nodes through it; it
maps each xDSL SSA value to its ONNX value name and materializes
``graph.weight`` initializers only when some node reads the float weight (a
weight that only feeds a ``quant.cast`` is stored quantized instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from xdsl.ir import Attribute, SSAValue

from .. import BackendError
from ...dialects.graph import shape_of
from ...interpreter.dtypes import torch_dtype

_ONNX_TYPES = {
    torch.float32: TensorProto.FLOAT, torch.float16: TensorProto.FLOAT16, torch.bfloat16: TensorProto.BFLOAT16,
    torch.float64: TensorProto.DOUBLE, torch.bool: TensorProto.BOOL, torch.int8: TensorProto.INT8,
    torch.uint8: TensorProto.UINT8, torch.int16: TensorProto.INT16, torch.uint16: TensorProto.UINT16,
    torch.int32: TensorProto.INT32, torch.uint32: TensorProto.UINT32, torch.int64: TensorProto.INT64,
    torch.uint64: TensorProto.UINT64,
}


def onnx_elem_type(t: Attribute) -> int:
    """TensorProto element type of an IR tensor or element type (through the interpreter's dtype mapping)."""
    try:
        return _ONNX_TYPES[torch_dtype(t)]
    except (TypeError, KeyError):
        raise BackendError(f"element type {t} has no ONNX equivalent; use --target pytorch") from None


def np_dtype(elem: int) -> np.dtype:
    """numpy dtype of a TensorProto element type (ml_dtypes for bfloat16, float8, int4)."""
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor as numpy (bfloat16 through ml_dtypes, which numpy lacks)."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def value_info(name: str, t: Attribute, dim_prefix: str) -> onnx.ValueInfoProto:
    """Graph input/output declaration; symbolic dims become ``dim_param`` names."""
    shape = shape_of(t)
    dims = None if shape is None else [f"{dim_prefix}_d{i}" if d < 0 else d for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, onnx_elem_type(t), dims)


class Builder:
    """Accumulates the nodes and initializers of one ONNX graph."""

    def __init__(self, weights) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.names: dict[SSAValue, str] = {}
        self.lazy_weights: dict[SSAValue, str] = {}  # graph.weight results not yet emitted
        self.static: dict[SSAValue, np.ndarray] = {}  # values known at compile time (weights, constants)
        self._used: set[str] = set()
        self._consts: dict[tuple, str] = {}

    # ---- names -----------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A value name not used before in this graph, derived from ``base``."""
        name, i = base, 1
        while name in self._used:
            name = f"{base}_{i}"
            i += 1
        self._used.add(name)
        return name

    def reserve(self, names) -> None:
        """Keep ``names`` (the graph's output names) away from internal values."""
        self._used.update(names)

    def bind(self, value: SSAValue, name: str) -> None:
        self.names[value] = name

    def name(self, value: SSAValue) -> str:
        """The ONNX name of ``value``, emitting its weight initializer on first use."""
        if value not in self.names and value in self.lazy_weights:
            wname = self.lazy_weights[value]
            self.names[value] = self.initializer(wname, np.asarray(self.weights[wname]))
        return self.names[value]

    # ---- nodes and tensors -----------------------------------------------------------------
    def node(self, op_type: str, inputs: Sequence[str], n_out: int = 1, base: str | None = None, **attrs) -> list[str]:
        """Append a node; returns its fresh output names."""
        outs = [self.fresh(f"{base or op_type}_{i}" if n_out > 1 else (base or op_type)) for i in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"n_{outs[0]}"), **attrs))
        return outs

    def node1(self, op_type: str, inputs: Sequence[str], base: str | None = None, **attrs) -> str:
        return self.node(op_type, inputs, 1, base, **attrs)[0]

    def initializer(self, base: str, array: np.ndarray) -> str:
        name = self.fresh(base)
        self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def const(self, value, dtype) -> str:
        """A small constant initializer, shared between uses of the same value."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.initializer("const", arr)
        return self._consts[key]

    def f32(self, value) -> str:
        return self.const(value, np.float32)

    def i64(self, value) -> str:
        return self.const(value, np.int64)

    # ---- accounting ------------------------------------------------------------------------
    def initializer_bytes(self) -> int:
        """Bytes of all initializer payloads (int4 packs two codes a byte)."""
        total = 0
        for t in self.initializers.values():
            n = int(np.prod(t.dims)) if len(t.dims) else 1
            if t.data_type in (TensorProto.INT4, TensorProto.UINT4, TensorProto.FLOAT4E2M1):
                total += (n + 1) // 2
            else:
                total += n * np_dtype(t.data_type).itemsize
        return total

