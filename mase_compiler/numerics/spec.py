"""Spec strings: the one spelling of a format that users type and the IR prints.

Grammar: ``name(:option(=value)?)*`` — e.g. ``int8``, ``int4:group=128:asym``,
``fp8_e4m3``, ``mxfp4:block=16:scale=ceil``, ``dint4:channel``,
``fixed8:frac=4``, ``fp:e=3:m=4:special=none``.  ``str(parse(s))`` is the
canonical spelling (defaults left out, options in a fixed order), and
``parse(str(f)) == f`` for every format ``f``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

from ._options import suggestion
from .base import Format
from .dint import DIntFormat
from .fixed import FixedFormat
from .integer import IntFormat
from .minifloat import BY_NAME, MinifloatFormat
from .mx import MX_ALIASES, MX_NAMES, MXFormat

FORMAT_ALIASES = {"fp8": "fp8_e4m3", "fp4": "fp4_e2m1"}

# (pattern, factory, width range for the numbered families)
_FAMILIES: list[tuple[re.Pattern[str], Callable[[str, list[str]], Format], tuple[int, int] | None]] = [
    (re.compile(r"u?int(\d+)"), IntFormat.from_spec, (2, 16)),
    (re.compile(r"u?fixed(\d+)"), FixedFormat.from_spec, (2, 32)),
    (re.compile(r"dint(\d+)"), DIntFormat.from_spec, (3, 16)),
    (re.compile(r"bfp(\d+)"), MXFormat.from_spec, (3, 16)),
    (re.compile(r"fp"), MinifloatFormat.from_spec, None),
    (re.compile("|".join(sorted(BY_NAME, key=len, reverse=True))), MinifloatFormat.from_spec, None),
    (re.compile("|".join(sorted([*MX_NAMES, *MX_ALIASES], key=len, reverse=True))), MXFormat.from_spec, None),
]

# What "did you mean" draws on: every fixed name plus the common numbered ones.
KNOWN_NAMES = sorted(
    {*BY_NAME, *MX_NAMES, *MX_ALIASES, *FORMAT_ALIASES, "fp"}
    | {f"int{b}" for b in (2, 3, 4, 5, 6, 7, 8, 16)}
    | {f"uint{b}" for b in (2, 4, 8, 16)}
    | {"dint4", "dint8", "bfp4", "bfp6", "bfp8", "bfp12", "fixed8", "fixed16"}
)

# The formats ``masec formats`` lists and the demo and benchmarks sweep.
BUILTIN_SPECS = (
    "int8", "int8:channel", "int8:token", "uint8", "int4", "int4:group=128", "int2:group=32",
    "fixed8:frac=4", "fixed16:frac=8",
    "dint4", "dint4:group=128",
    "bf16", "fp16",
    "fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1",
    "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8",
    "bfp4:block=16", "bfp6:block=16",
)


@lru_cache(maxsize=1024)
def _parse(text: str) -> Format:
    if not text or text != text.strip():
        raise ValueError(f"format spec must be a non-empty name without surrounding spaces, not {text!r}")
    name, *tokens = text.split(":")
    name = FORMAT_ALIASES.get(name, name)
    for pattern, factory, widths in _FAMILIES:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        if widths is not None:
            bits = int(m.group(1))
            lo, hi = widths
            if not lo <= bits <= hi:
                family = name[: m.start(1)]
                raise ValueError(
                    f"'{name}': {family} width must be in {lo}..{hi}, not {bits}"
                    + suggestion(name, KNOWN_NAMES)
                )
        if any(not t for t in tokens):
            raise ValueError(f"format spec {text!r} has an empty option (two ':' in a row or a trailing ':')")
        return factory(name, tokens)
    raise ValueError(f"unknown number format {name!r}" + suggestion(name, KNOWN_NAMES) + " ('masec formats' lists them all)")


def parse(spec: str | Format) -> Format:
    """The format a spec string names; a :class:`Format` passes through unchanged."""
    if isinstance(spec, Format):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"format spec must be a string, not {type(spec).__name__}")
    return _parse(spec)
