"""The ``quant`` dialect: number formats as attributes, quantization as ops on edges.

A format attribute carries the canonical spec string of
:mod:`mase_compiler.numerics`, so the IR, the CLI and the Python API spell a
format the same way::

    #quant.int<"int4:group=128">   #quant.fp<"fp8_e4m3">   #quant.mx<"mxfp4">
    #quant.dint<"dint4">           #quant.fixed<"fixed8:frac=4">

``quant.cast`` is quantize-then-dequantize of a tensor in a format.  With no
parameter operands the scale is computed from the data at run time (dynamic,
e.g. per-token activations, MX blocks); with a ``scale`` (and for asymmetric
integers a ``zero_point``) operand it is static, as calibration produces::

    %q = quant.cast %x {format = #quant.mx<"mxfp4">} : (tensor<4x64xf32>) -> tensor<4x64xf32>
    %r = quant.cast %y, %s {format = #quant.int<"int8">} : (tensor<4x64xf32>, tensor<f32>) -> tensor<4x64xf32>
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import IntegerAttr, StringAttr
from xdsl.ir import Dialect, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition, irdl_op_definition, opt_prop_def, prop_def
from xdsl.utils.exceptions import VerifyException

from mase_compiler.numerics import DIntFormat, FixedFormat, Format, IntFormat, MinifloatFormat, MXFormat, parse

from .graph import GraphOp, TensorLike, operand_def, result_def, traits_def, var_operand_def
from xdsl.traits import Pure


class FormatAttr(ParametrizedAttribute):
    """Base of the format attributes: one canonical spec string."""

    spec: StringAttr
    FAMILY: ClassVar[type[Format]]

    def verify(self) -> None:
        try:
            fmt = parse(self.spec.data)
        except ValueError as e:
            raise VerifyException(f"'{self.name}' attribute has an invalid format: {e}") from None
        if not isinstance(fmt, self.FAMILY):
            raise VerifyException(f"'{self.name}' attribute expected a {self.FAMILY.__name__}, got '{self.spec.data}'")
        if str(fmt) != self.spec.data:
            raise VerifyException(f"'{self.name}' attribute expected the canonical spelling '{fmt}', got '{self.spec.data}'")

    @property
    def format(self) -> Format:
        return parse(self.spec.data)


@irdl_attr_definition
class IntFormatAttr(FormatAttr):
    name = "quant.int"
    FAMILY = IntFormat


@irdl_attr_definition
class FixedFormatAttr(FormatAttr):
    name = "quant.fixed"
    FAMILY = FixedFormat


@irdl_attr_definition
class DIntFormatAttr(FormatAttr):
    name = "quant.dint"
    FAMILY = DIntFormat


@irdl_attr_definition
class FloatFormatAttr(FormatAttr):
    name = "quant.fp"
    FAMILY = MinifloatFormat


@irdl_attr_definition
class MXFormatAttr(FormatAttr):
    name = "quant.mx"
    FAMILY = MXFormat


_BY_FAMILY: dict[type[Format], type[FormatAttr]] = {
    IntFormat: IntFormatAttr,
    FixedFormat: FixedFormatAttr,
    DIntFormat: DIntFormatAttr,
    MinifloatFormat: FloatFormatAttr,
    MXFormat: MXFormatAttr,
}


def format_attr(spec: str | Format) -> FormatAttr:
    """The attribute for a format spec (canonicalized): ``format_attr("bfp8")`` is ``#quant.mx<"mxint8">``."""
    fmt = parse(spec)
    return _BY_FAMILY[type(fmt)](StringAttr(str(fmt)))


@irdl_op_definition
class CastOp(GraphOp):
    """Quantize-dequantize ``input`` in ``format``; optional ``scale``, ``zero_point`` operands make it static."""

    name = "quant.cast"
    input = operand_def(TensorLike)
    params = var_operand_def(TensorLike)
    result = result_def(TensorLike)
    format = prop_def(FormatAttr)
    axis = opt_prop_def(IntegerAttr)
    traits = traits_def(Pure())

    def verify_(self) -> None:
        if self.input.type != self.result.type:
            self.fail(f"expected result type {self.input.type}, got {self.result.type}")
        fmt = self.format.format
        n = len(self.params)
        allowed = 0 if isinstance(fmt, (MXFormat, FixedFormat)) else 2 if isinstance(fmt, IntFormat) and not fmt.symmetric else 1
        if n > allowed:
            self.fail(f"expected at most {allowed} scale operands for '{fmt}', got {n}")


Quant = Dialect("quant", [CastOp], [IntFormatAttr, FixedFormatAttr, DIntFormatAttr, FloatFormatAttr, MXFormatAttr])

__all__ = ["CastOp", "FormatAttr", "Quant", "format_attr"]
