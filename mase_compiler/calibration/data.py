"""Calibration data: batches keyed by the model's input names, from a file, text or noise.

``load_calibration(source, model)`` accepts

* an ``.npz`` file keyed by the input names, leading axis = samples;
* a ``.txt`` file, or a directory of them: one sample per non-empty line, tokenized
  with a local Hugging Face tokenizer directory (``tokenizer=``); with ``seq_len`` the
  lines run together and are cut into samples of exactly ``seq_len`` tokens (SLAC);
* ``None``: synthetic inputs (with a warning, since accuracy measured on noise says
  little): token ids drawn below the vocabulary size of the embedding the ids index
  (found by following the IR to its ``graph.gather``), masks all ones, floats N(0, 1).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from xdsl.ir import SSAValue

from ..dialects.graph import shape_of
from ..interpreter.dtypes import torch_dtype
from ..model import Model

Batch = dict[str, np.ndarray]
SEED = 0
DEFAULT_SEQ = 16
# Ops a token-id tensor may pass through on its way to the embedding lookup.
_PASS_THROUGH = ("graph.cast", "graph.reshape", "graph.squeeze", "graph.unsqueeze", "graph.flatten",
                 "graph.expand", "graph.transpose", "graph.slice")


class CalibrationError(ValueError):
    """Calibration data that does not fit the model, or cannot be read."""


def load_calibration(source: str | os.PathLike | None, model: Model, tokenizer: str | os.PathLike | None = None,
                     batch_size: int = 8, max_samples: int = 64, seq_len: int | None = None) -> tuple[list[Batch], str]:
    """Batches of at most ``batch_size`` samples (``max_samples`` in all), keyed by the model's
    input names with the model's dtypes, and a one-line description of where they came from."""
    if batch_size < 1 or max_samples < 1:
        raise CalibrationError(f"batch_size and max_samples must be >= 1, not {batch_size} and {max_samples}")
    static = {s[0] for _, _, _, s in _inputs(model) if s and s[0] > 0}
    if static:  # the model fixes its batch size
        batch_size = min(static)
    if source is None:
        return _synthetic(model, batch_size, max_samples, seq_len)
    path = Path(source)
    if not path.exists():
        raise CalibrationError(f"calibration data {path} does not exist (give an .npz file, a .txt file or a directory of .txt files)")
    if path.is_dir() or path.suffix == ".txt":
        return _text(path, model, tokenizer, batch_size, max_samples, seq_len)
    if path.suffix == ".npz":
        if seq_len is not None:
            raise CalibrationError(f"seq_len applies to text or synthetic calibration data; {path.name} fixes its own sequence length")
        return _npz(path, model, batch_size, max_samples)
    raise CalibrationError(f"calibration data must be an .npz file, a .txt file or a directory of .txt files, not {path.name!r}")


# ---- helpers ---------------------------------------------------------------------------------------
def _inputs(model: Model) -> list[tuple[str, SSAValue, torch.dtype, tuple[int, ...] | None]]:
    return [(n, a, torch_dtype(a.type), shape_of(a.type)) for n, a in zip(model.input_names, model.main.args)]


def _np_dtype(dt: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dt).numpy().dtype


def _kind(dt: np.dtype) -> str:
    return {"f": "float", "i": "integer", "u": "integer", "b": "bool"}.get(dt.kind, dt.kind)


def _split(arrays: dict[str, np.ndarray], n: int, batch_size: int) -> list[Batch]:
    return [{k: np.ascontiguousarray(v[s : min(s + batch_size, n)]) for k, v in arrays.items()} for s in range(0, n, batch_size)]


def _describe(what: str, n: int, batches: list[Batch]) -> str:
    return f"{what} ({n} samples in {len(batches)} batches)"


# ---- .npz ------------------------------------------------------------------------------------------
def _npz(path: Path, model: Model, batch_size: int, max_samples: int) -> tuple[list[Batch], str]:
    try:
        data = np.load(path)
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot read calibration data {path}: {e}") from None
    arrays: dict[str, np.ndarray] = {}
    with data:
        for name, _, dt, shape in _inputs(model):
            if name not in data.files:
                raise CalibrationError(
                    f"{path.name} must hold an array {name!r} for model input {name!r}; found {', '.join(data.files) or 'no arrays'}")
            a = data[name]
            want = _np_dtype(dt)
            if _kind(a.dtype) != _kind(want):
                raise CalibrationError(f"{path.name}: array {name!r} must be {_kind(want)} ({want}), not {a.dtype}")
            if shape is not None:
                if a.ndim != len(shape):
                    raise CalibrationError(
                        f"{path.name}: array {name!r} must have rank {len(shape)} (samples first, shape {_show(shape)}), not {a.ndim} (shape {list(a.shape)})")
                bad = [i for i, (s, d) in enumerate(zip(shape, a.shape)) if i > 0 and s not in (-1, d)]
                if bad:
                    raise CalibrationError(f"{path.name}: array {name!r} must have shape {_show(shape)}, not {list(a.shape)}")
            arrays[name] = a.astype(want, copy=False)
    counts = {len(a) for a in arrays.values()}
    if len(counts) > 1:
        raise CalibrationError(f"{path.name}: arrays must have the same number of samples, not {', '.join(f'{k}: {len(v)}' for k, v in arrays.items())}")
    n = min(counts.pop() if counts else 0, max_samples)
    if n == 0:
        raise CalibrationError(f"{path.name} must hold at least one sample, not 0")
    batches = _split(arrays, n, batch_size)
    return batches, _describe(path.name, n, batches)


def _show(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if s == -1 else str(s) for s in shape) + "]"


# ---- text ------------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise CalibrationError(f"calibration directory {path} must contain .txt files, not none")
    lines: list[str] = []
    for f in files:
        lines.extend(ln.strip() for ln in f.read_text(errors="replace").splitlines() if ln.strip())
    if not lines:
        raise CalibrationError(f"calibration text {path} must have at least one non-empty line, not none")
    return lines


def _text(path: Path, model: Model, tokenizer: str | os.PathLike | None, batch_size: int, max_samples: int,
          seq_len: int | None) -> tuple[list[Batch], str]:
    if tokenizer is None:
        raise CalibrationError(f"calibration text {path.name} needs a tokenizer: pass --tokenizer DIR (a local Hugging Face tokenizer directory)")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise CalibrationError("calibration from text needs the transformers package: pip install transformers") from None
    try:
        tok = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot load a tokenizer from {tokenizer}: {str(e).splitlines()[0]}") from None
    inputs = _inputs(model)
    if seq_len is not None:
        return _packed(path, tok, tokenizer, inputs, batch_size, max_samples, seq_len)
    lines = _read_lines(path)[:max_samples]
    static = {s[1] for _, _, _, s in inputs if s is not None and len(s) == 2 and s[1] > 0}
    fixed = seq_len or (min(static) if static else None)  # pad every batch to a fixed length
    limit = fixed or _model_max(tok)
    batches = []
    for s in range(0, len(lines), batch_size):
        enc = tok(lines[s : s + batch_size], padding="max_length" if fixed else "longest",
                  truncation=True, max_length=limit, return_tensors="np")
        batch: Batch = {}
        for name, _, dt, _ in inputs:
            if name in enc:
                batch[name] = enc[name].astype(_np_dtype(dt))
            elif name == "token_type_ids":
                batch[name] = np.zeros_like(enc["input_ids"], dtype=_np_dtype(dt))
            else:
                raise CalibrationError(
                    f"model input {name!r} cannot come from text: the tokenizer gives {', '.join(enc)}; give an .npz file instead")
        batches.append(batch)
    return batches, _describe(f"{path.name} tokenized by {tokenizer}", len(lines), batches)


def _packed(path: Path, tok: Any, tokenizer: str | os.PathLike, inputs: list, batch_size: int, max_samples: int,
            seq_len: int) -> tuple[list[Batch], str]:
    """SLAC (W4A8 paper, sequence-length-aware calibration): samples of exactly ``seq_len`` real tokens,
    the text's lines run together and cut into chunks, so activation ranges are those of the target length
    (padding to it would mostly calibrate on masked positions)."""
    prefix, suffix = _special_tokens(tok)
    n_special = len(prefix) + len(suffix)
    body = seq_len - n_special
    if body < 1:
        raise CalibrationError(f"seq_len must leave room for the tokenizer's {n_special} special tokens, not {seq_len}")
    stream: list[int] = []
    for line in _read_lines(path):
        stream.extend(tok(line, add_special_tokens=False)["input_ids"])
        if len(stream) >= body * max_samples:
            break
    n = min(len(stream) // body, max_samples)
    if n == 0:
        raise CalibrationError(f"calibration text {path.name} holds {len(stream)} tokens, fewer than one sample of seq_len={seq_len}")
    ids = np.asarray([prefix + stream[i * body:(i + 1) * body] + suffix for i in range(n)], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {}
    for name, _, dt, _ in inputs:
        if name == "input_ids":
            arrays[name] = ids.astype(_np_dtype(dt))
        elif name == "attention_mask":
            arrays[name] = np.ones_like(ids, dtype=_np_dtype(dt))
        elif name == "token_type_ids":
            arrays[name] = np.zeros_like(ids, dtype=_np_dtype(dt))
        elif name == "position_ids":
            arrays[name] = np.broadcast_to(np.arange(seq_len), ids.shape).astype(_np_dtype(dt))
        else:
            raise CalibrationError(f"model input {name!r} cannot come from text; give an .npz file instead")
    batches = _split(arrays, n, batch_size)
    return batches, _describe(f"{path.name} tokenized by {tokenizer}, packed to {seq_len} tokens (SLAC)", n, batches)


def _special_tokens(tok: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a text ([CLS] / [SEP] for BERT, <s> for LLaMA)."""
    bare = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a")["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i:i + len(bare)] == bare:
            return full[:i], full[i + len(bare):]
    return [], []


def _model_max(tok: Any) -> int:
    m = getattr(tok, "model_max_length", None)
    return int(m) if isinstance(m, int) and 0 < m < 100_000 else 512


# ---- synthetic -------------------------------------------------------------------------------------
def _vocab(arg: SSAValue, depth: int = 4) -> int | None:
    """The first dim of the ``graph.weight`` that a ``graph.gather`` indexes with ``arg``."""
    for use in arg.uses:
        op = use.operation
        if op.name == "graph.gather" and use.index == 1:
            table = op.operands[0].owner
            if getattr(table, "name", None) == "graph.weight":
                shape = shape_of(op.operands[0].type)
                if shape and shape[0] > 0:
                    return shape[0]
        elif op.name in _PASS_THROUGH and use.index == 0 and depth > 0 and op.results:
            v = _vocab(op.results[0], depth - 1)
            if v is not None:
                return v
    return None


def _synthetic(model: Model, batch_size: int, max_samples: int, seq_len: int | None) -> tuple[list[Batch], str]:
    warnings.warn("no calibration data given: calibrating on synthetic random inputs; "
                  "accuracy will not be representative (pass real data, e.g. --calib DATA)", stacklevel=3)
    rng = np.random.default_rng(SEED)
    batches: list[Batch] = []
    left = max_samples
    while left > 0:
        batch: Batch = {}
        n = batch_size
        for name, arg, dt, shape in _inputs(model):
            dims = _dims(shape, min(batch_size, left), seq_len)
            n = dims[0] if dims else 1
            batch[name] = _random(rng, name, arg, dt, dims)
        batches.append(batch)
        left -= max(n, 1)
    return batches, _describe("synthetic random inputs", max_samples - max(left, 0), batches)


def _dims(shape: tuple[int, ...] | None, batch: int, seq_len: int | None) -> tuple[int, ...]:
    if shape is None:
        return (batch, seq_len or DEFAULT_SEQ)
    return tuple((batch if i == 0 else seq_len or DEFAULT_SEQ) if s == -1 else s for i, s in enumerate(shape))


def _random(rng: np.random.Generator, name: str, arg: SSAValue, dt: torch.dtype, dims: tuple[int, ...]) -> np.ndarray:
    npdt = _np_dtype(dt)
    if dt == torch.bool or "mask" in name.lower():
        return np.ones(dims, dtype=npdt)
    if dt.is_floating_point:
        return rng.standard_normal(dims).astype(npdt)
    vocab = _vocab(arg) or 2
    return rng.integers(0, vocab, size=dims).astype(npdt)


__all__ = ["Batch", "CalibrationError", "load_calibration"]
