"""Scaled dot-product attention blocks of a graph IR module, found structurally.

An attention block is ``scores = Q @ K^T`` (a ``graph.matmul`` of two activations), optionally scaled
and masked by elementwise ops (mul / div by a constant, add / where of a mask, a cast), then
``probs = softmax(scores)`` and ``out = probs @ V``.  ONNX exports of BERT, GPT-2, LLaMA, ViT (both
exporters) and the hardware examples all take this shape; :func:`find_attention` returns one
:class:`Attention` per softmax that sits between two such matmuls, in IR order.

Passes use it to address the parts EdgeQAT quantizes and measures (Shen et al., "EdgeQAT: Entropy and
Distribution Guided Quantization-Aware Training for the Acceleration of Lightweight LLMs on the Edge",
2024): the query and key (operands of the first matmul), the attention logits (the softmax input: what
token importance is computed from), the attention map (the softmax output) and the value (the second
matmul's right operand); K and V are what a KV cache holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

# Ops allowed between Q @ K^T and the softmax: scaling, masking, casts (the softmax input stays [.., Sq, Sk]).
_SCORE_OPS = frozenset({"graph.mul", "graph.div", "graph.add", "graph.sub", "graph.where", "graph.cast", "quant.cast"})
# Ops allowed between the softmax and P @ V (a cast of the map, a dropout exported as identity).
_MAP_OPS = frozenset({"graph.cast", "quant.cast", "graph.identity"})
_WEIGHT_VIEWS = frozenset({"graph.transpose", "graph.reshape", "graph.squeeze", "graph.unsqueeze", "graph.flatten",
                           "graph.expand", "quant.cast"})


@dataclass(frozen=True)
class Attention:
    """One attention block: its two matmuls and softmax, and the values EdgeQAT addresses."""

    index: int  # 0, 1, ... in IR order
    qk: Operation  # graph.matmul(Q, K^T)
    softmax: Operation
    av: Operation  # graph.matmul(P, V)

    @property
    def query(self) -> SSAValue:
        return self.qk.operands[0]

    @property
    def key(self) -> SSAValue:
        """K^T as the matmul reads it (after the export's transpose)."""
        return self.qk.operands[1]

    @property
    def logits(self) -> SSAValue:
        """The softmax input: scaled, masked scores [.., heads, Sq, Sk]."""
        return self.softmax.operands[0]

    @property
    def probs(self) -> SSAValue:
        """The attention map, the softmax output."""
        return self.softmax.results[0]

    @property
    def value(self) -> SSAValue:
        return self.av.operands[1]

    @property
    def output(self) -> SSAValue:
        return self.av.results[0]


def _is_parameter(v: SSAValue) -> bool:
    """Whether ``v`` is a weight, possibly through views and casts (then the matmul is a linear layer)."""
    op = v.owner
    while isinstance(op, Operation) and op.name in _WEIGHT_VIEWS and op.operands:
        op = op.operands[0].owner
    return isinstance(op, Operation) and op.name in ("graph.weight", "graph.constant")


def _producer(v: SSAValue, through: frozenset[str]) -> Operation | None:
    """The first op behind ``v`` that is not one of ``through`` (following operand 0, or the non-constant
    operand of a binary op)."""
    op = v.owner
    while isinstance(op, Operation) and op.name in through:
        nxt = [o for o in op.operands if not _is_parameter(o)]
        if op.name == "graph.where":  # where(mask, scores, -inf): the scores are the tensor-valued branch
            nxt = [o for o in op.operands[1:] if not _is_parameter(o)] or nxt
        if not nxt:
            return None
        op = nxt[0].owner
    return op if isinstance(op, Operation) else None


def _consumer(v: SSAValue, through: frozenset[str]) -> Operation | None:
    """The single matmul reading ``v`` as its left operand, through ``through`` ops; None otherwise."""
    while True:
        uses = list(v.uses)
        if len(uses) != 1:
            return None
        op, index = uses[0].operation, uses[0].index
        if op.name == "graph.matmul" and index == 0:
            return op
        if op.name not in through:
            return None
        v = op.results[0]


def find_attention(module: ModuleOp) -> list[Attention]:
    """Every softmax fed by an activation x activation matmul and feeding one, as an :class:`Attention`."""
    out: list[Attention] = []
    for op in module.walk():
        if not isinstance(op, Operation) or op.name != "graph.softmax":
            continue
        qk = _producer(op.operands[0], _SCORE_OPS)
        av = _consumer(op.results[0], _MAP_OPS)
        if qk is None or av is None or qk.name != "graph.matmul":
            continue
        if _is_parameter(qk.operands[1]) or _is_parameter(av.operands[1]):
            continue  # a linear layer, not attention
        out.append(Attention(len(out), qk, op, av))
    return out


__all__ = ["Attention", "find_attention"]
