"""Reading torch-mlir's output with xDSL: a stub ``torch`` dialect and the parse context.

torch-mlir prints its ops in generic form (``"torch.aten.mm"(%a, %b) : (...) -> ...``),
which xDSL parses as unregistered ops.  Only the value-tensor type needs a
definition of its own, so that shapes and element types can be read:
``!torch.vtensor<[2,?,32],f32>`` (``?`` is a symbolic dim).  The scalar and list
types (``!torch.int``, ``!torch.list<int>``, ...) stay unregistered attributes;
the converter only looks at their names.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, Builtin, IntAttr, IntegerType, ModuleOp, Signedness, UnregisteredAttr
from xdsl.dialects.func import Func
from xdsl.ir import Attribute, Dialect, Operation, ParametrizedAttribute, TypeAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer


@irdl_attr_definition
class VTensorType(ParametrizedAttribute, TypeAttribute):
    """``!torch.vtensor<[d0,d1,...],elem>``: an immutable tensor; -1 marks a symbolic dim."""

    name = "torch.vtensor"
    dims: ArrayAttr[IntAttr]
    element_type: Attribute

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        def dim() -> IntAttr:
            if parser.parse_optional_punctuation("?") is not None:
                return IntAttr(-1)
            return IntAttr(parser.parse_integer(allow_boolean=False))

        parser.parse_punctuation("<")
        dims = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, dim)
        parser.parse_punctuation(",")
        element = parser.parse_type()
        parser.parse_punctuation(">")
        return (ArrayAttr(dims), element)

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<[" + ",".join("?" if d.data < 0 else str(d.data) for d in self.dims.data) + "],")
        printer.print_attribute(self.element_type)
        printer.print_string(">")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.dims.data)


Torch = Dialect("torch", [], [VTensorType])


def op_name(op: Operation) -> str:
    """The torch op's name without the ``torch.`` prefix (``aten.mm``); ``torch.operator`` ops by their ``name``."""
    name = op.name
    if name == "builtin.unregistered":
        name = op.attributes["op_name__"].data  # type: ignore[union-attr]
    if name == "torch.operator":
        name = op.properties["name"].data  # type: ignore[union-attr]
    return name.removeprefix("torch.")


def torch_type_name(t: Attribute) -> str:
    """``vtensor``, ``int``, ``list``, ``none``, ... for a torch-mlir type."""
    if isinstance(t, VTensorType):
        return "vtensor"
    if isinstance(t, UnregisteredAttr):
        return t.attr_name.data.removeprefix("torch.")
    return str(t)


def builtin_element(t: Attribute) -> Attribute:
    """torch-mlir's element types use ``si64`` for int64; the graph dialect uses signless ``i64``."""
    if isinstance(t, IntegerType) and t.signedness.data == Signedness.SIGNED:
        return IntegerType(t.width.data)
    return t


def parse(text: str) -> ModuleOp:
    ctx = Context(allow_unregistered=True)
    for d in (Builtin, Func, Torch):
        ctx.load_dialect(d)
    return Parser(ctx, text, "<torch-mlir>").parse_module()


__all__ = ["Torch", "VTensorType", "builtin_element", "op_name", "parse", "torch_type_name"]
