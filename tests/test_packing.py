"""Bit packing: element i occupies bits [i*n, (i+1)*n) of a little-endian stream.

The oracle is Python's arbitrary-precision integers: sum(code_i << (n*i)) written out
as little-endian bytes.
"""

from __future__ import annotations

import pytest
import torch

from mase_compiler.numerics import pack_bits, unpack_bits


def reference_pack(codes: list[int], bits: int) -> list[int]:
    stream = 0
    for i, c in enumerate(codes):
        stream |= c << (bits * i)
    nbytes = (len(codes) * bits + 7) // 8
    return list(stream.to_bytes(nbytes, "little"))


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("count", [1, 3, 7, 13, 101, 1000])
def test_pack_matches_integer_reference_and_round_trips(bits, count):
    g = torch.Generator().manual_seed(bits * 1000 + count)
    codes = torch.randint(0, 1 << bits, (count,), generator=g)
    codes[0] = (1 << bits) - 1  # all ones somewhere
    packed = pack_bits(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.tolist() == reference_pack(codes.tolist(), bits)
    back = unpack_bits(packed, bits, count)
    assert back.dtype == torch.int64
    assert torch.equal(back, codes)


@pytest.mark.parametrize("bits", [3, 4, 6, 8, 12])
def test_pack_accepts_any_shape_and_integer_dtype(bits):
    codes = torch.arange(30).reshape(2, 3, 5) % (1 << bits)
    for dtype in (torch.int64, torch.int32, torch.uint8 if bits <= 8 else torch.int16):
        assert torch.equal(pack_bits(codes.to(dtype), bits), pack_bits(codes.reshape(-1), bits))
    assert torch.equal(unpack_bits(pack_bits(codes, bits), bits, 30), codes.reshape(-1))


def test_four_bit_layout_low_nibble_first():
    assert pack_bits(torch.tensor([1, 2, 3, 4, 5]), 4).tolist() == [0x21, 0x43, 0x05]
    assert pack_bits(torch.tensor([0xF, 0x0]), 4).tolist() == [0x0F]


def test_six_bit_layout():
    a, b, c, d = 0b101011, 0b110001, 0b011110, 0b100101
    expected = [
        a | (b & 0b11) << 6,
        b >> 2 | (c & 0b1111) << 4,
        c >> 4 | d << 2,
    ]
    assert pack_bits(torch.tensor([a, b, c, d]), 6).tolist() == expected
    # A fifth code starts a new 3-byte group; its unused high bits are zero.
    assert pack_bits(torch.tensor([a, b, c, d, 0b111111]), 6).tolist() == [*expected, 0b111111]


def test_other_known_layouts():
    assert pack_bits(torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 1]), 1).tolist() == [0b00001101, 0b1]
    assert pack_bits(torch.tensor([0b01, 0b10, 0b11]), 2).tolist() == [0b111001]
    assert pack_bits(torch.tensor([0xABC, 0x123]), 12).tolist() == [0xBC, 0x3A, 0x12]
    assert pack_bits(torch.tensor([0x1234, 0xABCD]), 16).tolist() == [0x34, 0x12, 0xCD, 0xAB]
    assert pack_bits(torch.tensor([0xFF, 0x00, 0x7F]), 8).tolist() == [0xFF, 0x00, 0x7F]


def test_unpack_ignores_padding_bits():
    packed = torch.tensor([0xFF, 0xFF], dtype=torch.uint8)
    assert unpack_bits(packed, 3, 5).tolist() == [7] * 5
    assert unpack_bits(packed, 4, 3).tolist() == [15] * 3


def test_empty():
    empty = torch.zeros(0, dtype=torch.int64)
    for bits in (1, 3, 4, 8, 16):
        packed = pack_bits(empty, bits)
        assert packed.numel() == 0
        assert unpack_bits(packed, bits, 0).numel() == 0


def test_bad_widths_rejected():
    with pytest.raises(ValueError, match="bits must be in 1..32, not 0"):
        pack_bits(torch.tensor([0]), 0)
    with pytest.raises(ValueError, match="bits must be in 1..32, not 33"):
        unpack_bits(torch.tensor([0], dtype=torch.uint8), 33, 1)
