"""The table behind ``masec formats``: every built-in format and its facts."""

from __future__ import annotations

from .numerics import BUILTIN_SPECS, parse


def formats(specs: tuple[str, ...] | list[str] = BUILTIN_SPECS) -> list[dict[str, object]]:
    """One row per format: spec, family, bits per element, range, smallest positive value, scale."""
    rows = []
    for spec in specs:
        fmt = parse(spec)
        info = fmt.describe()
        lo = info.get("min", -float(info["max"]))
        rows.append(
            {
                "spec": str(fmt),
                "family": info["family"],
                "bits_per_element": fmt.bits_per_element,
                "min": lo,
                "max": info["max"],
                "min_subnormal": info["min_subnormal"],
                "units": info.get("units", "absolute"),
                "scale": info["scale"],
            }
        )
    return rows
