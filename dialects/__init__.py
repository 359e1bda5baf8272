"""masec's xDSL dialects (installed as ``mase_compiler.dialects``)."""

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.dialects.func import Func

from .graph import Graph
from .quant import Quant

DIALECTS = (Builtin, Func, Graph, Quant)


def make_context() -> Context:
    """A context that knows builtin, func and masec's dialects."""
    ctx = Context()
    for d in DIALECTS:
        ctx.load_dialect(d)
    return ctx


__all__ = ["DIALECTS", "Graph", "Quant", "make_context"]
