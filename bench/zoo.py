"""A small LLaMA-style language model with trained weights, for the W4A8 perplexity benchmarks.

No pretrained model can be downloaded (DESIGN.md §8), so we train our own, on CPU in
minutes, on English prose that ships with CPython:

* **Corpus** (PSF licence, nothing downloaded): the full topic texts of
  ``pydoc_data.topics`` (the Python language reference behind ``help()``, 79 topics,
  0.46 MB in CPython 3.11) and the docstrings of the pure-Python standard library
  (modules, classes and functions, read with ``ast`` without importing anything;
  ``test``, ``idlelib``, ``tkinter``, ``turtledemo``, ``lib2to3`` and ``site-packages``
  left out; 1.5 MB in CPython 3.11.7).  A document is a topic or one module's
  docstrings joined by blank lines.
* **Split**, deterministic: in each source, documents in sorted name order, the last
  10 % held out (for the topics: ``typesmethods`` .. ``yield``).  Every document ends
  with an end-of-text token.
* **Tokenizer**: byte level (ids 0-255 are the UTF-8 bytes, then ``<|bos|>``,
  ``<|eos|>``, ``<|pad|>``), stored as a ``tokenizers`` ``tokenizer.json`` (a BPE model
  with the 256 byte symbols and no merges).  Why bytes rather than a trained BPE: with
  2 MB of text a BPE vocabulary of a few thousand would leave ~0.6 M training tokens
  and an embedding as large as the transformer, so a few-minute CPU run would mostly
  memorise; bytes give 4x more tokens, nothing to train, nothing unknown, and the
  held-out perplexity converts directly to bits per byte (log2 ppl).
* **Model**: ``transformers.LlamaForCausalLM`` (untied head); ``small`` is hidden 256,
  4 layers, 4 heads, intermediate 688, 512 positions (3.3 M parameters).  AdamW, linear
  warm-up then cosine decay, sequence length 256, random windows of the training
  stream, for a time budget (the schedule follows elapsed time) or a step count.
* **Cache**: ``<zoo cache>/lm/<size>/`` (``mase_compiler.zoo.default_cache_dir()``,
  git-ignored): ``model.safetensors`` + ``config.json`` (``save_pretrained``),
  ``tokenizer.json``, ``meta.json`` (corpus, split, spec, steps, losses, time,
  versions) and the ONNX export ``model-dynamo-opset18.onnx``.  A cache whose spec
  matches the request is reused.

The ONNX export is a wrapper taking ``input_ids`` (int64 [batch, sequence], both
dynamic) and returning ``logits``; no KV cache, no attention mask (causal only).

    .venv/bin/python bench/zoo.py                        # small, 8 minutes on CPU
    .venv/bin/python bench/zoo.py --size medium --device cuda --minutes 10
    .venv/bin/python bench/zoo.py --force               # retrain even if cached

Prints a table and writes ``bench/results/zoo-lm.json``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import functools
import hashlib
import json
import math
import os
import platform
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from mase_compiler.zoo import _quiet, default_cache_dir  # noqa: E402

__all__ = ["SIZES", "corpus", "heldout_batches", "lm_onnx", "load_lm", "load_tokenizer", "perplexity", "train_lm"]

# Model configs.  ``tiny`` is for tests.  All use the byte vocabulary below.
SIZES: dict[str, dict] = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=688, max_position_embeddings=512),
    "medium": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=1376, max_position_embeddings=512),
}
# Training defaults per size: batch (sequences of SEQ_LEN tokens) and peak learning rate.
TRAIN = {"tiny": dict(batch=8, lr=3e-3), "small": dict(batch=16, lr=1e-3), "medium": dict(batch=32, lr=6e-4)}
SEQ_LEN = 256
HELDOUT_FRACTION = 0.1
SEED = 0
OPSET = 18
SPECIALS = ("<|bos|>", "<|eos|>", "<|pad|>")
BOS, EOS, PAD = 256, 257, 258
VOCAB = 259
_SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "site-packages", "__pycache__"}
CORPUS_LICENCE = "PSF-2.0 (CPython's pydoc_data.topics and standard-library docstrings)"


class ZooLMError(ValueError):
    """A bad size, device or cache."""


# ---- corpus ------------------------------------------------------------------------------------------
def _topics() -> dict[str, str]:
    import pydoc_data.topics

    return dict(pydoc_data.topics.topics)


def _stdlib_docstrings() -> dict[str, str]:
    """``module path -> its docstrings joined by blank lines``, parsed with ``ast`` (nothing imported)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_DIRS.intersection(rel.parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        found = [ast.get_docstring(n) for n in ast.walk(tree)
                 if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        text = "\n\n".join(d for d in found if d)
        if text:
            docs[rel.as_posix()] = text
    return docs


@functools.lru_cache(maxsize=1)
def corpus() -> dict[str, dict[str, list[tuple[str, str]]]]:
    """``{"train" | "heldout": {source: [(name, text), ...]}}``: in each source the last 10 % of sorted names are held out."""
    out: dict[str, dict[str, list[tuple[str, str]]]] = {"train": {}, "heldout": {}}
    for source, docs in (("pydoc_data.topics", _topics()), ("stdlib docstrings", _stdlib_docstrings())):
        items = sorted(docs.items())
        cut = len(items) - max(1, round(len(items) * HELDOUT_FRACTION))
        out["train"][source], out["heldout"][source] = items[:cut], items[cut:]
    return out


def _corpus_summary(parts) -> dict:
    h = hashlib.sha256()
    summary = {"sources": {}, "licence": CORPUS_LICENCE, "python": platform.python_version(),
               "split": f"per source, documents sorted by name, last {HELDOUT_FRACTION:.0%} held out"}
    for split, sources in parts.items():
        for source, items in sources.items():
            entry = summary["sources"].setdefault(source, {})
            entry[split] = {"documents": len(items), "chars": sum(len(t) for _, t in items),
                            "first": items[0][0], "last": items[-1][0]}
            for name, text in items:
                h.update(f"{split}\0{source}\0{name}\0{text}\0".encode())
    summary["sha256"] = h.hexdigest()
    return summary


# ---- tokenizer ---------------------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ``tokenizers``' ByteLevel uses)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_tokenizer():
    """A ``tokenizers.Tokenizer`` whose ids are the UTF-8 bytes (0-255) plus three specials (256-258)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    table = _bytes_to_unicode()
    tok = Tokenizer(models.BPE(vocab={table[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIALS))
    assert [tok.token_to_id(s) for s in SPECIALS] == [BOS, EOS, PAD]
    return tok


def load_tokenizer(size: str = "small", cache_dir: str | os.PathLike | None = None):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_dir(size, cache_dir) / "tokenizer.json"))


def _stream(tok, docs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Token ids of the documents in order, each followed by ``<|eos|>``."""
    ids: list[int] = []
    for _, text in docs:
        ids.extend(tok.encode(text, add_special_tokens=False).ids)
        ids.append(EOS)
    return np.asarray(ids, dtype=np.int64)


def _streams(tok) -> tuple[np.ndarray, np.ndarray, dict]:
    parts = corpus()
    train = _stream(tok, [d for docs in parts["train"].values() for d in docs])
    held = _stream(tok, [d for docs in parts["heldout"].values() for d in docs])
    return train, held, _corpus_summary(parts)


# ---- model and cache ---------------------------------------------------------------------------------
def _dir(size: str, cache_dir: str | os.PathLike | None) -> Path:
    if size not in SIZES:
        raise ZooLMError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "lm" / size


def _config(size: str):
    import transformers as tf

    return tf.LlamaConfig(vocab_size=VOCAB, **SIZES[size], num_key_value_heads=SIZES[size]["num_attention_heads"],
                          bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=False,
                          use_cache=False)


def _spec(size: str, minutes: float, steps: int | None, batch: int, lr: float, corpus_sha: str) -> dict:
    """What a cache must match to be reused."""
    return {"size": size, "model": {**SIZES[size], "vocab_size": VOCAB}, "tokenizer": "bytes+3 specials",
            "seq_len": SEQ_LEN, "batch": batch, "lr": lr, "seed": SEED,
            "budget": {"steps": steps} if steps else {"minutes": minutes}, "corpus_sha256": corpus_sha}


def load_lm(size: str = "small", cache_dir: str | os.PathLike | None = None, attn: str = "eager"):
    """The trained ``LlamaForCausalLM`` from the cache (eval mode, CPU)."""
    import transformers as tf

    d = _dir(size, cache_dir)
    if not (d / "meta.json").exists():
        raise ZooLMError(f"no trained model in {d}: run train_lm({size!r}) first")
    with _quiet():
        return tf.LlamaForCausalLM.from_pretrained(d, attn_implementation=attn).eval()


def train_lm(size: str = "small", minutes: float = 8.0, device: str = "cpu", *, steps: int | None = None,
             cache_dir: str | os.PathLike | None = None, force: bool = False, threads: int | None = 2,
             progress: bool = False) -> Path:
    """Train (or reuse) the LM of ``size`` for ``minutes`` (or exactly ``steps`` steps); returns its cache dir."""
    import torch

    d = _dir(size, cache_dir)
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ZooLMError(f"device must be cpu or cuda, not {device!r}")
    if threads:
        torch.set_num_threads(threads)
    tok = byte_tokenizer()
    train, held, summary = _streams(tok)
    batch, lr = TRAIN[size]["batch"], TRAIN[size]["lr"]
    spec = _spec(size, minutes, steps, batch, lr, summary["sha256"])
    meta_path = d / "meta.json"
    if not force and meta_path.exists() and (d / "model.safetensors").exists():
        if json.loads(meta_path.read_text()).get("spec") == spec:
            return d
    import transformers as tf

    torch.manual_seed(SEED)
    with _quiet():
        model = tf.LlamaForCausalLM(_config(size)).to(device)
    result = _train(model, train, spec, device, progress)
    model = model.cpu().eval()
    result["train_eval_loss"] = _mean_loss(model, train, n_windows=len(held) // SEQ_LEN, seed=1)
    result["heldout_loss"] = _mean_loss(model, held)
    for k in ("train_eval", "heldout"):
        result[f"{k}_ppl"] = math.exp(result[f"{k}_loss"])
    result["heldout_bits_per_byte"] = result["heldout_loss"] / math.log(2)
    meta = {"spec": spec, "corpus": summary, "tokens": {"train": int(len(train)), "heldout": int(len(held))},
            "params": sum(p.numel() for p in model.parameters()), "config": SIZES[size], **result,
            "device": device, "machine": _machine(device), "threads": torch.get_num_threads(),
            "versions": _versions(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.glob("*.onnx"):
        stale.unlink()
    with _quiet():
        model.save_pretrained(d)
    tok.save(str(d / "tokenizer.json"))
    _write_json(meta_path, meta)  # last: its presence marks a complete cache
    return d


def _windows(stream: np.ndarray, starts: np.ndarray, length: int):
    import torch

    idx = starts[:, None] + np.arange(length)[None, :]
    return torch.from_numpy(stream[idx])


def _train(model, stream: np.ndarray, spec: dict, device: str, progress: bool) -> dict:
    import torch

    steps, budget = spec["budget"].get("steps"), spec["budget"].get("minutes", 0.0) * 60.0
    batch, peak = spec["batch"], spec["lr"]
    warmup = min(100, steps // 10) if steps else 50
    opt = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(SEED)
    model.train()
    losses, step, t0, running = [], 0, time.perf_counter(), None
    while True:
        elapsed = time.perf_counter() - t0
        frac = step / steps if steps else elapsed / budget
        if frac >= 1.0:
            break
        scale = min(1.0, (step + 1) / (warmup + 1)) * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = peak * scale
        x = _windows(stream, rng.integers(0, len(stream) - SEQ_LEN, batch), SEQ_LEN).to(device)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss is {value} at step {step}")
        running = value if running is None else 0.98 * running + 0.02 * value
        losses.append(value)
        step += 1
        if progress and step % 50 == 0:
            print(f"  step {step:5d}  {time.perf_counter() - t0:6.0f} s  loss {running:.4f}", flush=True)
    seconds = time.perf_counter() - t0
    every = max(1, len(losses) // 100)
    return {"steps": step, "tokens_seen": step * batch * SEQ_LEN, "train_seconds": round(seconds, 1),
            "losses": [[i, round(v, 4)] for i, v in enumerate(losses) if i % every == 0 or i == len(losses) - 1],
            "final_train_loss": round(float(np.mean(losses[-max(1, len(losses) // 20):])), 4)}


def _mean_loss(model, stream: np.ndarray, n_windows: int | None = None, seed: int | None = None, batch: int = 16) -> float:
    """Mean next-token loss over non-overlapping windows (all of them, or ``n_windows`` drawn with ``seed``)."""
    starts = np.arange(0, len(stream) - SEQ_LEN + 1, SEQ_LEN)  # the windows of heldout_batches
    if n_windows is not None and n_windows < len(starts):
        starts = np.sort(np.random.default_rng(seed).choice(starts, n_windows, replace=False))
    batches = [_windows(stream, starts[i:i + batch], SEQ_LEN).numpy() for i in range(0, len(starts), batch)]
    return math.log(perplexity(_torch_logits(model), batches))


def _torch_logits(model) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def fn(ids: np.ndarray):
        with torch.no_grad():
            return model(input_ids=torch.as_tensor(ids)).logits

    return fn


# ---- evaluation API ----------------------------------------------------------------------------------
def heldout_batches(size: str = "small", seq_len: int = SEQ_LEN, n: int | None = None, batch: int = 1,
                    cache_dir: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Held-out token ids as ``n`` int64 arrays of shape ``[batch, seq_len]`` (non-overlapping windows, in order; all if ``n`` is None).

    Encoded with the tokenizer cached next to the weights of ``size``; rows that do not fill a last batch are dropped.
    """
    tok = load_tokenizer(size, cache_dir)
    held = _stream(tok, [d for docs in corpus()["heldout"].values() for d in docs])
    starts = np.arange(0, len(held) - seq_len + 1, seq_len)
    rows = [held[s:s + seq_len] for s in starts]
    out = [np.stack(rows[i:i + batch]) for i in range(0, len(rows) - batch + 1, batch)]
    return out if n is None else out[:n]


def perplexity(logits_fn: Callable[[np.ndarray], object], batches: Sequence[np.ndarray]) -> float:
    """exp(mean next-token cross-entropy) over all predicted tokens of ``batches``.

    ``logits_fn(ids)`` maps int64 ``[batch, seq]`` ids to ``[batch, seq, vocab]`` logits (numpy or torch);
    position t predicts token t+1, so each row contributes ``seq - 1`` predictions.
    """
    import torch

    total, count = 0.0, 0
    for ids in batches:
        logits = torch.as_tensor(logits_fn(ids)).float().cpu()
        target = torch.as_tensor(ids)[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                reduction="sum")
        total += float(nll)
        count += target.numel()
    if count == 0:
        raise ZooLMError("perplexity needs at least one batch with two or more tokens per row")
    return math.exp(total / count)


# ---- ONNX --------------------------------------------------------------------------------------------
def lm_onnx(size: str = "small", cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """The dynamo ONNX export (opset 18) of the cached LM: ``input_ids`` -> ``logits``; trains the LM first if needed."""
    d = _dir(size, cache_dir)
    if not (d / "meta.json").exists():
        train_lm(size, cache_dir=cache_dir)
    path = d / f"model-dynamo-opset{OPSET}.onnx"
    if force or not path.exists() or path.stat().st_mtime < (d / "meta.json").stat().st_mtime:
        _export(load_lm(size, cache_dir), path, SIZES[size]["max_position_embeddings"])
    return path


def _logits_module(lm):
    import torch

    class Logits(torch.nn.Module):
        """``input_ids -> logits``: no KV cache, no attention mask (causal attention over the whole row)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False).logits

    return Logits(lm).eval()


def _export(lm, path: Path, max_seq: int) -> None:
    import torch
    from torch.export import Dim

    example = (torch.from_numpy(np.arange(16, dtype=np.int64).reshape(2, 8)),)
    shapes = ({0: Dim("batch", min=1, max=1024), 1: Dim("sequence", min=1, max=max_seq)},)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".onnx")
    os.close(fd)
    try:
        with _quiet(), torch.no_grad():
            prog = torch.onnx.export(_logits_module(lm), example, dynamo=True, opset_version=OPSET,
                                     input_names=["input_ids"], output_names=["logits"], dynamic_shapes=shapes,
                                     optimize=True, verbose=False)
            prog.save(tmp, external_data=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_onnx(size: str = "small", cache_dir: str | os.PathLike | None = None, batch: int = 2, seq: int = 64) -> dict:
    """Max |logits| differences of ONNX Runtime and the masec interpreter against torch on held-out ids, plus timings."""
    import onnxruntime as ort
    import torch

    from mase_compiler.driver import import_model
    from mase_compiler.interpreter import run

    path = lm_onnx(size, cache_dir)
    ids = heldout_batches(size, seq, 1, batch, cache_dir)[0]
    with torch.no_grad():
        ref = _logits_module(load_lm(size, cache_dir))(torch.from_numpy(ids)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got_ort = sess.run(["logits"], {"input_ids": ids})[0]
    t0 = time.perf_counter()
    model = import_model(path)
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run(model, {"input_ids": ids})
    t_run = time.perf_counter() - t0
    got_masec = next(iter(out.values())).detach().cpu().numpy()
    return {"onnx": str(path), "onnx_bytes": path.stat().st_size, "shape": list(ids.shape),
            "max_abs_diff_ort": float(np.abs(got_ort - ref).max()),
            "max_abs_diff_masec": float(np.abs(got_masec - ref).max()),
            "masec_import_s": round(t_import, 2), "masec_run_s": round(t_run, 2)}


# ---- helpers and CLI ---------------------------------------------------------------------------------
def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _versions() -> dict:
    import tokenizers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "numpy": np.__version__}


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="small", choices=list(SIZES))
    ap.add_argument("--minutes", type=float, default=8.0, help="training budget (default 8)")
    ap.add_argument("--steps", type=int, default=None, help="train for exactly this many steps instead")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--force", action="store_true", help="retrain even if a matching cache exists")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "zoo-lm.json")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    meta_path = _dir(args.size, None) / "meta.json"
    before = meta_path.stat().st_mtime if meta_path.exists() else None
    d = train_lm(args.size, args.minutes, args.device, steps=args.steps, force=args.force, threads=args.threads,
                 progress=True)
    meta = json.loads((d / "meta.json").read_text())
    meta["cached"] = before is not None and meta_path.stat().st_mtime == before
    meta["check"] = check_onnx(args.size)
    result = {k: v for k, v in meta.items() if k != "losses"}
    result["cache_dir"] = str(d)
    _write_json(args.json, result)

    table = Table(title=f"LlamaForCausalLM '{args.size}' on CPython docs (bytes)")
    table.add_column("")
    table.add_column("value", justify="right")
    c = meta["check"]
    for k, v in [("parameters", f"{meta['params']:,}"), ("steps", f"{meta['steps']:,}"),
                 ("tokens seen", f"{meta['tokens_seen']:,}"),
                 ("train tokens / held-out tokens", f"{meta['tokens']['train']:,} / {meta['tokens']['heldout']:,}"),
                 ("training time", f"{meta['train_seconds']:.0f} s on {meta['device']} ({'cached' if meta['cached'] else 'trained now'})"),
                 ("final train loss (running)", f"{meta['final_train_loss']:.4f}"),
                 ("train loss / ppl (eval)", f"{meta['train_eval_loss']:.4f} / {meta['train_eval_ppl']:.3f}"),
                 ("held-out loss / ppl", f"{meta['heldout_loss']:.4f} / {meta['heldout_ppl']:.3f}"),
                 ("held-out bits per byte", f"{meta['heldout_bits_per_byte']:.3f}"),
                 ("ONNX max |diff| ORT / masec", f"{c['max_abs_diff_ort']:.2e} / {c['max_abs_diff_masec']:.2e}"),
                 ("masec import / run", f"{c['masec_import_s']:.1f} s / {c['masec_run_s']:.1f} s")]:
        table.add_row(k, v)
    console.print(table)
    console.print(f"cache {d}\nwrote {args.json}")
    ok = c["max_abs_diff_ort"] <= 1e-4 and c["max_abs_diff_masec"] <= 1e-4
    if not ok:
        console.print("[red]ONNX export does not match torch within 1e-4[/red]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
