"""EdgeQAT benchmark (issue 8): PTQ vs QAT vs QAT + entropy/distribution terms vs + token-adaptive bits.

On the small LLaMA-style LM that ``bench/zoo.py`` trains on CPython's documentation (held-out perplexity,
256-token windows), and on all-MiniLM-L6-v2 (embedding cosine / top-10 retrieval vs FP32; trained by
distillation only, on sentences disjoint from the evaluation's).  For W4A8 (int4 per-channel weights, int8 per-token activations) and W4A4 (int4
per-token activations), query and key quantized like the activations (``quantize{query= key=}``):

* ``PTQ``: the pipeline alone (round to nearest, dynamic per-token activation scales);
* ``QAT``: :func:`mase_compiler.train.train` with task + distillation only (entropy and distribution
  weights 0): LSQ weight steps, straight-through estimator;
* ``QAT+E+D``: the same with EdgeQAT's entropy term on the quantized query/key and the attention-map
  distribution term (``mase_compiler.train.DEFAULT_WEIGHTS``); for W4A4 also each term alone (``QAT+E``,
  ``QAT+D``);
* ``+token bits`` (W4A8 only, PTQ and QAT+E+D): ``token-bits`` after quantize: the half of the tokens that
  attention deems least important take int4 activations in the linear layers after each attention block;
* a control, ``FP32 fine-tuned``: the same training steps without quantization (the LM was trained for
  minutes only, so some of what QAT gains is plain fine-tuning).

Training runs on windows of the LM's *training* split, evaluation on the held-out split.  Each row's
``avg A bits`` is the activation bits per element of the quantized matmul inputs (token-bits: as counted
by the pass on its calibration data).  Speed against FP16 on a GPU is not measured here (no GPU on this
machine; the emitted model emulates int4 / int8 in float on CPU).

    .venv/bin/python bench/edgeqat.py [--models lm minilm] [--steps 200] [--train 32] [--eval 32] [--sentences 300]
                                      [--lr 2e-5] [--json PATH]
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


def _mean_loss(history: list[dict]) -> float | None:
    """The mean total loss over some steps (one batch's loss is noisy)."""
    return round(sum(h["loss"] for h in history) / len(history), 4) if history else None


def lm_setup(args) -> tuple:
    """The trained LM: FP32 model, training batches, and its score (held-out perplexity, lower is better)."""
    from mase_compiler.driver import import_model

    lm_zoo.train_lm("small")
    fp32 = import_model(lm_zoo.lm_onnx("small"))
    held = lm_zoo.heldout_batches("small", SEQ, args.eval)
    return fp32, train_batches(args.train), lambda model: {"perplexity": round(perplexity(model, held), 4)}


def minilm_setup(args) -> tuple:
    """all-MiniLM-L6-v2: FP32 model, training batches (sentences disjoint from the evaluation's), and its score
    (embedding cosine and top-10 retrieval agreement vs FP32, ``bench/accuracy.py``'s).  No task loss: the
    encoder is trained by distillation (and the EdgeQAT terms) alone."""
    import accuracy

    from mase_compiler import sentences, zoo
    from mase_compiler.driver import import_model
    from mase_compiler.interpreter import Interpreter

    fp32 = import_model(zoo.export("minilm", "dynamo").path)
    n_q = max(1, args.sentences // 5)
    split = sentences.splits(args.train * 8, args.sentences - n_q, n_q)
    tok = accuracy.load_tokenizer()
    batches, unsort = accuracy.eval_batches(tok, split["corpus"] + split["queries"])

    def emb(model):
        run = Interpreter(model)
        return accuracy.embeddings(lambda b: run(b)["last_hidden_state"].float().numpy(), batches, unsort)

    ref = emb(fp32)
    data = [accuracy.encode(tok, split["calib"][i:i + 8], padding="max_length", max_length=32)
            for i in range(0, len(split["calib"]), 8)]

    def score(model) -> dict:
        sc = accuracy.score(ref, emb(model), len(split["corpus"]))
        return {"cosine": round(sc["cosine"], 5), "top10": round(sc["top10"], 4)}

    return fp32, data, score


def bench_model(name: str, fp32, data, score, args, log) -> list[dict]:
    from mase_compiler.pipeline import run_pipeline
    from mase_compiler.session import Session
    from mase_compiler.train import copy_model, train

    rows = [{"model": name, "scheme": "FP32", "method": "-", **score(fp32), "avg_a_bits": 32.0, "seconds": 0.0}]
    log(json.dumps(rows[0]))
    # The control: the same training without quantization.  The LM was trained for minutes only, so part of
    # what QAT gains there is plain fine-tuning on more of the training split; this row measures that part.
    configs = [("FP32", "dce", 32.0), ("W4A8", W4A8, 8.0), ("W4A4", W4A4, 4.0)]
    for scheme, pipeline, a_bits in configs:
        variants = [("PTQ", pipeline, None), ("QAT", pipeline, NO_EDGE), ("QAT+E+D", pipeline, {})]
        if scheme == "FP32":
            variants = [("fine-tuned (same steps, no quantization)", pipeline, NO_EDGE)]
        if scheme == "W4A4":  # ablation: each EdgeQAT term alone
            variants += [("QAT+E", pipeline, {"distribution": 0.0}), ("QAT+D", pipeline, {"entropy": 0.0})]
        if scheme == "W4A8":
            variants += [("PTQ+token bits", f"{pipeline},{TOKEN_BITS}", None),
                         ("QAT+E+D+token bits", f"{pipeline},{TOKEN_BITS}", {})]
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
            row = {"model": name, "scheme": scheme, "method": method, "pipeline": pipe, **score(model),
                   "avg_a_bits": None if bits is None else round(bits, 3), "seconds": round(time.perf_counter() - t1, 1),
                   "first_loss": _mean_loss(history[:10]), "last_loss": _mean_loss(history[-10:])}
            rows.append(row)
            log(json.dumps(row))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["lm", "minilm"], choices=["lm", "minilm"])
    ap.add_argument("--steps", type=int, default=200, help="QAT steps")
    ap.add_argument("--train", type=int, default=32, help="training batches (LM: 4 windows; MiniLM: 8 sentences), cycled")
    ap.add_argument("--eval", type=int, default=32, help="LM held-out windows for perplexity")
    ap.add_argument("--sentences", type=int, default=300, help="MiniLM held-out sentences (corpus + 1/5 as queries)")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "edgeqat.json"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    setups = {"lm": lm_setup, "minilm": minilm_setup}
    rows: list[dict] = []
    for name in args.models:
        rows += bench_model(name, *setups[name](args), args, log)
    out = {"command": " ".join([".venv/bin/python", "bench/edgeqat.py", *sys.argv[1:]]), "steps": args.steps,
           "lr": args.lr, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    for name in args.models:
        mine = [r for r in rows if r["model"] == name]
        metrics = [k for k in ("perplexity", "cosine", "top10") if k in mine[0]]
        print(f"\n{name}\n\n| scheme | method | {' | '.join(metrics)} | avg activation bits | seconds | loss, first -> last 10 steps |")
        print("|---|---|" + "---|" * len(metrics) + "---|---|---|")
        for r in mine:
            loss = f"{r.get('first_loss')} -> {r.get('last_loss')}" if r.get("first_loss") is not None else ""
            print(f"| {r['scheme']} | {r['method']} | {' | '.join(str(r[m]) for m in metrics)} | {r['avg_a_bits']} | "
                  f"{r['seconds']} | {loss} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
