"""Distribution statistics of quantized attention: the quantities EdgeQAT's losses use.

Shen et al., "EdgeQAT: Entropy and Distribution Guided Quantization-Aware Training for the
Acceleration of Lightweight LLMs on the Edge" (2024), observe that quantizing the query
and key to few bits collapses their information (their entropy drops) and distorts the attention
map.  Its QAT therefore adds two terms to the loss:

* an **entropy** term that maximizes the information of the quantized query / key; under a Gaussian
  assumption the entropy of a tensor is ``0.5 * log(2*pi*e*var)`` (:func:`gaussian_entropy`), so
  maximizing it keeps the quantized values spread out;
* a **distribution** term, the KL divergence of the student's attention maps from the full-precision
  teacher's (:func:`attention_kl`).

:func:`gaussian_entropy` and :func:`attention_kl` are differentiable torch functions (the QAT losses
in ``mase_compiler.train`` import them); :func:`code_entropy` measures the entropy actually held by
a quantized tensor's codes, and :func:`measure` reports all of them per attention block of a
compiled model, run through the reference interpreter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

_EPS = 1e-12


def gaussian_entropy(x: Tensor) -> Tensor:
    """Differential entropy (nats) of a Gaussian with ``x``'s population variance over all elements:
    ``0.5 * log(2*pi*e*(var(x) + 1e-12))``; a scalar tensor, differentiable (EdgeQAT's entropy term)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16/fp16 activations: the variance in float32
    var = x.var(correction=0) if x.numel() > 0 else x.new_zeros(())
    return 0.5 * torch.log(2 * math.pi * math.e * (var + _EPS))


def code_entropy(x: Tensor) -> float:
    """Shannon entropy in bits of the histogram of ``x``'s distinct values: how much information a
    quantized tensor carries.  Given a format's codes (or a per-tensor-scaled tensor, whose distinct
    values are its codes) it is at most the format's bits; per-token or per-block scales make more
    distinct values than codes, so :func:`measure` passes the codes themselves."""
    flat = x.detach().reshape(-1)
    if flat.numel() == 0:
        return 0.0
    _, counts = torch.unique(flat, return_counts=True)
    p = counts.double() / flat.numel()
    return float(-(p * torch.log2(p)).sum())


def attention_kl(teacher: Tensor, student: Tensor) -> Tensor:
    """Mean over rows (all leading dims) of ``KL(teacher || student)`` of attention maps, with
    probabilities on the last axis and ``1e-12`` inside the logs; a scalar tensor, differentiable
    in both arguments (EdgeQAT's distribution term)."""
    if teacher.shape != student.shape:
        raise ValueError(f"attention_kl needs maps of one shape, not {list(teacher.shape)} and {list(student.shape)}")
    dtype = torch.promote_types(torch.promote_types(teacher.dtype, student.dtype), torch.float32)
    t, s = teacher.to(dtype), student.to(dtype)
    kl = (t * (torch.log(t + _EPS) - torch.log(s + _EPS))).sum(dim=-1)
    return kl.mean()


def measure(model, batches: Iterable[Mapping[str, Tensor]], reference=None) -> list[dict]:
    """Per attention block of ``model`` (a :class:`mase_compiler.model.Model`), over ``batches`` (input
    dicts for the interpreter): the entropy of the query and key as the QK^T matmul reads them
    (quantized where ``quantize`` cast them) and, with an FP32 ``reference`` model of the same graph
    (:func:`fp32_reference`), the KL divergence of ``model``'s attention maps from the reference's.

    Each dict holds ``index``, ``qk`` / ``softmax`` (source-node names), ``query_format`` /
    ``key_format`` (the cast's format, None in float), ``query_gaussian_entropy`` /
    ``key_gaussian_entropy`` (nats), ``query_code_entropy`` / ``key_code_entropy`` (bits: of the
    format's codes where the operand is cast, so scales do not count, else of the float values) and
    ``attention_kl`` (None without a reference), each the mean over batches.  The maps compared are the
    softmax outputs: a quantized map (``quantize{attn=...}``) no longer sums to one, so the KL measures
    what quantized Q and K did to the distribution.  Blocks pair with the reference's in IR order."""
    from mase_compiler.attention import find_attention
    from mase_compiler.dialects import graph as g
    from mase_compiler.interpreter import Interpreter

    blocks = find_attention(model.module)
    ref_blocks = find_attention(reference.module) if reference is not None else []
    if reference is not None and len(ref_blocks) != len(blocks):
        raise ValueError(f"reference has {len(ref_blocks)} attention blocks, the model {len(blocks)}: "
                         "pass the FP32 model of the same graph")
    keys = ("query_gaussian_entropy", "key_gaussian_entropy", "query_code_entropy", "key_code_entropy", "attention_kl")
    sums = [dict.fromkeys(keys, 0.0) for _ in blocks]
    run = Interpreter(model)
    ref_run = Interpreter(reference) if reference is not None else None
    n = 0
    for batch in batches:
        seen = _observe(run, batch, blocks)
        ref = _observe(ref_run, batch, ref_blocks) if ref_run is not None else None
        for i, got in enumerate(seen):
            s = sums[i]
            for role in ("query", "key"):
                s[f"{role}_gaussian_entropy"] += float(gaussian_entropy(got[role]))
                s[f"{role}_code_entropy"] += code_entropy(got[f"{role}_codes"])
            if ref is not None:
                s["attention_kl"] += float(attention_kl(ref[i]["probs"], got["probs"]))
        n += 1
    if n == 0:
        raise ValueError("measure needs at least one batch")
    out = []
    for b, s in zip(blocks, sums):
        row: dict = {"index": b.index, "qk": g.node_name(b.qk), "softmax": g.node_name(b.softmax),
                     "query_format": _cast_format(b.query), "key_format": _cast_format(b.key)}
        row.update({k: v / n for k, v in s.items()})
        if reference is None:
            row["attention_kl"] = None
        out.append(row)
    return out


def _cast_format(v) -> str | None:
    from mase_compiler.dialects.quant import CastOp

    return str(v.owner.properties["format"].format) if isinstance(v.owner, CastOp) else None


def _codes(op, operands: list[Tensor]) -> Tensor:
    """The codes a ``quant.cast`` gives its input, with its own scales and axis (called as its kernel calls
    the format), in the input's shape: the padding of ragged groups / MX blocks is dropped."""
    from mase_compiler.numerics import DIntFormat, FixedFormat, IntFormat, MinifloatFormat, MXFormat
    from mase_compiler.numerics._blocks import split_blocks

    fmt = op.properties["format"].format
    axis = op.properties["axis"].value.data if "axis" in op.properties else None
    x, params = operands[0], operands[1:]
    if isinstance(fmt, (IntFormat, DIntFormat)):
        codes = fmt.encode(x, *params, axis=axis).unpacked_codes()
        return fmt._view(x, axis)[1](codes)
    if isinstance(fmt, MXFormat):
        codes = fmt.encode(x, axis=axis).unpacked_codes()
        return split_blocks(x, fmt.axis if axis is None else axis, fmt.block)[1](codes)
    if isinstance(fmt, MinifloatFormat):
        return fmt.encode(x, *params).unpacked_codes()
    assert isinstance(fmt, FixedFormat)
    return fmt.encode(x).unpacked_codes()


def _observe(run, batch: Mapping[str, Tensor], blocks) -> list[dict[str, Tensor]]:
    """Per block on one batch: ``query`` / ``key`` as QK^T reads them, their ``*_codes`` (the cast's
    codes, or the float values where not cast) and ``probs`` (the softmax output)."""
    from mase_compiler.dialects.quant import CastOp

    watch: dict[int, list[tuple[int, str]]] = {}
    for i, b in enumerate(blocks):
        watch.setdefault(id(b.qk), []).append((i, "qk"))
        watch.setdefault(id(b.softmax), []).append((i, "softmax"))
        for role, v in (("query", b.query), ("key", b.key)):
            if isinstance(v.owner, CastOp):
                watch.setdefault(id(v.owner), []).append((i, f"{role}_codes"))
    got: list[dict[str, Tensor]] = [{} for _ in blocks]

    def observe(op, operands, results) -> None:
        for i, what in watch.get(id(op), ()):
            if what == "qk":
                got[i]["query"], got[i]["key"] = operands[0].float(), operands[1].float()
                got[i].setdefault("query_codes", got[i]["query"])  # float operands: their own values
                got[i].setdefault("key_codes", got[i]["key"])
            elif what == "softmax":
                got[i]["probs"] = results[0].double()  # float64: a KL near zero stays meaningful
            else:
                got[i][what] = _codes(op, operands)

    run(batch, observe)
    return got


def fp32_reference(model):
    """A copy of ``model`` (sharing its weight store) with every ``quant.cast`` removed, its users reading
    the cast's input: the FP32 model of the same graph, for :func:`measure`'s attention-map KL.

    ``quantize`` leaves the float weights in the store (scales are stored beside them) and casts them
    at run time, so the copy computes what the model computed before quantization, op for op.  Passes
    that rescale weights before quantizing (``smoothquant``, ``aqas``) are equivalent transformations
    in exact arithmetic, so after them the copy equals the original FP32 model up to float rounding."""
    from mase_compiler.dialects.quant import bypass_casts
    from mase_compiler.model import Model

    ref = Model(model.module.clone(), model.weights)
    bypass_casts(ref.module)
    return ref


__all__ = ["attention_kl", "code_entropy", "fp32_reference", "gaussian_entropy", "measure"]
