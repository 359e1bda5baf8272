"""EdgeQAT benchmark (issue 8): PTQ vs QAT vs QAT + entropy/distribution terms vs + token-adaptive bits.

On the small LLaMA-style LM that ``bench/zoo.py`` trains on CPython's documentation (held-out perplexity,
256-token windows).  For W4A8 (int4 per-channel weights, int8 per-token activations) and W4A4 (int4
per-token activations), query and key quantized like the activations (``quantize{query= key=}``):

* ``PTQ``: the pipeline alone (round to nearest, dynamic per-token activation scales);
* ``QAT``: :func:`mase_compiler.train.train` with task + distillation only (entropy and distribution
  weights 0): LSQ weight steps, straight-through estimator;
* ``QAT+E+D``: the same with EdgeQAT's entropy term on the quantized query/key and the attention-map
  distribution term (``mase_compiler.train.DEFAULT_WEIGHTS``);
* ``+token bits`` (W4A8 only): ``token-bits`` after quantize: the half of the tokens that attention
  deems least important take int4 activations in the linear layers after each attention block.

Training runs on windows of the LM's *training* split, evaluation on the held-out split.  Each row's
``avg A bits`` is the activation bits per element of the quantized matmul inputs (token-bits: as counted
by the pass on its calibration data).  Speed against FP16 on a GPU is not measured here (no GPU on this
machine; the emitted model emulates int4 / int8 in float on CPU).

    .venv/bin/python bench/edgeqat.py [--steps 60] [--train 16] [--eval 16] [--lr 1e-4] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo as lm_zoo  # noqa: E402  (the trained LM)

ROOT = Path(__file__).resolve().parent.parent
SEQ = 256
W4A8 = 'quantize{w="int4:channel" a="int8:token" query="int8:token" key="int8:token"}'
W4A4 = 'quantize{w="int4:channel" a="int4:token" query="int4:token" key="int4:token"}'
TOKEN_BITS = 'token-bits{high="int8:token" low="int4:token" ratio=0.5}'
NO_EDGE = {"entropy": 0.0, "distribution": 0.0}


def train_batches(n: int, batch: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``n`` batches of ``batch`` random 256-token windows of the LM's training split."""
    tok = lm_zoo.load_tokenizer("small")
    train, _, _ = lm_zoo._streams(tok)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(train) - SEQ, size=(n, batch))
    return [{"input_ids": np.stack([train[s:s + SEQ] for s in row]).astype(np.int64)} for row in starts]


def perplexity(model, batches: list[np.ndarray]) -> float:
    from mase_compiler.interpreter import Interpreter

    run = Interpreter(model)
    return lm_zoo.perplexity(lambda ids: run({"input_ids": ids})["logits"].float().numpy(), batches)


def activation_bits(notes: list[dict]) -> float | None:
    for rec in notes:
        if rec.get("pass") == "token-bits" and "avg_activation_bits" in rec.get("notes", {}):
            return rec["notes"]["avg_activation_bits"]
    return None


def main(argv: list[str] | None = None) -> int:
    from mase_compiler.driver import import_model
    from mase_compiler.pipeline import run_pipeline
    from mase_compiler.session import Session
    from mase_compiler.train import copy_model, train

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="QAT steps")
    ap.add_argument("--train", type=int, default=16, help="training batches of 4 windows (cycled)")
    ap.add_argument("--eval", type=int, default=16, help="held-out windows for perplexity")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "edgeqat.json"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    lm_zoo.train_lm("small")
    fp32 = import_model(lm_zoo.lm_onnx("small"))
    held = lm_zoo.heldout_batches("small", SEQ, args.eval)
    data = train_batches(args.train)
    rows = [{"scheme": "FP32", "method": "-", "perplexity": round(perplexity(fp32, held), 4), "avg_a_bits": 32.0,
             "seconds": 0.0}]
    log(f"FP32 perplexity {rows[0]['perplexity']}")
    configs = [("W4A8", W4A8, 8.0), ("W4A4", W4A4, 4.0)]
    for scheme, pipeline, a_bits in configs:
        variants = [("PTQ", pipeline, None), ("QAT", pipeline, NO_EDGE), ("QAT+E+D", pipeline, {})]
        if scheme == "W4A8":
            variants.append(("QAT+E+D+token bits", f"{pipeline},{TOKEN_BITS}", {}))
        for method, pipe, weights in variants:
            t1 = time.perf_counter()
            if weights is None:
                model = copy_model(fp32)
                records = run_pipeline(model, pipe, session=Session(model, calibration=data[:4]))
                history = []
            else:
                result = train(fp32, pipe, data, steps=args.steps, lr=args.lr, seed=0, weights=weights or None)
                model, history = result["model"], result["history"]
                records = result["records"]
            bits = activation_bits(records) if "token-bits" in pipe else a_bits
            row = {"scheme": scheme, "method": method, "pipeline": pipe, "perplexity": round(perplexity(model, held), 4),
                   "avg_a_bits": None if bits is None else round(bits, 3), "seconds": round(time.perf_counter() - t1, 1),
                   "first_loss": round(history[0]["loss"], 4) if history else None,
                   "last_loss": round(history[-1]["loss"], 4) if history else None}
            rows.append(row)
            log(json.dumps(row))
    out = {"command": " ".join([".venv/bin/python", "bench/edgeqat.py", *sys.argv[1:]]), "steps": args.steps,
           "lr": args.lr, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print("| scheme | method | perplexity | avg activation bits | seconds | loss first -> last |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        loss = f"{r.get('first_loss')} -> {r.get('last_loss')}" if r.get("first_loss") is not None else ""
        print(f"| {r['scheme']} | {r['method']} | {r['perplexity']} | {r['avg_a_bits']} | {r['seconds']} | {loss} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
