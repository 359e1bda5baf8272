"""Storage of a tensor in a number format: packed codes plus every shared scale.

``tensor_bytes(fmt, shape, axis)`` is exact: it equals ``fmt.encode(x, axis=axis).nbytes`` for a tensor
``x`` of that shape (the packed code stream of :mod:`mase_compiler.numerics.packing`, padded to whole
bytes once per tensor, plus the shared data), with one documented difference: fixed point's scale
``2^-frac`` is a constant of the program, not data, so it costs nothing here (``encode`` carries it as a
float32 for ``decode``'s convenience).  Per family:

* scaled integers / dINT: ``ceil(n_codes * bits / 8)`` + 4 bytes (float32 scale) per tensor, channel,
  token or group, + 4 bytes (int32 zero point) per scale when asymmetric; a group format pads its last
  group along the axis (the codes of the padding are stored, as ``encode`` does);
* MX / block floating point: ``ceil(n_blocks * block * elem_bits / 8)`` + 1 byte (E8M0) per block, blocks
  along ``axis`` (default the format's, the last), the last one padded;
* minifloats: ``ceil(n * bits / 8)``, + 4 bytes when ``scaled`` (a per-tensor float32 scale, as the
  ``fp8`` preset's casts carry);
* ``None`` (left in float): 4 bytes per element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mase_compiler.numerics import FixedFormat, Format, MinifloatFormat, MXFormat, parse
from mase_compiler.numerics._scaled import DEFAULT_AXIS, ScaledGridFormat

__all__ = ["FLOAT_BITS", "bits_per_element", "tensor_bytes"]

FLOAT_BITS = 32  # an unquantized tensor is float32


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _axis(axis: int, ndim: int) -> int:
    if ndim == 0:
        return 0
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim - 1}] for a {ndim}-d shape, not {axis}")
    return axis % ndim


def _blocks(shape: tuple[int, ...], axis: int, k: int) -> int:
    """Blocks of ``k`` along ``axis`` (ragged last block padded), as ``split_blocks`` makes them."""
    if not shape:
        return 1  # a scalar is one (padded) block
    ax = _axis(axis, len(shape))
    others = _numel(shape) // shape[ax] if shape[ax] else _numel(shape[:ax] + shape[ax + 1:])
    return others * math.ceil(shape[ax] / k)


def _scale_count(fmt: ScaledGridFormat, shape: tuple[int, ...], axis: int | None) -> tuple[int, int]:
    """(number of scales, number of stored codes) of a scaled grid format."""
    ax = axis if axis is not None else fmt.axis if fmt.axis is not None else DEFAULT_AXIS[fmt.granularity]
    n = _numel(shape)
    if fmt.granularity == "group":
        groups = _blocks(shape, ax, fmt.group)
        return groups, groups * fmt.group
    if not shape:
        return 1, 1
    a = _axis(ax, len(shape))
    if fmt.granularity == "tensor":
        return 1, n
    if fmt.granularity == "channel":
        return shape[a], n
    return n // shape[a] if shape[a] else _numel(shape[:a] + shape[a + 1:]), n  # token: all dims but the axis


def tensor_bytes(fmt: Format | str | None, shape: Sequence[int], axis: int | None = None, scaled: bool = False) -> int:
    """Bytes that a tensor of ``shape`` takes in ``fmt``, shared scales and zero points included.

    ``axis`` is the cast's axis (channel / token / group / MX block axis); ``None`` takes the format's
    default.  ``scaled`` adds a per-tensor float32 scale to a minifloat.  ``fmt=None`` is float32.
    """
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"shape must have non-negative sizes, not {shape}")
    if fmt is None:
        return _numel(shape) * FLOAT_BITS // 8
    fmt = parse(fmt)
    if isinstance(fmt, MXFormat):
        nb = _blocks(shape, fmt.axis if axis is None else axis, fmt.block)
        return math.ceil(nb * fmt.block * fmt.elem.bits / 8) + nb
    if isinstance(fmt, MinifloatFormat):
        return math.ceil(_numel(shape) * fmt.bits / 8) + (4 if scaled else 0)
    if isinstance(fmt, FixedFormat):
        return math.ceil(_numel(shape) * fmt.bits / 8)
    if isinstance(fmt, ScaledGridFormat):
        scales, codes = _scale_count(fmt, shape, axis)
        per_scale = 4 if fmt.symmetric else 8  # float32 scale (+ int32 zero point)
        return math.ceil(codes * fmt.element_bits / 8) + scales * per_scale
    raise TypeError(f"format must be a scaled integer, fixed point, minifloat or MX format, not {type(fmt).__name__}")


def bits_per_element(fmt: Format | str | None, shape: Sequence[int] | None = None, axis: int | None = None,
                     scaled: bool = False) -> float:
    """Average storage bits per element: exact for ``shape`` (scales and padding included), else the
    format's asymptotic figure (``Format.bits_per_element``: per-tensor and per-channel scales count 0)."""
    if shape is None:
        return float(FLOAT_BITS) if fmt is None else parse(fmt).bits_per_element
    n = _numel(tuple(shape))
    if n == 0:
        raise ValueError("bits_per_element of an empty shape is undefined")
    return tensor_bytes(fmt, shape, axis, scaled) * 8 / n
