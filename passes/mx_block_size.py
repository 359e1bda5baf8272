"""``mx-block-size``: pick each MX tensor's block size under an average-bits budget (rewrites the casts).

An MX tensor stores one 8-bit E8M0 scale per block of ``k`` elements along the reduction axis, so it costs
``element_bits + 8 / k`` bits per element (OCP MX v1.0; Rouhani et al., 2023, "Microscaling Data Formats for
Deep Learning", Sec. 2): small blocks follow the data's range closely (less error), large ones amortize the
scale.  Runs AFTER ``quantize``: for every ``quant.cast`` in an MX format whose element type is one of
``formats``, the candidates are each format of ``formats`` at each block of ``blocks`` (the cast's axis,
rounding and scale mode kept).  The error of a candidate is the tensor's own relative noise power
``10^(-SQNR/10)`` (``sum (x - q(x))^2 / sum x^2``: weights from the weight store, activations over the
calibration batches as they reach the cast); the pass picks the least total error whose element-weighted
average bits is at most ``budget``, exactly (:func:`mase_compiler.search.solve_ilp`), the additive
sensitivity model of MASE's mixed-precision search (Cheng et al., "MASE: An Efficient Representation for
Software-Defined ML Hardware System Exploration").  The average covers only the casts this pass tunes
(activations count their elements per calibration batch).  Bits are the exact storage of
:func:`mase_compiler.cost.storage.tensor_bytes` (what ``encode`` writes): along a reduction axis of ``K``
elements a row holds ``ceil(K / k)`` blocks, the last one padded, i.e. ``ceil(K / k) * (k * element_bits + 8)
/ K`` bits per element, ``element_bits + 8 / k`` when ``k`` divides ``K``.  Blocks longer than ``K`` only pad
more, so of them only the shortest is a candidate.  Among choices of equal error the fewest bits win.

Decision: the pass sets the chosen format on the casts directly (so it composes after any quantize
pipeline, ``quantize{default=mxint8},mx-block-size{budget=8.2}``) and also records the equivalent replayable
pipeline (``quantize`` rules per layer, :func:`mase_compiler.search.to_pipeline`) in the pass notes, with the
choice per tensor.  Activation casts are tuned only with calibration data; without it they keep their block
(noted).  A budget below the cheapest choice everywhere (the largest useful blocks) is refused.

Options: ``formats`` (default ``mxint8``), ``blocks`` (default ``8,16,32,64,128``), ``budget`` (average
bits per element, scales included; required).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp, format_attr
from mase_compiler.numerics import MXFormat, parse
from mase_compiler.session import current

_COMPUTE = (g.MatmulOp, g.ConvOp)


@dataclass(frozen=True)
class MxBlockSize(ModulePass):
    """Chooses the MX block size of each quantized tensor: least error within an average-bits budget."""

    name = "mx-block-size"

    formats: str = "mxint8"
    blocks: str | int = "8,16,32,64,128"  # int too, so that 'blocks=32' parses
    budget: float | int = 0  # int too, so that 'budget=9' parses

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("mx-block-size formats must name at least one MX format, e.g. 'mxint8'")
        for f in self.candidates:
            if not isinstance(f, MXFormat):
                raise ValueError(f"mx-block-size formats must be MX formats such as mxint8 or mxfp4, not '{f}'")
        try:
            blocks = self.block_sizes
        except ValueError:
            raise ValueError(f"mx-block-size blocks must be comma-separated positive integers, not {self.blocks!r}") from None
        if not blocks or min(blocks) < 1:
            raise ValueError(f"mx-block-size blocks must be comma-separated positive integers, not {self.blocks!r}")
        if not float(self.budget) > 0:
            raise ValueError(f"mx-block-size budget must be a positive number of average bits per element "
                             f"(scales included, e.g. budget=8.25), not {self.budget}")

    @property
    def candidates(self) -> tuple:
        try:
            return tuple(parse(s.strip()) for s in self.formats.split(",") if s.strip())
        except ValueError as e:
            raise ValueError(f"mx-block-size formats: {e}") from None

    @property
    def block_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({int(b) for b in str(self.blocks).split(",") if b.strip()}))

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from mase_compiler.search import solve_ilp, to_pipeline

        session = current(self.name)
        elements = {f.element for f in self.candidates}
        casts = [c for c in op.walk() if isinstance(c, CastOp) and isinstance(c.format.format, MXFormat)
                 and c.format.format.element in elements and _user(c) is not None]
        values = _values(session, casts)
        skipped = [c for c in casts if c not in values]
        casts = [c for c in casts if c in values]
        if not casts:
            session.notes.update(tuned=0, activations_skipped=len(skipped))
            return
        # One choice per (layer, role), as quantize's rules give: the two activations of an attention matmul share it.
        groups: dict[tuple[str, str], list[CastOp]] = {}
        for c in casts:
            groups.setdefault(_user(c), []).append(c)
        problem, options = self._problem(groups, values)
        sol = _cheapest_ties(solve_ilp(problem, float(self.budget)))
        for members, opts, pick in zip(groups.values(), options, sol.picks):
            for c in members:
                c.properties["format"] = format_attr(opts[pick])
        assignment = _assignment(op)
        session.notes.update(
            tuned=len(casts), activations_skipped=len(skipped), avg_bits=sol.avg_bits, error=sol.error,
            choices={t.key: ch.format for t, ch in sol.chosen()},
            pipeline=to_pipeline(assignment) if assignment else "")

    def _problem(self, groups: dict[tuple[str, str], list[CastOp]], values: dict[CastOp, list[torch.Tensor]]):
        """The assignment problem (one tensor per group, one choice per format and block) and the formats."""
        from mase_compiler.cost.storage import tensor_bytes
        from mase_compiler.search import Choice, Problem, Tensor

        options, tensors, choices = [], [], []
        for (layer, role), members in groups.items():
            own: MXFormat = members[0].format.format
            axes = [c.axis.value.data if c.axis is not None else None for c in members]
            ks = [int(values[c][0].shape[own.axis if a is None else a]) for c, a in zip(members, axes)]
            # Blocks longer than the axis only pad more: only the shortest of them is a choice.
            sizes = [b for b in self.block_sizes if b < max(ks)] + [b for b in self.block_sizes if b >= max(ks)][:1]
            opts = [dataclasses.replace(f, block=b, axis=own.axis, rounding=own.rounding, scale_mode=own.scale_mode)
                    for f in self.candidates for b in sizes]
            counts = [int(values[c][0].numel()) for c in members]
            options.append(opts)
            tensors.append(Tensor(layer, role, sum(counts)))
            shapes = [tuple(values[c][0].shape) for c in members]
            choices.append(tuple(
                Choice(str(f), _rel_noise(f, [(values[c], a) for c, a in zip(members, axes)]),
                       8.0 * sum(tensor_bytes(f, sh, a) for sh, a in zip(shapes, axes)) / sum(counts))
                for f in opts))
        return Problem(tuple(tensors), tuple(choices)), options


def _cheapest_ties(sol):
    """Among choices of equal error (a tensor that loses nothing to larger blocks), the fewest bits: the
    solver may return any of them.  Never raises the error or the bits."""
    picks = list(sol.picks)
    for i, cs in enumerate(sol.problem.choices):
        best = cs[picks[i]]
        for j, c in enumerate(cs):
            if c.error <= best.error and c.bits < best.bits:
                picks[i], best = j, c
    return sol.problem.solution(picks)


def _user(cast: CastOp) -> tuple[str, str] | None:
    """(layer, role) of the matmul/conv that reads ``cast``, possibly through transposes."""
    v: SSAValue = cast.results[0]
    while True:
        uses = list(v.uses)
        if len(uses) != 1:
            return None
        user = uses[0].operation
        if isinstance(user, g.TransposeOp):
            v = user.results[0]
            continue
        if not isinstance(user, _COMPUTE):
            return None
        name = g.node_name(user)
        if name is None:
            return None
        return name, "weight" if isinstance(cast.input.owner, g.WeightOp) else "activation"


def _values(session, casts: list[CastOp]) -> dict[CastOp, list[torch.Tensor]]:
    """What reaches each cast: the weight itself, or the activation of every calibration batch."""
    out: dict[CastOp, list[torch.Tensor]] = {}
    acts = set()
    for c in casts:
        owner = c.input.owner
        if isinstance(owner, g.WeightOp):
            out[c] = [session.model.weights.tensor(owner.sym_name.data).to(torch.float32)]
        else:
            acts.add(c)
    if acts and session.calibration:
        from mase_compiler.interpreter import Interpreter

        def observe(o: Operation, operands: list, results: tuple) -> None:
            if o in acts:
                out.setdefault(o, []).append(operands[0].detach().to(torch.float32).clone())

        interp = Interpreter(session.model)
        for batch in session.calibration:
            interp(batch, observe=observe)
    return out


def _rel_noise(fmt: MXFormat, tensors: list[tuple[list[torch.Tensor], int | None]]) -> float:
    """``sum (x - q(x))^2 / sum x^2`` over every tensor of a group, each quantized along its axis (0 if all zero)."""
    noise = signal = 0.0
    for xs, axis in tensors:
        for x in xs:
            x64 = x.to(torch.float64)
            noise += float(((fmt.quantize(x, axis=axis).to(torch.float64) - x64) ** 2).sum())
            signal += float((x64**2).sum())
    return noise / signal if signal > 0 else 0.0


def _assignment(module: ModuleOp) -> dict[tuple[str, str], str]:
    """``{(layer, role): format}`` of every cast read by a named matmul/conv, after the rewrite."""
    out = {}
    for c in module.walk():
        if isinstance(c, CastOp) and (user := _user(c)) is not None:
            out[user] = str(c.format.format)
    return out


__all__ = ["MxBlockSize"]
