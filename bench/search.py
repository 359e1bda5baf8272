"""Mixed-precision search benchmark (issue 7): mixed MX vs uniform MXFP4 / MXINT8 / int8 on all-MiniLM-L6-v2.

For each configuration, compiled with ``mase_compiler.compiler.compile`` to the PyTorch target and run through
the emitted model on held-out sentences (``bench/accuracy.py``'s data and scores: embedding cosine and top-10
retrieval agreement against FP32), plus the cost model's totals (``mase_compiler.cost``: bits per weight /
activation element, LUT-equivalent area, energy) and the compile (search) wall time:

* ``mx4-search``: the search pass, exact ILP on measured per-tensor sensitivities, <= 4.5 bits per element;
* ``search@B`` for other budgets B (``--budgets``): the Pareto sweep, measured;
* uniform ``mxfp4`` (4.25 bits), ``mxint8`` (8.25 bits) and ``w8a8`` (int8 weights, uint8 activations).

    .venv/bin/python bench/search.py [--sentences N] [--calib N] [--budgets 4.5 5.5 6.5] [--json PATH]

The trained LM of ``bench/zoo.py`` is not measured here yet (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402  (MiniLM data, embeddings and scores)

ROOT = Path(__file__).resolve().parent.parent
UNIFORM = ("mxfp4", "mxint8", "w8a8")


def main(argv: list[str] | None = None) -> int:
    from mase_compiler import sentences as text
    from mase_compiler.compiler import compile
    from mase_compiler.cost import model_cost
    from mase_compiler.model import Model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=300, help="held-out sentences (corpus + 1/5 as queries)")
    ap.add_argument("--calib", type=int, default=32, help="calibration / sensitivity sentences")
    ap.add_argument("--budgets", type=float, nargs="*", default=[5.5, 6.5])
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "search.json"))
    args = ap.parse_args(argv)

    n_q = max(1, args.sentences // 5)
    split = text.splits(args.calib, args.sentences - n_q, n_q)
    tok = accuracy.load_tokenizer()
    from mase_compiler import zoo

    source = zoo.export("minilm", "dynamo").path
    batches, unsort = accuracy.eval_batches(tok, split["corpus"] + split["queries"])
    ref = accuracy.embeddings(accuracy.interpreter_forward(source), batches, unsort)
    rows = []
    configs = [("mx4-search", "mx4-search"),
               *((f"search@{b}", f'search{{formats="mxint8,mxfp6_e2m3,mxfp4" budget={b}}}') for b in args.budgets),
               *((u, u) for u in UNIFORM)]
    with tempfile.TemporaryDirectory(prefix="masec_bench_search_") as tmp:
        calib = Path(tmp) / "calib.txt"
        calib.write_text("\n".join(split["calib"]))
        for name, pipeline in configs:
            out = Path(tmp) / name.replace("@", "_")
            t0 = time.perf_counter()
            result = compile(source, pipeline, "pytorch", out, calib=calib, tokenizer=accuracy.tokenizer_dir(),
                             max_samples=args.calib, batch_size=8)
            seconds = time.perf_counter() - t0
            fwd, _ = accuracy.masec_forward(out)
            s = accuracy.score(ref, accuracy.embeddings(fwd, batches, unsort), len(split["corpus"]))
            cost = model_cost(Model.load(out / "quantized.mlir")).totals
            notes = next((p["notes"] for p in result["passes"] if p["pass"] == "search"), {})
            row = dict(config=name, cosine=round(s["cosine"], 5), top10=round(s["top10"], 4),
                       bits_per_weight=round(cost["bits_per_weight"], 3),
                       bits_per_activation=round(cost["bits_per_activation"], 3),
                       area_le=round(cost["area_le"]), energy_uj=round(cost["energy_pj"] / 1e6, 3),
                       compile_seconds=round(seconds, 1), search_avg_bits=notes.get("search_avg_bits"),
                       predicted_sqnr_db=notes.get("search_predicted_sqnr_db"),
                       measured_sqnr_db=notes.get("search_measured_sqnr_db"),
                       evaluations=notes.get("search_evaluations"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))
    print("| config | cosine | top-10 | bits/weight | bits/act | area LE | energy uJ | compile s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['cosine']} | {r['top10']} | {r['bits_per_weight']} | {r['bits_per_activation']} | "
              f"{r['area_le']} | {r['energy_uj']} | {r['compile_seconds']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
