"""ONNX backend node-test conformance of the ONNX frontend and the reference interpreter.

For every op type the frontend claims (``mase_compiler.frontends.onnx.SUPPORTED_OPS``),
every one of onnx's own node test cases for that op (``onnx.backend.test.case.node``:
the cases behind ``onnx/backend/test/data/node``) whose model imports an opset in
13-24 is imported, printed, re-parsed, run by the interpreter on the case's inputs
and compared with the case's expected outputs, as onnx's backend test runner
compares them: same shape and dtype, ``np.testing.assert_allclose`` with the
case's ``rtol``/``atol`` (1e-3 / 1e-7 unless the case sets them; bfloat16 outputs
rtol >= 2**-6), integers and booleans exactly.

Cases that onnx makes at a newer opset than 24 (onnx 1.23 writes the newest version
of an op: Cast-28, Pad-25, Reshape-25, ...) are re-stamped as opset 24 and run when
onnx's full checker accepts them there (the op existed at 24 with the attributes and
types the case uses); cases made below 13 (And-7, Not-1, ...) are re-stamped as opset
13 when every op in them has the same version (so the same definition) at 13.  These
"restamped" cases are counted separately.

A case belongs to the op it tests: the op of its one node, or for a function's
``*_expanded`` case (a graph of other ops) the op of the case it expands.  Cases
of ops the frontend does not claim are also run when every node in them is a
claimed op (mostly expanded functions); they are listed separately.

Outcomes:
  pass       all outputs match.  ``static``: the case feeds an axes/pads/scales-like
             input at run time, which the frontend requires to be a constant; the
             case passed with exactly the inputs the frontend named turned into
             initializers holding the case's values (the data inputs stay inputs).
  rejected   the frontend refused the model with a one-line FrontendError (unsupported
             attribute value, element type, op inside an expanded graph, ...).
  error      an exception that is not a FrontendError: an importer or interpreter bug
             or gap (the interpreter's InterpreterError, a torch kernel without that dtype, ...).
  mismatch   the outputs differ from the expected ones (shape, dtype or values).

    python bench/conformance.py              # table of every claimed op; JSON to bench/results/conformance.json
    python bench/conformance.py --op Resize  # one op, with every case's outcome (no JSON unless --json)
    python bench/conformance.py --failures   # also list every failing case with its message
    python bench/conformance.py --markdown docs/_conformance_tables.md   # the tables as Markdown
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import torch

from mase_compiler.frontends.errors import FrontendError
from mase_compiler.frontends.onnx import SUPPORTED_OPS, import_onnx
from mase_compiler.frontends.onnx._importer import MAX_OPSET, MIN_OPSET
from mase_compiler.interpreter import run
from mase_compiler.model import Model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "conformance.json"
DEFAULT_DOMAINS = ("", "ai.onnx")


# ---- cases --------------------------------------------------------------------------------------
def collect() -> list:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return collect_testcases(None)


def opset_of(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), default=0)


def node_ops(model: onnx.ModelProto) -> list[str]:
    """Op types of the graph's nodes (domain-qualified outside the default domain), in order, once each."""
    ops = [n.op_type if n.domain in DEFAULT_DOMAINS else f"{n.domain}.{n.op_type}" for n in model.graph.node]
    return list(dict.fromkeys(ops))


_EXPANDED = re.compile(r"^(.*)_expanded(_ver\d+)?$")


def _squash(s: str) -> str:
    return s.lower().replace("_", "")


def tested_op(case, by_name: dict, schemas: list[str]) -> str:
    """The op a case tests."""
    m = _EXPANDED.match(case.name)
    if m and m.group(1) in by_name:
        return tested_op(by_name[m.group(1)], by_name, schemas)
    ops = [o for o in node_ops(case.model) if o != "Constant"] or node_ops(case.model)
    if len(ops) == 1 and not m:
        return ops[0]
    name = _squash(case.name.removeprefix("test_"))
    pool = schemas if m else ops
    hits = [o for o in pool if name.startswith(o.lower())]
    if hits:
        return max(hits, key=len)
    return ops[-1] if ops else "?"


# ---- running one case -----------------------------------------------------------------------------
def as_array(x) -> np.ndarray:
    """A case's input or expected output as numpy (newer cases store some as TensorProto)."""
    if isinstance(x, onnx.TensorProto):
        return onnx.numpy_helper.to_array(x)
    return np.asarray(x)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def compare(got: list[np.ndarray], ref: list[np.ndarray], rtol: float, atol: float) -> str | None:
    """None if ``got`` matches ``ref`` as onnx's backend runner judges; else what differs."""
    if len(got) != len(ref):
        return f"{len(got)} outputs, expected {len(ref)}"
    for i, (g, r) in enumerate(zip(got, ref)):
        r = np.asarray(r)
        if g.shape != r.shape:
            return f"output {i}: shape {list(g.shape)}, expected {list(r.shape)}"
        if g.dtype != r.dtype:
            return f"output {i}: dtype {g.dtype}, expected {r.dtype}"
        if r.dtype.kind in "biu":
            if not np.array_equal(g, r):
                return f"output {i}: {int((g != r).sum())} of {r.size} values differ"
            continue
        out_rtol = rtol
        if r.dtype == ml_dtypes.bfloat16:
            out_rtol = max(rtol, 2**-6)
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        try:
            np.testing.assert_allclose(g64, r64, rtol=out_rtol, atol=atol)
        except AssertionError:
            with np.errstate(invalid="ignore"):
                bad = ~np.isclose(g64, r64, rtol=out_rtol, atol=atol, equal_nan=True)
                err = np.abs(g64 - r64)[bad]
                rel = (err / np.maximum(np.abs(r64[bad]), 1e-300)) if err.size else err
            return (f"output {i}: {int(bad.sum())} of {r.size} values off by up to {np.nanmax(err):.3g} "
                    f"(relative {np.nanmax(rel):.3g}; rtol {out_rtol:g}, atol {atol:g})")
    return None


def same_schemas(model: onnx.ModelProto, old: int, new: int) -> bool:
    """Whether every node of ``model`` has the same op version (so the same definition) at opsets ``old`` and ``new``."""
    try:
        return all(onnx.defs.get_schema(n.op_type, old, n.domain).since_version
                   == onnx.defs.get_schema(n.op_type, new, n.domain).since_version for n in model.graph.node)
    except onnx.defs.SchemaError:
        return False


def restamp(model: onnx.ModelProto, opset: int = MAX_OPSET) -> onnx.ModelProto | None:
    """``model`` (a case made at another opset) as an opset-``opset`` model, if onnx's full checker accepts it there."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for imp in m.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            imp.version = opset
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception:  # noqa: BLE001  (checker and shape-inference errors)
        return None
    return m


_NEEDS_CONSTANT = re.compile(r"\(input '([^']*)'\) must be a constant")


def with_initializers(m: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``m`` with the graph inputs named in ``values`` turned into initializers holding those values."""
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    keep = [vi for vi in m.graph.input if vi.name not in values]
    del m2.graph.input[:]
    m2.graph.input.extend(keep)
    m2.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(x), n) for n, x in values.items())
    return m2


def import_case(m: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[Model, dict[str, np.ndarray]]:
    """Import ``m``; where the frontend needs a graph input to be a constant (axes, pads, scales, ...), make
    exactly that input an initializer with the case's value and retry.  Returns the model and those values."""
    static: dict[str, np.ndarray] = {}
    src = m
    while True:
        try:
            return import_onnx(src), static
        except FrontendError as e:
            hit = _NEEDS_CONSTANT.search(str(e))
            name = hit.group(1) if hit else None
            if name is None or name not in feeds or name in static:
                raise
            static[name] = feeds[name]
            src = with_initializers(m, static)


def run_case(case, m: onnx.ModelProto | None = None) -> dict:
    m = m if m is not None else case.model
    res: dict = {"case": case.name, "opset": opset_of(case.model), "static": False}
    names = [vi.name for vi in m.graph.input]
    datasets = [(dict(zip(names, (as_array(x) for x in ins))), [as_array(y) for y in outs]) for ins, outs in case.data_sets or []]
    try:
        model, static = import_case(m, datasets[0][0] if datasets else {})
        res["static"] = bool(static)
        text = model.text()
        if Model.parse(text, model.weights).text() != text:
            return {**res, "outcome": "error", "message": "the printed IR does not round-trip"}
    except FrontendError as e:
        return {**res, "outcome": "rejected", "message": str(e)}
    except Exception as e:  # noqa: BLE001
        return {**res, "outcome": "error", "message": f"import: {type(e).__name__}: {first_line(e)}"}
    for feeds, outs in datasets:
        if any(not np.array_equal(feeds[n], v) for n, v in static.items()):
            continue  # a data set with other values for the inputs made constant: not this model
        try:
            got = [to_numpy(t) for t in run(model, {n: x for n, x in feeds.items() if n not in static}).values()]
        except Exception as e:  # noqa: BLE001
            return {**res, "outcome": "error", "message": f"run: {type(e).__name__}: {first_line(e)}"}
        diff = compare(got, list(outs), case.rtol, case.atol)
        if diff:
            return {**res, "outcome": "mismatch", "message": diff}
    return {**res, "outcome": "pass"}


def first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else ""


_NODE = re.compile(r"^(unnamed )?node( '[^']*'| #\d+)?( with output '[^']*')? \([A-Za-z]+\): ")


def reason(r: dict) -> str:
    """A case's message without what is particular to the case (node names, counts, sizes)."""
    msg = _NODE.sub("", r["message"])
    msg = re.sub(r"(initializer|input|output|value|graph input|reads) '[^']*'", r"\1 '…'", msg)
    msg = re.sub(r"\((unnamed node #\d+[^)]*|node '[^']*')\)", "(…)", msg)
    if r["outcome"] == "mismatch":
        msg = re.sub(r"\d+ of \d+ values", "values", msg)
        msg = re.sub(r"by up to .*$", "beyond tolerance", msg)
        msg = re.sub(r"output \d+: ", "", msg)
    msg = re.sub(r"\[[\d, ]*\]", "[…]", msg)
    msg = re.sub(r"'UInt(16|32|64)'", "'UInt16/32/64'", msg)  # one reason for the three unsigned widths
    msg = re.sub(r"element type \w+, which masec", "element type (fp8, fp4, int4, e8m0, string), which masec", msg)
    return f"{r['outcome']}: {msg}"


# ---- the report -------------------------------------------------------------------------------
def markdown(tables: list[tuple[str, dict[str, dict], bool]]) -> str:
    out = []
    for title, rows, counts in tables:
        if not rows:
            continue
        out.append(f"**{title}**\n")
        head = ["op", "cases", "passed", "static", "rejected", "error", "mismatch"] + (["restamped", "not run"] if counts else []) + ["why not passed (cases)"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if h in ("op", "why not passed (cases)") else "---:" for h in head) + "|")
        for op, s in rows.items():
            why = "; ".join(f"{k} ({v})" for k, v in s["reasons"].items()).replace("|", "\\|")
            cells = [op, s["cases"], s["passed"], s["static"] or "", s["rejected"] or "", s["error"] or "", s["mismatch"] or ""]
            if counts:
                cells += [s["restamped"] or "", (s["below_13_not_run"] + s["above_24_not_run"]) or ""]
            out.append("| " + " | ".join(str(c) for c in cells) + f" | {why} |")
        out.append("")
    return "\n".join(out)

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help=f"where to write the results (default {RESULTS.relative_to(ROOT)}; with --op: nowhere)")
    ap.add_argument("--op", action="append", help="only this op (repeatable); prints every case")
    ap.add_argument("--failures", action="store_true", help="list every case that did not pass")
    ap.add_argument("--markdown", type=Path, help="also write the tables as Markdown (for docs/frontends.md)")
    ap.add_argument("--no-restamp", action="store_true", help=f"do not run cases made at opsets above {MAX_OPSET} as opset {MAX_OPSET}")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    t0 = time.perf_counter()
    cases = collect()
    by_name = {c.name: c for c in cases}
    schemas = sorted({s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain in DEFAULT_DOMAINS})
    claimed = set(SUPPORTED_OPS)
    groups: dict[str, list] = defaultdict(list)  # op -> [(case, model)] at opsets 13-24
    newer: dict[str, list] = defaultdict(list)  # op -> [(case, restamped model)] made at opsets > 24 or < 13
    older: Counter = Counter()  # cases below opset 13 whose ops changed since (not run)
    invalid: Counter = Counter()  # cases above 24 that are not valid opset-24 models (not run)
    for c in cases:
        op = tested_op(c, by_name, schemas)
        all_supported = all(o in claimed for o in node_ops(c.model))
        if op not in claimed and not all_supported:
            continue
        if args.op and op not in args.op:
            continue
        v = opset_of(c.model)
        if v < MIN_OPSET:
            m = restamp(c.model, MIN_OPSET) if not args.no_restamp and same_schemas(c.model, v, MIN_OPSET) else None
            if m is None:
                older[op] += 1
            else:
                newer[op].append((c, m))
        elif v <= MAX_OPSET:
            groups[op].append((c, c.model))
        elif not args.no_restamp:
            m = restamp(c.model)
            if m is None:
                invalid[op] += 1
            else:
                newer[op].append((c, m))
        else:
            invalid[op] += 1

    def run_all(gs: dict[str, list]) -> dict[str, list[dict]]:
        return {op: [run_case(c, m) for c, m in sorted(gs[op], key=lambda cm: cm[0].name)] for op in sorted(gs)}

    results, results_newer = run_all(groups), run_all(newer)
    elapsed = time.perf_counter() - t0

    def summary(rs: list[dict], op: str) -> dict:
        n = Counter(r["outcome"] for r in rs)
        reasons = Counter(reason(r) for r in rs if r["outcome"] != "pass")
        return {"cases": len(rs), "passed": n["pass"], "static": sum(r["static"] for r in rs if r["outcome"] == "pass"),
                "rejected": n["rejected"], "error": n["error"], "mismatch": n["mismatch"],
                "below_13_not_run": older.get(op, 0), "above_24_not_run": invalid.get(op, 0),
                "restamped": len(results_newer.get(op, [])), "reasons": dict(reasons.most_common())}

    ops = sorted(claimed | set(results) | set(results_newer))
    rows = {op: summary(results.get(op, []), op) for op in ops}
    rows_newer = {op: summary(results_newer.get(op, []), op) for op in ops}
    claimed_rows = {op: s for op, s in rows.items() if op in claimed and (not args.op or op in args.op)}
    other_rows = {op: s for op, s in rows.items() if op not in claimed and s["cases"]}
    newer_rows = {op: s for op, s in rows_newer.items() if s["cases"]}

    def table(title: str, rs: dict[str, dict], counts: bool = True) -> Table:
        t = Table(title=title, show_lines=False)
        heads = ["op", "cases", "passed", "static", "rejected", "error", "mismatch"]
        if counts:
            heads += ["restamped", "not run"]
        for h in (*heads, "why not passed (cases)"):
            t.add_column(h, justify="left" if h in ("op", "why not passed (cases)") else "right", overflow="fold")
        for op, s in rs.items():
            why = "; ".join(f"{k} ({v})" for k, v in s["reasons"].items())
            cells = [op, str(s["cases"]), str(s["passed"]), str(s["static"] or ""), str(s["rejected"] or ""),
                     str(s["error"] or ""), str(s["mismatch"] or "")]
            if counts:
                cells += [str(s["restamped"] or ""), str(s["below_13_not_run"] + s["above_24_not_run"] or "")]
            t.add_row(*cells, why)
        return t

    def totals(rs: dict[str, dict]) -> dict:
        keys = ("cases", "passed", "static", "rejected", "error", "mismatch", "restamped", "below_13_not_run", "above_24_not_run")
        return {k: sum(s[k] for s in rs.values()) for k in keys} | {"ops": len(rs), "ops_without_cases": sorted(op for op, s in rs.items() if not s["cases"])}

    def line(name: str, t: dict) -> str:
        return (f"{name}: {t['ops']} ops, {t['cases']} cases: passed {t['passed']} ({t['static']} with static inputs), "
                f"rejected {t['rejected']}, error {t['error']}, mismatch {t['mismatch']}")

    console.print(table(f"ONNX node tests made at opsets {MIN_OPSET}-{MAX_OPSET}: ops the frontend claims "
                        f"(restamped: cases made at other opsets, run as {MIN_OPSET} or {MAX_OPSET}, see below)", claimed_rows))
    if other_rows:
        console.print(table("Cases of other ops whose every node is a claimed op (mostly expanded functions)", other_rows, counts=False))
    if newer_rows:
        console.print(table(f"Cases made at opsets {MAX_OPSET + 1}+ that onnx's full checker accepts as opset-{MAX_OPSET} models, "
                            f"run as opset {MAX_OPSET}, and cases made below {MIN_OPSET} whose ops are unchanged at {MIN_OPSET}, "
                            f"run as opset {MIN_OPSET}", newer_rows, counts=False))
    tc, to, tn = totals(claimed_rows), totals(other_rows), totals(newer_rows)
    # every case of a claimed op that ran, at its own opset or restamped
    summed = ("cases", "passed", "static", "rejected", "error", "mismatch")
    both = {op: {k: (v + rows_newer[op][k] if k in summed else v) for k, v in s.items()} for op, s in claimed_rows.items()}
    ta = totals(both)
    console.print(line(f"claimed ops, opsets {MIN_OPSET}-{MAX_OPSET}", tc)
                  + f"; made at other opsets: {tc['restamped']} restamped (below), not run: {tc['below_13_not_run']} below "
                  f"{MIN_OPSET} (op changed since), {tc['above_24_not_run']} above {MAX_OPSET} (invalid at {MAX_OPSET})")
    if not args.op:
        console.print(f"  claimed ops without a case at opsets {MIN_OPSET}-{MAX_OPSET}: {', '.join(tc['ops_without_cases']) or 'none'}")
    console.print(line("claimed ops, all cases run (own opset or restamped)", ta))
    if other_rows:
        console.print(line("other ops (all nodes claimed)", to))
    if newer_rows:
        console.print(line("restamped cases", tn))
    console.print(f"{elapsed:.1f} s")
    if args.failures or args.op:
        for tag, res in (("", results), (" (restamped)", results_newer)):
            for op, rs in res.items():
                for r in rs:
                    if args.op or r["outcome"] != "pass":
                        console.print(f"{op:22} {r['case'] + tag:70} {r['outcome']:9} {'static ' if r['static'] else ''}{r.get('message', '')}",
                                      highlight=False, markup=False, soft_wrap=True)

    report = {"command": " ".join(["python", "bench/conformance.py", *(argv if argv is not None else sys.argv[1:])]),
              "onnx": onnx.__version__, "torch": torch.__version__, "opsets": [MIN_OPSET, MAX_OPSET],
              "seconds": elapsed, "totals": {"claimed": tc, "other": to, "restamped": tn, "claimed_all": ta},
              "claimed": claimed_rows, "other": other_rows, "restamped": newer_rows,
              "cases": results, "cases_restamped": results_newer}
    path = args.json or (None if args.op else RESULTS)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        console.print(f"wrote {path}")
    if args.markdown:
        args.markdown.write_text(markdown([("ops the frontend claims, cases made at opsets 13-24", claimed_rows, True),
                                           ("other ops whose every node is a claimed op", other_rows, False),
                                           (f"cases made at other opsets, restamped (run as opset {MAX_OPSET} or {MIN_OPSET})", newer_rows, False)]))
        console.print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
