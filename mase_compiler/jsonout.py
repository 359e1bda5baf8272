"""JSON that every parser reads: compile.json, report.json, verify's JSON, ``--json`` output, benchmarks.

JSON has no Infinity or NaN, so non-finite floats are written as the strings "inf", "-inf" and
"nan"; numpy scalars become Python numbers; anything else unknown is written with ``str``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def json_safe(o: Any) -> Any:
    """``o`` with non-finite floats as strings, numpy scalars as Python numbers, tuples as lists."""
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    return o


def dumps(o: Any) -> str:
    """Indented JSON text of ``o`` ending in a newline."""
    return json.dumps(json_safe(o), indent=2, default=str) + "\n"


__all__ = ["dumps", "json_safe"]
