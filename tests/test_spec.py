"""Spec strings: canonical spelling, round trip ``parse(str(f)) == f``, aliases, and
error messages that say what was wrong and name the closest valid choices."""

from __future__ import annotations

import re

import pytest

from mase_compiler.numerics import BUILTIN_SPECS, Format, parse

# (what a user may type, its canonical spelling)
CANONICAL = [
    # integers
    ("int8:sym", "int8"),
    ("int8:asym:group=64", "int8:group=64:asym"),
    ("uint8:asym", "uint8"),
    ("uint8:sym", "uint8:sym"),
    ("int4:round=even", "int4"),
    ("int4:round=floor", "int4:round=floor"),
    ("int8:round=stochastic:seed=3:token", "int8:token:round=stochastic:seed=3"),
    ("int8:round=stochastic", "int8:round=stochastic"),
    ("int8:channel:axis=1", "int8:channel:axis=1"),
    ("int8:channel:axis=0", "int8:channel"),
    ("int8:token:axis=-1", "int8:token"),
    ("int8:token:axis=0", "int8:token:axis=0"),
    ("int4:group=128:axis=-1", "int4:group=128"),
    ("int4:axis=0:group=128", "int4:group=128:axis=0"),
    ("int16:channel:asym:round=away", "int16:channel:asym:round=away"),
    ("uint4:group=32", "uint4:group=32"),
    # fixed point and dINT
    ("fixed8:frac=4:round=floor", "fixed8:frac=4:round=floor"),
    ("ufixed8:frac=4", "ufixed8:frac=4"),
    ("fixed16:frac=-3", "fixed16:frac=-3"),
    ("dint4:channel", "dint4:channel"),
    ("dint4:round=floor:group=64", "dint4:group=64:round=floor"),
    ("dint8:token", "dint8:token"),
    # minifloats
    ("fp:e=4:m=3:special=fn", "fp8_e4m3"),
    ("fp:e=4:m=3:bias=7:special=fn", "fp8_e4m3"),
    ("fp:e=5:m=2", "fp8_e5m2"),
    ("fp:e=5:m=10", "fp16"),
    ("fp:e=8:m=7", "bf16"),
    ("fp:e=2:m=1:special=none", "fp4_e2m1"),
    ("fp:e=3:m=2:special=none", "fp6_e3m2"),
    ("fp:e=2:m=3:special=none", "fp6_e2m3"),
    ("fp:special=none:m=4:e=3", "fp:e=3:m=4:special=none"),
    ("fp:e=4:m=3:bias=7", "fp:e=4:m=3"),
    ("fp:e=4:m=3:bias=8:special=none", "fp:e=4:m=3:bias=8:special=none"),
    ("fp:e=4:m=3:special=ieee", "fp:e=4:m=3"),
    ("fp8_e4m3:round=away", "fp8_e4m3:round=away"),
    ("fp16:round=stochastic:seed=9", "fp16:round=stochastic:seed=9"),
    # aliases
    ("fp8", "fp8_e4m3"),
    ("fp4", "fp4_e2m1"),
    ("mxfp8", "mxfp8_e4m3"),
    ("mxfp6", "mxfp6_e2m3"),
    ("mxfp4_e2m1", "mxfp4"),
    ("bfp8", "mxint8"),
    ("bfp8:block=16", "mxint8:block=16"),
    # MX options
    ("mxfp4:block=32", "mxfp4"),
    ("mxfp4:scale=floor", "mxfp4"),
    ("mxfp4:axis=-1", "mxfp4"),
    ("mxfp4:scale=ceil:block=16", "mxfp4:block=16:scale=ceil"),
    ("mxfp8:axis=0", "mxfp8_e4m3:axis=0"),
    ("mxfp6_e3m2:round=floor:scale=even", "mxfp6_e3m2:scale=even:round=floor"),
    ("bfp4:block=16", "bfp4:block=16"),
    ("bfp12", "bfp12"),
]


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
def test_builtin_specs_are_canonical_and_round_trip(spec):
    f = parse(spec)
    assert isinstance(f, Format)
    assert str(f) == spec
    assert parse(str(f)) == f
    assert hash(parse(str(f))) == hash(f)


def test_builtin_specs_are_distinct():
    assert len({parse(s) for s in BUILTIN_SPECS}) == len(BUILTIN_SPECS)


@pytest.mark.parametrize("typed,canonical", CANONICAL)
def test_canonical_spelling(typed, canonical):
    f = parse(typed)
    assert str(f) == canonical
    assert str(parse(canonical)) == canonical


@pytest.mark.parametrize("typed,canonical", CANONICAL)
def test_parse_str_round_trip(typed, canonical):
    """parse(str(f)) == f for every spelling, including ones that state a default."""
    f = parse(typed)
    assert parse(str(f)) == f
    assert parse(typed) == parse(canonical)


def test_equivalent_stochastic_spellings_are_equal():
    """Stochastic rounding without a seed uses seed 0 (rounding.round_to_int), so the two
    spellings quantize identically and must be one format with one canonical string."""
    a, b = parse("int8:round=stochastic"), parse("int8:round=stochastic:seed=0")
    assert str(a) == str(b)
    assert a == b


def test_parse_passes_formats_through_and_rejects_other_types():
    f = parse("mxfp4")
    assert parse(f) is f
    with pytest.raises(TypeError, match="format spec must be a string, not int"):
        parse(8)  # type: ignore[arg-type]


# ---- errors -----------------------------------------------------------------------------------


def _error(spec: str) -> str:
    with pytest.raises(ValueError) as info:
        parse(spec)
    return str(info.value)


def test_unknown_name_suggests_close_names():
    msg = _error("mxfp5")
    assert "unknown number format 'mxfp5'" in msg
    for name in ("mxfp4", "mxfp6", "mxfp8"):
        assert name in msg
    assert "int8" in _error("in8")
    msg = _error("fp8_e4m2")
    assert "fp8_e4m3" in msg and "fp8_e5m2" in msg


@pytest.mark.parametrize(
    "spec,text",
    [
        ("int0", "'int0': int width must be in 2..16, not 0"),
        ("int17", "'int17': int width must be in 2..16, not 17"),
        ("uint1", "'uint1': uint width must be in 2..16, not 1"),
        ("bfp2", "'bfp2': bfp width must be in 3..16, not 2"),
        ("dint2", "'dint2': dint width must be in 3..16, not 2"),
        ("fixed33:frac=1", "'fixed33': fixed width must be in 2..32, not 33"),
    ],
)
def test_width_out_of_range(spec, text):
    assert text in _error(spec)


@pytest.mark.parametrize(
    "spec,pattern",
    [
        ("mxfp4:block=0", r"'mxfp4' option block must be an integer >= 1, not '0'"),
        ("mxfp4:block=abc", r"'mxfp4' option block must be an integer >= 1, not 'abc'"),
        ("int8:group=0", r"'int8' option group must be an integer >= 1, not '0'"),
        ("int8:grup=128", r"'int8' has no option 'grup'; did you mean group\?"),
        ("fp8_e4m3:block=32", r"'fp8_e4m3' has no option 'block' \(options: round, seed\)"),
        ("int4:channel:token", r"'int4' takes one granularity, not channel and token"),
        ("int8::asym", r"empty option"),
        ("int8:", r"empty option"),
        ("", r"non-empty name"),
        (" int8", r"without surrounding spaces"),
        ("int8:round=nearest", r"option round must be one of even, away, floor, ceil, zero, stochastic, not 'nearest'"),
        ("int8:seed=3", r"seed only applies with round=stochastic"),
        ("fp:e=4", r"'fp' needs its exponent and mantissa bits"),
        ("fp:e=9:m=7", r"1\+e\+m <= 16 bits, not e=9 m=7"),
        ("fp:e=4:m=3:special=fnuz", r"special must be one of ieee, fn, none, not 'fnuz'; did you mean fn\?"),
        ("fixed8", r"'fixed8' needs its fraction bits, e.g. 'fixed8:frac=4'"),
        ("int8:sym:asym", r"either sym or asym, not both"),
        ("mxfp4:scale=round", r"option scale must be one of floor, ceil, even, not 'round'"),
        ("int8:channel=1", r"option channel takes no value"),
        ("int8:axis=1", r"option axis needs a granularity"),
        ("int8:token:token", r"option token is given twice"),
    ],
)
def test_bad_option_messages(spec, pattern):
    assert re.search(pattern, _error(spec)), _error(spec)
