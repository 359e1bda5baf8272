"""A chosen per-layer assignment as a masec pipeline string that ``masec compile -p`` replays.

Each layer becomes one ``quantize`` rule ``^NAME$=W/A`` on the op's source-node name (the
rule's regex is anchored and escaped, so ``fc1`` does not also catch ``fc10``); a role the
assignment leaves out is ``none`` (float).  Ops no rule names stay float, since the pipeline
sets no default.  ``calibrate`` is put first when an activation format needs static scales
(per-tensor integers, FP8/FP6/FP4), as quantize requires.
"""

from __future__ import annotations

from collections.abc import Mapping

from mase_compiler.numerics import DIntFormat, IntFormat, MinifloatFormat, parse

from .problem import FLOAT, Solution


def _needs_calibration(spec: str) -> bool:
    if spec in (FLOAT, "float", ""):
        return False
    f = parse(spec)
    return (isinstance(f, (IntFormat, DIntFormat)) and f.granularity == "tensor") or \
        (isinstance(f, MinifloatFormat) and f.bits <= 8)


def _escape(name: str) -> str:
    """A regex matching ``name`` literally, without backslashes: the pipeline parser reads ``\\`` as an
    escape and prints it back unescaped, so each metacharacter goes in a one-character class instead."""
    bad = sorted(set(name) & set('"\\^]'))
    if bad:
        raise ValueError(f"layer names must not contain {' '.join(bad)} to be replayed as quantize rules, not {name!r}")
    return "".join(f"[{c}]" if c in ".$*+?{}[|()" else c for c in name)


def to_pipeline(assignment: Solution | Mapping[tuple[str, str], str], calibrate: str = "calibrate{method=minmax}",
                ops: str = "matmul,conv") -> str:
    """``calibrate…,quantize{rules="^fc1$=W/A",…}`` from ``{(layer, role): format}`` or a :class:`Solution`."""
    formats = assignment.formats if isinstance(assignment, Solution) else dict(assignment)
    layers: dict[str, dict[str, str]] = {}
    for (layer, role), spec in formats.items():
        if role not in ("weight", "activation"):
            raise ValueError(f"role must be weight or activation, not {role!r} (layer {layer})")
        if spec not in (FLOAT, "float"):
            parse(spec)  # an unknown format fails here, with the numerics' message
        layers.setdefault(layer, {})[role] = spec
    if not layers:
        raise ValueError("an assignment must name at least one layer")
    rules = []
    for layer in sorted(layers):  # sorted: the same assignment always gives the same string
        w, a = layers[layer].get("weight", FLOAT), layers[layer].get("activation", FLOAT)
        rules.append(f'"^{_escape(layer)}$={w}/{a}"')
    quantize = f"quantize{{rules={','.join(rules)}" + ("" if ops == "matmul,conv" else f" ops={ops}") + "}"
    static = any(role == "activation" and _needs_calibration(s) for (_, role), s in formats.items())
    return f"{calibrate},{quantize}" if static and calibrate else quantize
