"""Element types of the IR and their torch dtypes."""

from __future__ import annotations

import torch
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
    TensorType,
    UnrankedTensorType,
)
from xdsl.ir import Attribute

_INT = {
    (1, False): torch.bool,
    (8, True): torch.int8,
    (8, False): torch.uint8,
    (16, True): torch.int16,
    (16, False): torch.uint16,
    (32, True): torch.int32,
    (32, False): torch.uint32,
    (64, True): torch.int64,
    (64, False): torch.uint64,
}


def torch_dtype(t: Attribute) -> torch.dtype:
    """torch dtype of a tensor type or element type (i1 is bool, ``ui8`` is uint8)."""
    if isinstance(t, (TensorType, UnrankedTensorType)):
        t = t.element_type
    if isinstance(t, Float32Type):
        return torch.float32
    if isinstance(t, Float16Type):
        return torch.float16
    if isinstance(t, BFloat16Type):
        return torch.bfloat16
    if isinstance(t, Float64Type):
        return torch.float64
    if isinstance(t, IntegerType):
        width = t.width.data
        signed = t.signedness.data != Signedness.UNSIGNED and width != 1
        if (width, signed) in _INT:
            return _INT[(width, signed)]
    raise TypeError(f"no torch dtype for element type {t}")


def element_type_of(dtype: torch.dtype) -> Attribute:
    """IR element type of a torch dtype (inverse of :func:`torch_dtype`)."""
    from xdsl.dialects.builtin import bf16, f16, f32, f64

    floats = {torch.float32: f32, torch.float16: f16, torch.bfloat16: bf16, torch.float64: f64}
    if dtype in floats:
        return floats[dtype]
    for (width, signed), dt in _INT.items():
        if dt == dtype:
            if width == 1:
                return IntegerType(1)
            return IntegerType(width, Signedness.SIGNLESS if signed else Signedness.UNSIGNED)
    raise TypeError(f"no IR element type for {dtype}")
