"""masec's xDSL dialects (installed as ``mase_compiler.dialects``)."""

import math
from io import StringIO

from xdsl.context import Context
from xdsl.dialects.builtin import AnyFloat, Builtin, DenseIntOrFPElementsAttr
from xdsl.dialects.func import Func
from xdsl.ir import Attribute, Operation
from xdsl.printer import Printer

from .dataflow import Dataflow
from .graph import Graph
from .quant import Quant

DIALECTS = (Builtin, Func, Graph, Quant, Dataflow)


def make_context() -> Context:
    """A context that knows builtin, func and masec's dialects."""
    ctx = Context()
    for d in DIALECTS:
        ctx.load_dialect(d)
    return ctx


class IRPrinter(Printer):
    """xDSL's printer, except that float constants holding ±inf or NaN print as hex strings.

    xDSL 0.74 prints such values as bare hex literals (``dense<0xFF800000>``) that its
    own parser reads back as integers; the quoted form (``dense<"0x0000807F">``,
    little-endian bytes) round-trips in xDSL and MLIR alike.
    """

    def print_attribute(self, attribute: Attribute) -> None:
        if (
            isinstance(attribute, DenseIntOrFPElementsAttr)
            and isinstance(attribute.get_element_type(), AnyFloat)
            and not all(math.isfinite(v) for v in attribute.get_values())
        ):
            self.print_string(f'dense<"0x{attribute.data.data.hex().upper()}"> : ')
            self.print_attribute(attribute.get_type())
            return
        super().print_attribute(attribute)


def print_ir(op: Operation, generic: bool = False) -> str:
    """Text of ``op`` that :func:`make_context`'s parser reads back to the same IR."""
    s = StringIO()
    IRPrinter(stream=s, print_generic_format=generic).print_op(op)
    s.write("\n")
    return s.getvalue()


__all__ = ["DIALECTS", "Dataflow", "Graph", "IRPrinter", "Quant", "make_context", "print_ir"]
