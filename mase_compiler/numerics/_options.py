"""Parsing of the ``:key=value`` options that follow a format name in a spec string."""

from __future__ import annotations

import difflib
from typing import Callable, Iterable


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to ``word`` (best first), for 'did you mean' errors."""
    choices = list(choices)
    hits = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not hits:
        prefix = [c for c in choices if c[:2] == word[:2]]
        hits = prefix[:n]
    return hits


def suggestion(word: str, choices: Iterable[str]) -> str:
    hits = closest(word, choices)
    return f"; did you mean {', '.join(hits)}?" if hits else ""


def parse_int(name: str, key: str, value: str | None, lo: int, hi: int | None = None) -> int:
    """An integer option in ``[lo, hi]``; the error names the format and the bound."""
    try:
        v = int(value) if value is not None else None
    except ValueError:
        v = None
    if value is None:
        raise ValueError(f"'{name}' option {key} needs a value, e.g. '{key}={max(lo, 1) if hi is None else hi}'")
    if v is None or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"'{name}' option {key} must be an integer {rng}, not {value!r}")
    return v


def parse_choice(name: str, key: str, value: str | None, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(
            f"'{name}' option {key} must be one of {', '.join(choices)}, not {value!r}"
            + suggestion(value or "", choices)
        )
    return value


def split_options(name: str, tokens: list[str], allowed: Iterable[str]) -> dict[str, str | None]:
    """``['group=128', 'asym']`` -> ``{'group': '128', 'asym': None}``, unknown keys rejected."""
    allowed = tuple(allowed)
    out: dict[str, str | None] = {}
    for tok in tokens:
        key, eq, value = tok.partition("=")
        if key not in allowed:
            raise ValueError(
                f"'{name}' has no option {key!r}"
                + suggestion(key, allowed)
                + (f" (options: {', '.join(allowed)})" if allowed else " (it takes no options)")
            )
        if key in out:
            raise ValueError(f"'{name}' option {key} is given twice")
        out[key] = value if eq else None
    return out


OptionParser = Callable[[str, list[str]], object]
