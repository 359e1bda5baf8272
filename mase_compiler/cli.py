"""The ``masec`` command: each subcommand is a thin layer over the Python
function of the same name, printing a table for people or JSON for machines.

Errors the user can fix (bad format specs, bad options) print one line,
``masec: error: …``, and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

from . import __version__


def _number(v: object) -> str:
    if not isinstance(v, float):
        return str(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.4g}"
    return f"{v:g}"


def _print_table(title: str, rows: list[dict[str, object]], columns: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for _, header in columns:
        table.add_column(header, justify="left" if header in ("format", "tensor", "family", "scale") else "right")
    for row in rows:
        table.add_row(*(_number(row[key]) for key, _ in columns))
    # Off a terminal (pipes, CI logs) rich would wrap at 80 columns; give tables room instead.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _json_default(v: object) -> object:
    return str(v)


def _dump(rows: object) -> None:
    # JSON has no Infinity: write non-finite floats as strings so any parser reads the output.
    def clean(o: object) -> object:
        if isinstance(o, float) and not math.isfinite(o):
            return str(o)
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    json.dump(clean(rows), sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def cmd_formats(args: argparse.Namespace) -> int:
    from .formats import formats

    rows = formats(args.spec) if args.spec else formats()
    if args.json:
        _dump(rows)
        return 0
    for row in rows:
        unit = " × scale" if row["units"] == "scale" else ""
        row["range"] = f"[{_number(row['min'])}, {_number(row['max'])}]{unit}"
        row["smallest"] = _number(row["min_subnormal"]) + unit
    _print_table(
        "masec number formats",
        rows,
        [("spec", "format"), ("family", "family"), ("bits_per_element", "bits/elem"), ("range", "range"),
         ("smallest", "smallest > 0"), ("scale", "shared scale")],
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    rows = demo(args.spec) if args.spec else demo()
    if args.json:
        _dump(rows)
        return 0
    _print_table(
        "Quantization error of built-in tensors (SQNR: higher is better)",
        rows,
        [("format", "format"), ("tensor", "tensor"), ("bits_per_element", "bits/elem"), ("sqnr_db", "SQNR dB"),
         ("rel_rmse", "rel. RMSE"), ("flushed", "flushed to 0")],
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="masec", description="masec: an MLIR-style quantization compiler")
    p.add_argument("--version", action="version", version=f"masec {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser("formats", help="list number formats: bits per element, range, smallest value")
    f.add_argument("spec", nargs="*", help="format specs to describe (default: the built-in set)")
    f.add_argument("--json", action="store_true", help="print JSON instead of a table")
    f.set_defaults(func=cmd_formats)

    d = sub.add_parser("demo", help="quantize built-in tensors in every format and print the error table")
    d.add_argument("spec", nargs="*", help="format specs to try (default: the built-in set)")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        print(f"masec: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
