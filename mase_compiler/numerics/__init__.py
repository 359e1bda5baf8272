"""One definition of every number format masec supports.

``parse("mxfp4").quantize(x)`` is the same arithmetic in the interpreter, the
emitted PyTorch model and (through the hardware-exact mode) the RTL.
"""

from .base import Encoded, Format
from .dint import DIntFormat
from .fixed import FixedFormat
from .integer import IntFormat
from .minifloat import MinifloatFormat
from .mx import IntElement, MXFormat
from .packing import pack_bits, unpack_bits
from .rounding import ROUNDING_MODES, round_to_int
from .spec import BUILTIN_SPECS, KNOWN_NAMES, parse

__all__ = [
    "BUILTIN_SPECS",
    "DIntFormat",
    "Encoded",
    "FixedFormat",
    "Format",
    "IntElement",
    "IntFormat",
    "KNOWN_NAMES",
    "MXFormat",
    "MinifloatFormat",
    "ROUNDING_MODES",
    "pack_bits",
    "parse",
    "round_to_int",
    "unpack_bits",
]
