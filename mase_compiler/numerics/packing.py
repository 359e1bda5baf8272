"""Packing of n-bit codes into a little-endian bit stream of bytes.

Element ``i`` occupies bits ``[i*n, (i+1)*n)`` of the stream, least significant
bit first, so two 4-bit codes share a byte as ``lo | hi << 4`` (the layout of
ONNX int4/float4 tensors and of torch's ``float4_e2m1fn_x2``).
"""

from __future__ import annotations

import torch


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned integer ``codes`` (each < 2**bits) into a flat uint8 tensor."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in 1..32, not {bits}")
    flat = codes.reshape(-1)
    if bits == 8:
        return flat.to(torch.uint8)
    if bits in (1, 2, 4):
        per = 8 // bits
        c = flat.to(torch.uint8)
        pad = (-c.numel()) % per
        if pad:
            c = torch.cat([c, c.new_zeros(pad)])
        c = c.view(-1, per)
        shifts = torch.arange(0, 8, bits, device=c.device, dtype=torch.uint8)
        return (c << shifts).sum(dim=1, dtype=torch.uint8)
    if bits == 16:
        return flat.to(torch.int32).to(torch.int16).view(torch.uint8)
    # General widths: spread each code into its bits, regroup by eight.
    c = flat.to(torch.int64)
    bit_idx = torch.arange(bits, device=c.device, dtype=torch.int64)
    stream = ((c.unsqueeze(1) >> bit_idx) & 1).reshape(-1).to(torch.uint8)
    pad = (-stream.numel()) % 8
    if pad:
        stream = torch.cat([stream, stream.new_zeros(pad)])
    weights = torch.arange(8, device=c.device, dtype=torch.uint8)
    return (stream.view(-1, 8) << weights).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``count`` codes as int64."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in 1..32, not {bits}")
    p = packed.reshape(-1)
    if bits == 8:
        return p[:count].to(torch.int64)
    if bits in (1, 2, 4):
        shifts = torch.arange(0, 8, bits, device=p.device, dtype=torch.uint8)
        mask = (1 << bits) - 1
        return ((p.unsqueeze(1) >> shifts) & mask).reshape(-1)[:count].to(torch.int64)
    if bits == 16:
        return p.view(torch.int16)[:count].to(torch.int64) & 0xFFFF
    weights = torch.arange(8, device=p.device, dtype=torch.uint8)
    stream = ((p.unsqueeze(1) >> weights) & 1).reshape(-1)[: count * bits].to(torch.int64)
    bit_idx = torch.arange(bits, device=p.device, dtype=torch.int64)
    return (stream.view(count, bits) << bit_idx).sum(dim=1)


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes that :func:`pack_bits` produces for ``count`` codes of ``bits`` bits."""
    return (count * bits + 7) // 8
