"""The runtime that models emitted by masec's PyTorch backend import.

Two jobs, nothing else:

* **ops that are not one torch call** (ONNX slicing and padding rules, pooling
  with asymmetric pads, normalizations computed in float32, ...): re-exported
  from :mod:`mase_compiler.torch_ops`, the functions the reference interpreter's
  kernels (``mase_compiler/interpreter/kernels.py``) call with the op's static
  properties, so an emitted model computes the same torch calls in the same
  order and matches the interpreter bit for bit;
* **weights**: :func:`load_weights` reads ``weights.safetensors`` and decodes the
  packed low-bit entries with :mod:`mase_compiler.numerics` (``fmt.decode``),
  which reproduces ``fmt.quantize`` of the original weight exactly; plus the
  CUDA FP8 fast path (:func:`fp8_fast`, :func:`fp8_matmul`).

It imports only torch, safetensors, ``mase_compiler.numerics`` and
``mase_compiler.torch_ops`` (no xDSL), so an emitted model runs wherever those
are installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch

from mase_compiler import torch_ops
from mase_compiler.numerics import Encoded, MinifloatFormat, parse
from mase_compiler.torch_ops import *  # noqa: F403  (the op functions: rt.conv, rt.slice, ...)

PACKED_KEY = "masec.packed"
"""safetensors metadata key: JSON ``{name: {format, shape, dtype, bits, layout, axis, meta}}`` of packed weights.

A packed weight ``name`` is stored as ``name.codes`` (uint8 bit stream) plus
``name.scales`` and ``name.zero_points`` where the format has them."""

FP8_SUFFIX = ".fp8t"
"""Extra entry :func:`load_weights` derives for FP8 weights used by the CUDA fast path:
the E4M3 values as ``torch.float8_e4m3fn``, transposed to ``[N, K]`` and contiguous
(``torch._scaled_mm`` wants its second operand column-major), plus ``+ ".scale"``,
the per-tensor scale as a rank-0 float32 tensor."""


# ---- weights ---------------------------------------------------------------------------------------
def _torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"packed weight dtype must name a torch dtype, not {name!r}")
    return dtype


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu", fp8: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, packed entries decoded to the values ``fmt.quantize`` gives.

    ``fp8`` names packed ``fp8_e4m3`` weights that also get a ``name + FP8_SUFFIX``
    entry (the raw E4M3 values, transposed) for :func:`fp8_matmul`.
    """
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(os.fspath(path), framework="pt") as f:
        packed = json.loads((f.metadata() or {}).get(PACKED_KEY, "{}"))
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    parts = {f"{name}.{part}" for name in packed for part in ("codes", "scales", "zero_points")}
    out = {k: v for k, v in tensors.items() if k not in parts}
    for name, info in packed.items():
        enc = Encoded(
            format=info["format"], shape=tuple(info["shape"]), dtype=_torch_dtype(info["dtype"]),
            codes=tensors[f"{name}.codes"], bits=int(info["bits"]), layout=tuple(info["layout"]),
            scales=tensors.get(f"{name}.scales"), zero_points=tensors.get(f"{name}.zero_points"),
            axis=int(info["axis"]), meta=dict(info.get("meta", {})),
        )
        fmt = parse(enc.format)
        out[name] = fmt.decode(enc)
        if name in fp8:
            assert isinstance(fmt, MinifloatFormat)
            q = fmt.from_codes(enc.unpacked_codes(), torch.float32).reshape(enc.shape)
            out[name + FP8_SUFFIX] = q.to(torch.float8_e4m3fn).t().contiguous()
            out[name + FP8_SUFFIX + ".scale"] = enc.scales.to(torch.float32).reshape(())
    return {k: v.to(device) for k, v in out.items()}


# ---- FP8 fast path (CUDA) --------------------------------------------------------------------------
_E4M3_MAX = 448.0


def fp8_fast(x: torch.Tensor, w_fp8t: torch.Tensor | None) -> bool:
    """Whether :func:`fp8_matmul` can run: CUDA tensors and dims that ``torch._scaled_mm`` accepts (multiples of 16)."""
    return (
        w_fp8t is not None and x.is_cuda and w_fp8t.is_cuda and hasattr(torch, "_scaled_mm")
        and x.shape[-1] % 16 == 0 and w_fp8t.shape[0] % 16 == 0
    )


def fp8_matmul(x: torch.Tensor, x_scale: torch.Tensor, w_fp8t: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
    """``quantize_e4m3(x / x_scale) @ w * x_scale * w_scale`` with ``torch._scaled_mm``.

    Not bit-exact with the emulated path: the tensor cores accumulate in their own
    order and precision.  Saturates before casting, as the numerics library does.
    """
    lead = x.shape[:-1]
    a = x.reshape(-1, x.shape[-1]).float()
    sa = x_scale.reshape(()).float()
    a8 = (a / sa).clamp(-_E4M3_MAX, _E4M3_MAX).to(torch.float8_e4m3fn)
    sb = w_scale.reshape(()).float()
    y = torch._scaled_mm(a8, w_fp8t.t(), scale_a=sa, scale_b=sb, out_dtype=torch.float32)
    return y.reshape(*lead, y.shape[-1]).to(x.dtype)


__all__ = ["FP8_SUFFIX", "PACKED_KEY", "fp8_fast", "fp8_matmul", "load_weights", *torch_ops.__all__]
