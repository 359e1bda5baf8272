"""The `masec` command: version, formats table/JSON, demo, one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from mase_compiler import __version__
from mase_compiler.cli import main
from mase_compiler.numerics import BUILTIN_SPECS, parse


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_version_console_script():
    out = subprocess.run([sys.executable, "-m", "mase_compiler.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"masec {__version__}"


def test_formats_json_lists_every_builtin(capsys):
    rc, out, _ = _run(capsys, "formats", "--json")
    assert rc == 0
    rows = json.loads(out)
    assert [r["spec"] for r in rows] == [str(parse(s)) for s in BUILTIN_SPECS]
    by_spec = {r["spec"]: r for r in rows}
    # Hand-checked facts (OCP MX v1.0 table, FP8 conventions).
    assert by_spec["fp8_e4m3"]["max"] == 448.0 and by_spec["fp8_e4m3"]["min_subnormal"] == 2.0**-9
    assert by_spec["fp8_e5m2"]["max"] == 57344.0 and by_spec["fp8_e5m2"]["min_subnormal"] == 2.0**-16
    assert by_spec["fp4_e2m1"]["max"] == 6.0 and by_spec["fp4_e2m1"]["min_subnormal"] == 0.5
    assert by_spec["mxfp4"]["bits_per_element"] == 4 + 8 / 32
    assert by_spec["mxfp8_e4m3"]["max"] == 448.0 * 2.0**127
    assert by_spec["int4:group=128"]["bits_per_element"] == 4 + 32 / 128
    assert by_spec["dint4"]["min_subnormal"] == 0.5 and by_spec["dint4"]["max"] == 6.0


def test_formats_table_for_named_specs(capsys):
    rc, out, _ = _run(capsys, "formats", "mxfp4:block=16", "int4:asym")
    assert rc == 0
    assert "mxfp4:block=16" in out and "int4:asym" in out and "4.5" in out


@pytest.mark.parametrize("argv, needle", [
    (["formats", "mxfp5"], "mxfp4"),
    (["formats", "int0"], "2..16"),
    (["formats", "mxfp4:block=0"], "block"),
    (["formats", "--errors", "int8:grup=4"], "group"),
])
def test_bad_spec_one_line_error(capsys, argv, needle):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("masec: error: ") and needle in lines[0]


def test_bad_spec_exit_code_from_shell():
    res = subprocess.run([sys.executable, "-m", "mase_compiler.cli", "formats", "mxfp5"], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_demo_error_table_is_consistent(capsys):
    rc, out, _ = _run(capsys, "formats", "--errors", "--json", "mxfp8_e4m3", "mxfp4", "int4", "dint4")
    assert rc == 0
    rows = {(r["format"], r["tensor"]): r for r in json.loads(out)}
    from mase_compiler.format_errors import builtin_tensors

    # Recompute one SQNR independently with torch.
    x = builtin_tensors()["weight"]
    q = parse("mxfp4").quantize(x)
    sqnr = 10 * math.log10(float((x.double() ** 2).mean() / ((q - x).double() ** 2).mean()))
    assert rows[("mxfp4", "weight")]["sqnr_db"] == pytest.approx(sqnr)
    # More bits, less error; dINT flushes fewer small weights to zero than INT4 (its reason to exist).
    assert rows[("mxfp8_e4m3", "weight")]["sqnr_db"] > rows[("mxfp4", "weight")]["sqnr_db"] + 10
    assert rows[("dint4", "weight")]["flushed"] < rows[("int4", "weight")]["flushed"]
    assert torch.isfinite(torch.tensor([r["rel_rmse"] for r in rows.values()])).all()
