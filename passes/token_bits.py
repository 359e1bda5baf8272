"""``token-bits``: token-adaptive activation bits from attention importance (EdgeQAT).

EdgeQAT (Shen et al., 2024, "EdgeQAT: Entropy and Distribution Guided Quantization-Aware Training for
the Acceleration of Lightweight LLMs on the Edge", Sec. 3.4) quantizes the activations of tokens that
attention deems unimportant to fewer bits.  For every attention block (:func:`mase_compiler.attention.
find_attention`) this pass inserts one ``quant.token_importance`` on the block's logits (the softmax
input) and gives the activation operand of every linear layer downstream of the block (after its
softmax, before the next block's ``Q @ K^T``: output projection, FFN, the next layer's Q/K/V
projections) a ``quant.token_cast``: per sequence, the ``ratio`` least important tokens take ``low``,
the rest ``high`` (or, with ``threshold``, the tokens whose importance is below it).  An activation
``quant.cast`` already there (from ``quantize{a=...}``) is replaced; a linear reading one activation
through several casts shares one token cast.  Arithmetic: :mod:`mase_compiler.numerics.tokens`.

Tokens map 1:1: a linear's activation must be ``[batch, seq, d]`` with the attention's keys as ``seq``
(self-attention); otherwise the pass refuses in one line before touching the IR.  With calibration data
it runs the interpreter on the batches and notes the average activation bits the linears actually read
(``avg_activation_bits``, each format's bits per element, weighted by elements) and the share of low
tokens (``low_token_share``).

Options: ``high`` (default ``int8:token``), ``low`` (``int4:token``), ``ratio`` (0.5), ``threshold``
(unset: rank by ``ratio``), ``method`` (``logits`` | ``probs`` | ``probs-sum``, see the numerics module).
Running the pass twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import FloatAttr, ModuleOp, StringAttr, f32, f64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from mase_compiler.attention import Attention, find_attention
from mase_compiler.dialects import graph as g
from mase_compiler.dialects.quant import CastOp, TokenCastOp, TokenImportanceOp, format_attr
from mase_compiler.numerics import Format, parse
from mase_compiler.numerics._options import suggestion
from mase_compiler.numerics.tokens import METHODS, average_bits, low_tokens
from mase_compiler.session import current

# Ops through which a linear's right operand is still its weight.
_WEIGHT_VIEWS = frozenset({"graph.transpose", "graph.reshape", "graph.cast", "quant.cast"})


@dataclass(frozen=True)
class TokenBits(ModulePass):
    """Gives each token of the linears' activations a high or a low format by its attention importance (EdgeQAT)."""

    name = "token-bits"

    high: str = "int8:token"
    low: str = "int4:token"
    ratio: float | int = 0.5
    threshold: float | int | None = None
    method: str = "logits"

    def __post_init__(self) -> None:
        self.formats()
        if not 0.0 <= float(self.ratio) <= 1.0:
            raise ValueError(f"token-bits ratio must be in [0, 1], not {self.ratio}")
        if self.method not in METHODS:
            raise ValueError(f"token-bits method must be one of {', '.join(METHODS)}, not {self.method!r}"
                             + suggestion(self.method, METHODS))

    def formats(self) -> tuple[Format, Format]:
        out = []
        for what in ("high", "low"):
            try:
                out.append(parse(getattr(self, what)))
            except ValueError as e:
                raise ValueError(f"token-bits {what}: {e}") from None
        return out[0], out[1]

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        session = current(self.name)
        blocks = find_attention(op)
        if not blocks:
            raise ValueError("token-bits needs attention blocks (Q @ K^T, softmax, P @ V) to rank tokens; this model has none")
        plan = _plan(op, blocks)
        for block, linears in plan:  # refuse before any rewrite
            _check(block, linears)
        high, low = self.formats()
        casts: dict[tuple[SSAValue, SSAValue], TokenCastOp] = {}
        replaced = 0
        for block, linears in plan:
            imp = self._importance(block)
            for lin in linears:
                x = lin.operands[0]
                if isinstance(x.owner, TokenCastOp):
                    continue  # a second run: already token-adaptive
                src = x
                if isinstance(x.owner, CastOp):  # an activation cast from quantize: the token cast takes its place
                    src = x.owner.input
                    replaced += 1
                key = (src, imp)
                if key not in casts:
                    casts[key] = self._token_cast(src, imp, high, low, before=lin)
                lin.operands = [casts[key].result, *lin.operands[1:]]
                _erase_if_dead(x)
        linears = [lin for _, ls in plan for lin in ls]
        session.notes.update({"attention_blocks": len(blocks), "linears": len(linears), "token_casts": len(casts),
                              "replaced_casts": replaced, "high": str(high), "low": str(low)})
        if session.calibration:
            session.notes.update(self._measure(session, high, low))

    def _importance(self, block: Attention) -> SSAValue:
        for use in block.logits.uses:  # a second run finds the first run's importance
            user = use.operation
            if isinstance(user, TokenImportanceOp) and user.method.data == self.method:
                return user.result
        shape = g.shape_of(block.logits.type)
        assert shape is not None, "checked by _check"
        imp = TokenImportanceOp.create(operands=[block.logits], result_types=[g.tensor_type(f32, [shape[0], shape[3]])],
                                       properties={"method": StringAttr(self.method)})
        Rewriter.insert_op(imp, InsertPoint.before(block.softmax))
        return imp.result

    def _token_cast(self, x: SSAValue, imp: SSAValue, high: Format, low: Format, before: Operation) -> TokenCastOp:
        props = {"high": format_attr(high), "low": format_attr(low), "ratio": FloatAttr(float(self.ratio), f64)}
        if self.threshold is not None:
            props["threshold"] = FloatAttr(float(self.threshold), f64)
        cast = TokenCastOp.create(operands=[x, imp], result_types=[x.type], properties=props)
        Rewriter.insert_op(cast, InsertPoint.before(before))
        return cast

    def _measure(self, session, high: Format, low: Format) -> dict[str, object]:
        """Run the calibration batches and count the elements each format quantized for the linears."""
        from mase_compiler.interpreter import Interpreter

        counts = {"low": 0, "tokens": 0, "low_elements": 0, "elements": 0}

        def observe(o: Operation, operands: list, results: tuple) -> None:
            if not isinstance(o, TokenCastOp):
                return
            thr = o.threshold.value.data if o.threshold is not None else None
            mask = low_tokens(operands[1], o.ratio.value.data, thr)
            readers = sum(1 for u in o.result.uses if u.operation.name == "graph.matmul")
            width = operands[0].shape[-1]
            counts["low"] += int(mask.sum())
            counts["tokens"] += mask.numel()
            counts["low_elements"] += int(mask.sum()) * width * readers
            counts["elements"] += mask.numel() * width * readers

        interp = Interpreter(session.model)
        for batch in session.calibration:
            interp(batch, observe=observe)
        return {"avg_activation_bits": average_bits(counts["low_elements"], counts["elements"], high, low),
                "low_token_share": counts["low"] / counts["tokens"] if counts["tokens"] else 0.0,
                "batches": len(session.calibration)}


def _plan(module: ModuleOp, blocks: list[Attention]) -> list[tuple[Attention, list[Operation]]]:
    """Each block with the linears after its softmax and before the next block's Q @ K^T (IR order)."""
    order = {o: i for i, o in enumerate(module.walk())}
    bounds = [order[b.qk] for b in blocks[1:]] + [len(order)]
    out = []
    for block, end in zip(blocks, bounds):
        start = order[block.softmax]
        out.append((block, [o for o, i in order.items() if start < i < end and _is_linear(o)]))
    return out


def _is_linear(op: Operation) -> bool:
    """A graph.matmul of an activation by a weight (through transposes, reshapes and casts)."""
    if not isinstance(op, g.MatmulOp):
        return False
    return _is_weight(op.operands[1]) and not _is_weight(op.operands[0])


def _is_weight(v: SSAValue) -> bool:
    op = v.owner
    while isinstance(op, Operation) and op.name in _WEIGHT_VIEWS and op.operands:
        op = op.operands[0].owner
    return isinstance(op, Operation) and op.name in ("graph.weight", "graph.constant")


def _check(block: Attention, linears: list[Operation]) -> None:
    logits = g.shape_of(block.logits.type)
    axis = block.softmax.properties["axis"].value.data
    if logits is None or len(logits) != 4 or axis not in (-1, 3):
        raise ValueError(f"token-bits needs attention logits [batch, heads, queries, keys] with the softmax over "
                         f"keys; attention {block.index} has {block.logits.type} (softmax axis {axis})")
    for lin in linears:
        x = lin.operands[0]
        shape = g.shape_of(x.type)
        tokens = None if shape is None else tuple(shape[:2]) if len(shape) == 3 else (1, shape[0]) if len(shape) == 2 else None
        fits = tokens is not None and all(a == b or -1 in (a, b) for a, b in zip(tokens, (logits[0], logits[3])))
        if not fits or not g.is_float(g.element_type(x.type)):
            name = g.node_name(lin) or "a linear"
            raise ValueError(f"token-bits needs {name}'s activation as [batch, seq, d] with seq = the keys of attention "
                             f"{block.index} ({block.logits.type}), not {x.type}")


def _erase_if_dead(v: SSAValue) -> None:
    """Drop a replaced activation cast (and its scale constants) once nothing reads it."""
    op = v.owner
    if not isinstance(op, CastOp) or v.uses:
        return
    params = [p.owner for p in op.params]
    Rewriter.erase_op(op)
    for p in params:
        if isinstance(p, Operation) and p.name == "graph.constant" and not p.results[0].uses:
            Rewriter.erase_op(p)


__all__ = ["TokenBits"]
