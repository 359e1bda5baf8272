"""The mixed-precision assignment problem: tensors, candidate formats, their errors and costs.

A problem is a list of units (layer source-node name, role, element count), each with candidate
formats.  A unit is one tensor (role ``weight`` / ``activation``, a plain format spec per choice), or a
whole layer (role ``layer``, a ``"W/A"`` format pair per choice, built by
:func:`mase_compiler.search.hardware.pair_problem`): area and energy are not separable per tensor (the
multiplier is ``w_bits x a_bits``), so only layer units can carry them exactly.  Every (unit, format)
pair carries an additive error (from a sensitivity table: noise power derived from SQNR, or KL on the
outputs) and its costs: bits per element including shared scales (exact for the tensor's shape when
the table carries them, see :class:`Table`; else the format's asymptotic figure from
:mod:`mase_compiler.numerics`), hence bytes, and optionally an area and an energy.  The model's error is
assumed to be the sum of the per-unit errors (the additive sensitivity model that MASE and HAWQ-style
searches use).

A :class:`Budget` bounds the element-weighted average bits, and optionally total bytes, area and energy.
A :class:`Solution` is one format per unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mase_compiler.numerics import parse

Role = Literal["weight", "activation", "layer"]
ROLES: tuple[Role, ...] = ("weight", "activation", "layer")
_SUFFIX = {"weight": "W", "activation": "A", "layer": "L"}
FLOAT = "none"  # a tensor left in float32 (the quantize pass's "none")


def bits_of(spec: str) -> float:
    """Storage bits per element of a format spec, shared scales included; ``none`` is float32."""
    return 32.0 if spec in (FLOAT, "float") else float(parse(spec).bits_per_element)


def error_from_sqnr(sqnr_db: float, signal_power: float = 1.0) -> float:
    """Additive error of a tensor quantized at ``sqnr_db``: its noise power, ``P / 10^(SQNR/10)``."""
    return signal_power * 10.0 ** (-sqnr_db / 10.0)


@dataclass(frozen=True)
class Tensor:
    """One unit of the search: a quantizable operand (role ``weight`` / ``activation``), or a whole layer
    (role ``layer``: its weight and activation chosen together); ``layer`` is the op's source-node name
    (what quantize's ``rules`` match)."""

    layer: str
    role: Role
    elements: int

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"tensor role must be weight, activation or layer, not {self.role!r}")
        if self.elements <= 0:
            raise ValueError(f"tensor element count must be positive, not {self.elements} ({self.layer})")

    @property
    def key(self) -> str:
        return f"{self.layer}/{_SUFFIX[self.role]}"


@dataclass(frozen=True)
class Choice:
    """A candidate format for one unit (a spec, or ``"W/A"`` for a layer unit): its additive error and costs."""

    format: str
    error: float
    bits: float  # per element, scales included
    area: float = 0.0
    energy: float = 0.0

    @classmethod
    def of(cls, spec: str, error: float, area: float = 0.0, energy: float = 0.0, bits: float | None = None) -> Choice:
        """The choice for a plain format spec; ``bits`` defaults to the format's asymptotic figure (:func:`bits_of`)."""
        return cls(spec, float(error), bits_of(spec) if bits is None else float(bits), float(area), float(energy))


class Table(dict):
    """A sensitivity table ``{Tensor: {format: error}}`` that also carries ``bits``: the exact storage bits
    per element of each ``(tensor key, format)`` for the shape it was measured on (MX padding of short
    reduction axes and every scale included, :func:`mase_compiler.cost.bits_per_element`).

    It is a plain dict to every reader; :meth:`Problem.build` takes its ``bits`` instead of the format's
    asymptotic figure, so ``Problem.build(to_table(rows))`` prices tensors exactly."""

    def __init__(self, *args, bits: Mapping[tuple[str, str], float] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bits: dict[tuple[str, str], float] = dict(bits or {})


@dataclass(frozen=True)
class Budget:
    """Limits a solution must meet; ``None`` leaves a cost unconstrained."""

    avg_bits: float | None = None
    bytes: float | None = None
    area: float | None = None  # summed over units (LUT equivalents for layer units)
    energy: float | None = None  # summed over units (pJ per inference for layer units)

    def __str__(self) -> str:
        parts = [f"{k.replace('_', ' ')} <= {v:g}" for k, v in vars(self).items() if v is not None]
        return ", ".join(parts) or "no limit"


@dataclass(frozen=True)
class Problem:
    """Tensors and, for each, its candidate choices (same order)."""

    tensors: tuple[Tensor, ...]
    choices: tuple[tuple[Choice, ...], ...]

    def __post_init__(self) -> None:
        if len(self.tensors) != len(self.choices):
            raise ValueError(f"a problem needs one choice list per tensor, not {len(self.choices)} for {len(self.tensors)}")
        keys = [t.key for t in self.tensors]
        if len(set(keys)) != len(keys):
            raise ValueError(f"tensors must be unique per (layer, role), not {sorted(k for k in keys if keys.count(k) > 1)[0]!r} twice")
        whole = {t.layer for t in self.tensors if t.role == "layer"}
        if clash := sorted(t.key for t in self.tensors if t.role != "layer" and t.layer in whole):
            raise ValueError(f"a layer unit must be the only unit of its layer, not also {clash[0]!r}")
        for t, cs in zip(self.tensors, self.choices):
            if not cs:
                raise ValueError(f"tensor {t.key} must have at least one candidate format")
            if not all(math.isfinite(c.error) and math.isfinite(c.bits) and math.isfinite(c.energy) for c in cs):
                raise ValueError(f"errors, bits and energies must be finite numbers (tensor {t.key})")
            if t.role == "layer" and not all(c.format.count("/") == 1 for c in cs):
                raise ValueError(f"layer unit {t.key} formats must be 'W/A' pairs, not {next(c.format for c in cs if c.format.count('/') != 1)!r}")

    @classmethod
    def build(cls, table: Mapping[Tensor, Mapping[str, float]], area: Mapping[tuple[str, str], float] | None = None,
              energy: Mapping[tuple[str, str], float] | None = None,
              bits: Mapping[tuple[str, str], float] | None = None) -> Problem:
        """From a sensitivity table ``{tensor: {format: error}}``; ``area`` / ``energy`` / ``bits`` map
        (tensor key, format) to that cost.  Bits come from ``bits``, else from the table's own exact
        ``bits`` (a :class:`Table`, as :func:`mase_compiler.passes.sensitivity.to_table` returns), else
        from the format's asymptotic figure."""
        area, energy = area or {}, energy or {}
        exact = {**getattr(table, "bits", {}), **(bits or {})}
        tensors = tuple(table)
        choices = tuple(tuple(Choice.of(f, e, area.get((t.key, f), 0.0), energy.get((t.key, f), 0.0), exact.get((t.key, f)))
                              for f, e in table[t].items()) for t in tensors)
        return cls(tensors, choices)

    @property
    def elements(self) -> int:
        return sum(t.elements for t in self.tensors)

    def size(self) -> int:
        """Number of distinct assignments."""
        return math.prod(len(cs) for cs in self.choices)

    def solution(self, picks: Sequence[int]) -> Solution:
        return Solution(self, tuple(int(p) for p in picks))


@dataclass(frozen=True)
class Solution:
    """One choice index per tensor, with the totals it gives."""

    problem: Problem
    picks: tuple[int, ...]

    def chosen(self) -> list[tuple[Tensor, Choice]]:
        return [(t, cs[p]) for t, cs, p in zip(self.problem.tensors, self.problem.choices, self.picks)]

    @property
    def formats(self) -> dict[tuple[str, Role], str]:
        """``{(layer, role): format}``: what :func:`mase_compiler.search.to_pipeline` takes; a layer unit's
        ``"W/A"`` gives its ``weight`` and ``activation`` entries."""
        out: dict[tuple[str, Role], str] = {}
        for t, c in self.chosen():
            if t.role == "layer":
                w, _, a = c.format.partition("/")
                out[(t.layer, "weight")], out[(t.layer, "activation")] = w, a
            else:
                out[(t.layer, t.role)] = c.format
        return out

    @property
    def error(self) -> float:
        return sum(c.error for _, c in self.chosen())

    @property
    def avg_bits(self) -> float:
        return sum(t.elements * c.bits for t, c in self.chosen()) / self.problem.elements

    @property
    def bytes(self) -> float:
        return sum(t.elements * c.bits for t, c in self.chosen()) / 8.0

    @property
    def area(self) -> float:
        return sum(c.area for _, c in self.chosen())

    @property
    def energy(self) -> float:
        return sum(c.energy for _, c in self.chosen())

    def meets(self, budget: Budget, rel: float = 1e-9) -> bool:
        """Whether every limit of ``budget`` holds (up to a relative rounding tolerance)."""
        for have, limit in ((self.avg_bits, budget.avg_bits), (self.bytes, budget.bytes), (self.area, budget.area),
                            (self.energy, budget.energy)):
            if limit is not None and have > limit + rel * max(1.0, abs(limit)):
                return False
        return True

    def to_json(self) -> dict:
        return {
            "error": self.error, "avg_bits": self.avg_bits, "bytes": self.bytes, "area": self.area, "energy": self.energy,
            "tensors": [{"layer": t.layer, "role": t.role, "elements": t.elements, "format": c.format,
                         "error": c.error, "bits": c.bits, "area": c.area, "energy": c.energy} for t, c in self.chosen()],
        }
