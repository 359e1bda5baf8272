"""The cost model: exact storage, hand-computed MACs / bit-operations / energy / cycles, a quantized
MLP's totals, and the area calibration against the Yosys numbers of masec's RTL."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mase_compiler.cost import CALIBRATION, ENERGY_PJ, bits_per_element, format_table, model_cost, op_cost, tensor_bytes
from mase_compiler.cost.calibration import derive, le, load_components
from mase_compiler.driver import opt
from mase_compiler.numerics import parse

from test_quantize import _calib, _model


# ---- storage ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "shape", "axis", "want"),
    [
        ("int8", (16, 8), None, 128 + 4),  # codes + one float32 scale
        ("int8:channel", (16, 8), 0, 128 + 16 * 4),  # one scale per row
        ("int8:channel", (16, 8), 1, 128 + 8 * 4),
        ("int8:channel:asym", (16, 8), 1, 128 + 8 * (4 + 4)),  # + int32 zero points
        ("int8:token", (5, 16), None, 80 + 5 * 4),  # one scale per token (all dims but the last)
        # 300 = 2 full groups + one padded group per row: 3 x 256 groups of 128 4-bit codes, a scale each
        ("int4:group=128", (256, 300), None, 3 * 256 * 128 * 4 // 8 + 3 * 256 * 4),
        ("mxfp4", (4, 64), None, 8 * 32 * 4 // 8 + 8),  # 8 blocks: 4 bits + 8/32 bits per element
        ("mxint8:block=16", (3, 48), None, 9 * 16 + 9),  # 9 blocks: 8 + 8/16 bits per element
        ("mxint8:block=16", (48, 3), 0, 9 * 16 + 9),  # blocks along axis 0
        ("mxfp4", (3,), None, 32 * 4 // 8 + 1),  # a ragged block is padded to 32
        ("fp8_e4m3", (10,), None, 10),
        ("fp6_e2m3", (5,), None, 4),  # 30 bits round up to 4 bytes
        ("fixed8:frac=4", (10,), None, 10),  # the scale 2^-4 is a constant, not stored
        (None, (10, 3), None, 120),  # float32
    ],
)
def test_tensor_bytes_by_hand(spec, shape, axis, want):
    assert tensor_bytes(spec, shape, axis) == want


def test_mx_bits_per_element_is_element_plus_scale_share():
    assert bits_per_element("mxfp4", (4, 64)) == 4 + 8 / 32
    assert bits_per_element("mxint8:block=16", (3, 48)) == 8 + 8 / 16
    assert bits_per_element("int4:group=128", (2, 256)) == 4 + 32 / 128
    assert bits_per_element("int8") == 8.0 and bits_per_element(None) == 32.0  # no shape: the format's figure
    assert tensor_bytes("fp8_e4m3", (10,), scaled=True) == 14


SPECS = ["int8", "int8:channel", "int8:token", "uint8", "int4:group=128", "int2:group=32", "int3:group=5",
         "int8:asym", "int4:group=16:asym", "dint4", "dint4:group=128", "mxfp4", "mxint8", "mxint8:block=16",
         "mxfp6_e2m3", "mxfp8_e5m2", "bfp6:block=16", "int5"]
SHAPES = [(16, 8), (3, 5, 7), (130,), (33, 40), (1,), (4, 0)]


@pytest.mark.parametrize("spec", SPECS)
def test_tensor_bytes_equals_encoded_nbytes(spec):
    """Exact for every family: what ``encode`` actually stores, for ragged, 3-d, scalar-like and empty shapes."""
    fmt = parse(spec)
    gen = torch.Generator().manual_seed(0)
    for shape in SHAPES:
        for axis in ([None, 0, -1] if len(shape) > 1 else [None]):
            x = torch.randn(shape, generator=gen)
            enc = fmt.encode(x) if axis is None else fmt.encode(x, axis=axis)
            assert tensor_bytes(fmt, shape, axis) == enc.nbytes, (spec, shape, axis)


@pytest.mark.parametrize("spec", ["fp8_e4m3", "fp6_e3m2", "fp4_e2m1", "bf16", "fp16"])
def test_minifloat_bytes_equal_encoded_nbytes(spec):
    for shape in SHAPES:
        assert tensor_bytes(spec, shape) == parse(spec).encode(torch.randn(shape)).nbytes


def test_storage_errors_name_the_problem():
    with pytest.raises(ValueError, match="axis must be in"):
        tensor_bytes("int8:channel", (4, 4), axis=2)
    with pytest.raises(ValueError, match="non-negative"):
        tensor_bytes("int8", (-1, 4))


# ---- one op -------------------------------------------------------------------------------------
def test_matmul_macs_and_bitops_by_hand():
    # [2, 3, 4] @ [4, 5]: 2*3*5 outputs of 4 products each
    c = op_cost("matmul", out_shape=(2, 3, 5), reduction=4, weight_shape=(4, 5), act_shape=(2, 3, 4),
                w_format="int4", a_format="int8")
    assert c.macs == 120
    assert c.bitops == 120 * 4 * 8
    assert c.weight_bytes == 10 + 4 and c.activation_bytes == 24 + 4
    assert c.cycles == 15  # 8 lanes
    # MX: element bits x element bits, plus one 8-bit exponent add per block product (K=32, block 16)
    mx = op_cost("matmul", out_shape=(1, 4), reduction=32, weight_shape=(32, 4), act_shape=(1, 32),
                 w_format="mxint8:block=16", a_format="mxfp4", w_axis=0)
    assert mx.macs == 128
    assert mx.bitops == 128 * 8 * 4 + 128 / 16 * 8
    assert mx.weight_bytes == 8 * 16 + 8 and mx.activation_bytes == 32 * 4 // 8 + 1


def test_conv_macs_from_weight_shape():
    c = op_cost("conv", out_shape=(1, 8, 5, 5), weight_shape=(8, 3, 3, 3), act_shape=(1, 3, 7, 7),
                w_format="int8:channel", a_format="int8", w_axis=0, lanes=9)
    assert c.macs == 200 * 27
    assert c.cycles == math.ceil(5400 / 9)
    assert c.latency_us == pytest.approx(c.cycles / 100.0)


def test_energy_by_hand():
    """Horowitz 45 nm: an int8 MAC is an 8-bit multiply (0.2 pJ) and a 32-bit add (0.1 pJ); fp32 is 3.7 + 0.9."""
    kw = dict(out_shape=(1, 1), reduction=10, weight_shape=(10, 1), act_shape=(1, 10))
    i8 = op_cost("matmul", w_format="int8", a_format="int8", **kw)
    moved = (i8.weight_bytes + i8.activation_bytes) * 2.5
    assert i8.energy_pj == pytest.approx(10 * 0.3 + moved)
    f32 = op_cost("matmul", **kw)
    assert f32.energy_pj == pytest.approx(10 * 4.6 + 80 * 2.5)
    dram = op_cost("matmul", w_format="int8", a_format="int8", memory="dram", **kw)
    assert dram.energy_pj == pytest.approx(10 * 0.3 + (i8.weight_bytes + i8.activation_bytes) * ENERGY_PJ["dram_byte"])
    i4 = op_cost("matmul", w_format="int4", a_format="int4", **kw)
    assert i4.energy_pj < i8.energy_pj < f32.energy_pj


def test_area_orders_formats_sensibly():
    kw = dict(out_shape=(1, 64), reduction=64, weight_shape=(64, 64), act_shape=(1, 64), lanes=4)
    area = {s: op_cost("matmul", w_format=s, a_format=s, **kw).area_le for s in ("int4", "int8", "mxint8", "mxfp4")}
    assert area["int4"] < area["int8"] < area["mxint8"]
    # the int8 lane (calibrated) is exactly its 8x8 multiplier (one DSP = 64 LE) plus the lane overhead
    i8 = op_cost("matmul", w_format="int8", a_format="int8", **kw)
    assert i8.area_le == pytest.approx(CALIBRATION["layer_base"] + 4 * CALIBRATION["lane_int8"]
                                       + CALIBRATION["rom_per_bit"] * i8.weight_bytes * 8)
    act_act = op_cost("matmul", w_format="int8", a_format="int8", weight_is_parameter=False, **kw)
    assert act_act.area_le < i8.area_le  # no weight ROM
    # both operands are activations: the right one's bytes count with the activations
    assert (act_act.weight_bytes, act_act.weight_elements) == (0, 0)
    assert act_act.activation_bytes == i8.weight_bytes + i8.activation_bytes
    assert act_act.activation_elements == 64 * 64 + 64


def test_op_cost_errors():
    with pytest.raises(ValueError, match="op kind must be one of matmul, conv, elementwise, not 'gemm'"):
        op_cost("gemm", out_shape=(1,))
    with pytest.raises(ValueError, match="memory must be one of sram, dram, not 'hbm'"):
        op_cost("elementwise", out_shape=(4,), memory="hbm")
    with pytest.raises(ValueError, match="a matmul needs weight_shape"):
        op_cost("matmul", out_shape=(4,))


def test_elementwise_fallback():
    c = op_cost("elementwise", out_shape=(4, 8), a_format="int8", lanes=4)
    assert (c.macs, c.bitops, c.activation_bytes, c.cycles) == (0, 32 * 8, 32 + 4, 8)


# ---- a model ------------------------------------------------------------------------------------
def test_model_cost_of_the_w8a8_mlp(tmp_path):
    model = _model(tmp_path)
    opt(model, 'calibrate{method=minmax},quantize{w="int8:channel" a=int8}', calib=_calib())
    cost = model_cost(model)  # batch (symbolic) counts as 1
    fc1, fc2 = cost.rows
    assert (fc1.name, fc1.op, fc1.w_format, fc1.a_format) == ("fc1", "matmul", "int8:channel", "int8")
    # fc1: x[1,16] @ w1[16,8], per-column scales (axis 1); fc2: x[1,8] @ w2[4,8]^T, per-row scales
    assert (fc1.macs, fc1.bitops, fc1.weight_bytes, fc1.activation_bytes) == (128, 128 * 64, 128 + 8 * 4, 16 + 4)
    assert (fc2.macs, fc2.bitops, fc2.weight_bytes, fc2.activation_bytes) == (32, 32 * 64, 32 + 4 * 4, 8 + 4)
    t = cost.totals
    assert (t["macs"], t["bitops"], t["weight_bytes"], t["activation_bytes"]) == (160, 10240, 208, 32)
    assert t["bits_per_weight"] == pytest.approx(208 * 8 / 160)
    assert t["bits_per_activation"] == pytest.approx(32 * 8 / 24)
    assert t["energy_pj"] == pytest.approx(160 * 0.3 + 240 * 2.5)
    assert t["cycles"] == 16 + 4
    assert model_cost(model, dynamic_dim=4).totals["macs"] == 4 * 160
    assert "fc1" in format_table(cost) and "total" in format_table(cost)


def test_model_cost_reads_mixed_formats_and_float_ops(tmp_path):
    model = _model(tmp_path)
    opt(model, 'quantize{default=mxint8 rules="fc2=mxfp4/none"}')
    fc1, fc2 = model_cost(model).rows
    assert (fc1.w_format, fc1.a_format, fc2.w_format, fc2.a_format) == ("mxint8", "mxint8", "mxfp4", None)
    # fc1: w1 [16,8] blocks along K (axis 0): 8 padded blocks of 32; fc2: w2 [4,8] blocks along K (axis 1)
    assert fc1.weight_bytes == 8 * 32 + 8
    assert fc2.weight_bytes == 4 * 32 * 4 // 8 + 4
    assert fc2.activation_bytes == 8 * 4  # float32 activation
    assert fc2.bitops == 32 * 4 * 32 + 32 / 32 * 8
    (tmp_path / "float").mkdir()
    plain = model_cost(_model(tmp_path / "float")).totals
    assert plain["bits_per_weight"] == 32.0 and plain["bitops"] == 160 * 32 * 32


# ---- calibration --------------------------------------------------------------------------------
def test_calibration_table_matches_the_yosys_json():
    rows = load_components()
    if rows is None:
        pytest.skip("bench/results/hardware_components.json absent (run bench/hardware.py --components)")
    assert derive(rows) == pytest.approx(CALIBRATION, rel=1e-4)
    # the fitted model reproduces the masec_linear rows it was fitted on and predicts LE of the others
    for row in rows:
        if row["component"] != "masec_linear" or row.get("params", {}).get("LANES") == 1:
            continue
        p = {"K": 16, "N": 8, "LANES": 4, **row.get("params", {})}
        c = op_cost("matmul", out_shape=(1, p["N"]), reduction=p["K"], weight_shape=(p["K"], p["N"]),
                    act_shape=(1, p["K"]), w_format="int8", a_format="int8", lanes=p["LANES"])
        assert c.area_le == pytest.approx(le(row), rel=0.01), p
    mx = next(r for r in rows if r["component"] == "masec_mx_linear" and not r.get("params"))
    c = op_cost("matmul", out_shape=(1, 8), reduction=64, weight_shape=(64, 8), act_shape=(1, 64),
                w_format="mxint8", a_format="mxint8", w_axis=0, lanes=4)
    assert c.area_le == pytest.approx(le(mx), rel=0.01)
    dot = next(r for r in rows if r["component"] == "masec_mxint8_dot")  # 32 lanes summing one block
    c = op_cost("matmul", out_shape=(1, 1), reduction=32, weight_shape=(32, 1), act_shape=(1, 32),
                w_format="mxint8", a_format="mxint8", w_axis=0, lanes=32, block_parallel=True,
                weight_is_parameter=False)
    assert c.area_le - CALIBRATION["layer_base"] == pytest.approx(le(dot), rel=0.01)
    lane = next(r for r in rows if r["component"] == "masec_mac_lane")
    assert le(lane) == 64.0  # one 8x8 lane is one DSP: the 64-LE equivalence's premise


def test_calibration_is_shipped_without_the_json():
    assert set(CALIBRATION) == {"lane_int8", "lane_overhead", "rom_per_bit", "layer_base", "mx_lane_align", "mx_block_exp"}
    assert CALIBRATION["lane_int8"] == pytest.approx(64 + CALIBRATION["lane_overhead"])


def test_all_specs_price_without_error():
    for spec, kind in itertools.product(["int8", "int4:group=128", "fp8_e4m3", "mxfp6_e2m3", "fixed8:frac=4", "dint4"],
                                        ["matmul", "conv"]):
        shape = (4, 3, 2, 2) if kind == "conv" else (12, 4)
        c = op_cost(kind, out_shape=(1, 4), reduction=12, weight_shape=shape, act_shape=(1, 12),
                    w_format=spec, a_format=spec)
        assert c.macs == 48 and c.area_le > 0 and c.energy_pj > 0
