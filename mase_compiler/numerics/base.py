"""The contract every number format satisfies.

A format is an immutable value (a frozen dataclass): two formats are equal when
they quantize identically, and ``str(fmt)`` is its canonical spec string, the
same text users type (``parse(str(fmt)) == fmt``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch

from .packing import unpack_bits


@dataclass(frozen=True)
class Encoded:
    """Packed codes plus whatever shared data decoding needs.

    ``codes`` is a flat uint8 bit stream (:mod:`.packing`); ``scales`` are float32
    scales for scaled integer formats or uint8 E8M0 codes for MX; ``zero_points``
    are int32 for asymmetric integers.  ``layout`` is the shape of the element
    tensor the codes fill, in code order (after block/group reshaping); decoding
    reshapes back to ``shape``.
    """

    format: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    codes: torch.Tensor
    bits: int
    layout: tuple[int, ...]
    scales: torch.Tensor | None = None
    zero_points: torch.Tensor | None = None
    axis: int = -1
    meta: dict[str, int] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the packed codes and all shared data."""
        total = self.codes.numel() * self.codes.element_size()
        for t in (self.scales, self.zero_points):
            if t is not None:
                total += t.numel() * t.element_size()
        return total

    def unpacked_codes(self) -> torch.Tensor:
        """The codes as int64, one per element of ``layout``."""
        count = 1
        for d in self.layout:
            count *= d
        return unpack_bits(self.codes, self.bits, count).view(self.layout)


class Format(abc.ABC):
    """A number format: quantize, encode, decode and describe itself."""

    @property
    @abc.abstractmethod
    def spec(self) -> str:
        """Canonical spec string."""

    @property
    @abc.abstractmethod
    def bits_per_element(self) -> float:
        """Storage bits per element, shared scales included where they are per block/group."""

    @abc.abstractmethod
    def quantize(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Fake-quantize: same shape and dtype, every value exactly representable."""

    @abc.abstractmethod
    def encode(self, x: torch.Tensor, **kwargs) -> Encoded:
        """Quantize and pack into codes plus shared scales."""

    @abc.abstractmethod
    def decode(self, enc: Encoded) -> torch.Tensor:
        """Values of an :class:`Encoded`; ``decode(encode(x)) == quantize(x)`` bit for bit."""

    @abc.abstractmethod
    def describe(self) -> dict[str, object]:
        """Facts for ``masec formats``: family, range, smallest subnormal, scale kind."""

    def __str__(self) -> str:
        return self.spec


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Precision quantization arithmetic runs in: float64 stays, others use float32."""
    if not x.is_floating_point():
        raise TypeError(f"quantize expects a floating-point tensor, not {x.dtype}")
    return torch.float64 if x.dtype == torch.float64 else torch.float32
