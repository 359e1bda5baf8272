"""lower-dataflow: static int8 linear layers become integer kernels that the interpreter runs exactly
(its hardware-exact mode), checked against hand-written integer arithmetic and the fake-quant IR."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from mase_compiler.dialects import dataflow as df
from mase_compiler.dialects import graph as g
from mase_compiler.driver import opt
from mase_compiler.interpreter import Interpreter
from mase_compiler.model import Model

from test_quantize import B1, W1, W2, _calib, _model  # x -> fc1(16->8) + b1 -> relu -> fc2(8->4, Gemm transB)

PIPELINE = 'calibrate{method=minmax},quantize{w="int8:channel" a=int8}'


def _lowered(tmp_path):
    fake = _model(tmp_path)
    opt(fake, PIPELINE, calib=_calib())
    hw = Model.parse(fake.text(), fake.weights)  # same weights, its own IR
    opt(hw, "lower-dataflow")
    return fake, hw


def _hidden_scale(fake) -> float:
    """The scale of fc2's activation cast in the fake-quant IR: the grid of the hidden codes."""
    fc2 = next(op for op in fake.main.body.ops if isinstance(op, g.MatmulOp) and g.node_name(op) == "fc2")
    from mase_compiler.interpreter.kernels import dense_to_tensor

    return float(dense_to_tensor(fc2.operands[0].owner.params[0].owner.properties["value"]))


def _inputs(n: int = 256) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(7).standard_normal((n, 16)).astype(np.float32)) * 2


def test_mlp_lowers_to_integer_kernels_only(tmp_path):
    _, hw = _lowered(tmp_path)
    ops = [op.name for op in hw.main.body.ops if op.name != "func.return"]
    assert ops == ["dataflow.quantize", "dataflow.linear", "dataflow.linear", "dataflow.dequantize"]
    lin1 = [op for op in hw.main.body.ops if isinstance(op, df.LinearOp)][0]
    assert lin1.lo.value.data == 0 and lin1.hi.value.data == 127  # the relu became the lower code bound
    assert Model.parse(hw.text(), hw.weights).text() == hw.text()  # prints and parses back


def test_kernels_compute_the_integer_arithmetic(tmp_path):
    """Layer 1 by hand with exact rationals: codes, int32 bias at the accumulator scale, (M, S) requantization."""
    fake, hw = _lowered(tmp_path)
    x = _inputs(32)
    seen = {}
    Interpreter(hw)({"x": x}, observe=lambda op, ins, outs: seen.setdefault(op.name, outs[0]))
    quant = next(op for op in hw.main.body.ops if isinstance(op, df.QuantizeOp))
    s_x = float(hw.weights[quant.scale.data])
    x_q = torch.round(x / s_x).clamp(-127, 127).to(torch.int64)
    assert torch.equal(seen["dataflow.quantize"].to(torch.int64), x_q)
    s_w = np.abs(W1).max(axis=0) / 127
    w_q = np.clip(np.round(W1 / s_w.astype(np.float32)), -127, 127).astype(np.int64)
    acc_scale = (s_x * s_w.astype(np.float32).astype(np.float64)).astype(np.float32).astype(np.float64)
    b_q = np.round(B1.astype(np.float64) / acc_scale).astype(np.int64)
    acc = x_q.numpy() @ w_q + b_q
    m, s = hw.weights["w1.m"], hw.weights["w1.s"]
    s_y = _hidden_scale(fake)
    for c in range(8):
        assert abs(Fraction(int(m[c]), 2 ** int(s[c])) - Fraction(s_x * float(s_w[c]) / s_y)) < Fraction(1, 2**30)
    want = np.array([[min(max(round(Fraction(int(a) * int(m[c]), 2 ** int(s[c]))), 0), 127) for c, a in enumerate(row)]
                     for row in acc])  # Python's round() is half to even on exact fractions
    assert np.array_equal(seen["dataflow.linear"].to(torch.int64).numpy(), want)


def test_hardware_exact_mode_stays_within_a_code_of_fake_quantization(tmp_path):
    fake, hw = _lowered(tmp_path)
    x = _inputs()
    hidden = {}

    def fake_obs(op, ins, outs):
        if isinstance(op, g.MatmulOp) and g.node_name(op) == "fc2":
            hidden["fake"] = ins[0]

    def hw_obs(op, ins, outs):
        if isinstance(op, df.LinearOp) and "hw" not in hidden:  # the first linear: the hidden codes
            hidden["hw"] = outs[0]

    y_fake = Interpreter(fake)({"x": x}, observe=fake_obs)["y"]
    y_hw = Interpreter(hw)({"x": x}, observe=hw_obs)["y"]
    s_y = _hidden_scale(fake)
    codes_fake = torch.round(hidden["fake"] / s_y).to(torch.int64)
    diff = (codes_fake - hidden["hw"].to(torch.int64)).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).to(torch.float64).mean()) < 0.02
    # Where the hidden codes agree the outputs agree to float32 rounding of the final scale.
    same_rows = (diff == 0).all(dim=1)
    torch.testing.assert_close(y_hw[same_rows], y_fake[same_rows], rtol=1e-5, atol=1e-5)


def test_formats_without_integer_hardware_are_refused_by_name(tmp_path):
    import pytest

    from mase_compiler.pipeline import PipelineError

    model = _model(tmp_path)
    opt(model, "quantize{default=mxint8}")
    with pytest.raises(PipelineError, match=r"lower-dataflow supports static per-tensor integer activations.*mxint8"):
        opt(model, "lower-dataflow")


def test_float_backends_refuse_dataflow_ops_with_a_hint(tmp_path):
    import pytest

    from mase_compiler.backends import BackendError, backend

    _, hw = _lowered(tmp_path)
    for target in ("pytorch", "onnx"):
        out = tmp_path / target
        out.mkdir()
        with pytest.raises(BackendError, match="dataflow ops are integer hardware kernels"):
            backend(target).emit(hw, out)


def test_ops_without_an_integer_kernel_are_named(tmp_path):
    """The zoo CNN has batch norm after a relu, pools and a resize: the first one is named in one line."""
    import pytest

    from mase_compiler import zoo
    from mase_compiler.driver import import_model
    from mase_compiler.pipeline import PipelineError

    zm = zoo.export("cnn", cache_dir=tmp_path)
    model = import_model(zm.path)
    calib = [{k: v for k, v in zoo.inputs("cnn", seed=1, batch=8).items()}]
    with pytest.raises(PipelineError, match=r"^pass 'lower-dataflow': lower-dataflow has no integer kernel for "
                                            r"graph\.batch_norm \(bn1/\w+\); supported: "):
        opt(model, 'calibrate{method=minmax},quantize{w="int8:channel" a=int8},lower-dataflow', calib=calib)


def test_tensors_without_a_cast_need_calibration_data(tmp_path):
    """An encoder layer's residual sums have no quantize cast: their grid comes from calibration data."""
    import pytest

    from mase_compiler import hw_examples
    from mase_compiler.driver import import_model
    from mase_compiler.pipeline import PipelineError

    folder = hw_examples.write("encoder", tmp_path / "enc")
    model = import_model(folder / "model.onnx")
    opt(model, 'calibrate{method=minmax},quantize{w="int8:channel" a=int8}',
        calib=[{"x": np.load(folder / "calib.npz")["x"]}])
    with pytest.raises(PipelineError, match="lower-dataflow needs calibration data to choose the integer grid"):
        opt(model, "lower-dataflow")
    with pytest.raises(PipelineError, match="internal must be int8 or int16, not 'int4'"):
        opt(model, "lower-dataflow{internal=int4}")


def test_gathers_compose_and_int16_internal_grids_are_more_accurate(tmp_path):
    """The key path's two transposes become one gather; int16 residual / norm grids beat int8 against FP32."""
    from mase_compiler import hw_examples
    from mase_compiler.driver import import_model
    from mase_compiler.metrics import compare

    folder = hw_examples.write("encoder", tmp_path / "enc")
    calib = [{"x": np.load(folder / "calib.npz")["x"]}]
    x = {"x": np.load(folder / "test.npz")["x"]}
    ref = Interpreter(import_model(folder / "model.onnx"))(x)["y"]
    sqnr = {}
    for internal in ("int8", "int16"):
        model = import_model(folder / "model.onnx")
        opt(model, f'calibrate{{method=minmax}},quantize{{w="int8:channel" a=int8}},lower-dataflow{{internal={internal}}}',
            calib=calib)
        gathers = [op for op in model.main.body.ops if isinstance(op, df.GatherOp)]
        assert len(gathers) == 4  # q, k (two transposes composed), v, and the heads merged back
        sqnr[internal] = compare(Interpreter(model)(x)["y"], ref)["sqnr_db"]
    assert sqnr["int16"] > sqnr["int8"] + 2, sqnr


def test_fixed_point_pow2_grids_make_every_requantizer_a_shift(tmp_path):
    """int8:pow2 casts and pow2 internal grids: MASE's fixed-point baseline, every M/2^S a power of two."""
    from mase_compiler.numerics import parse

    fmt = parse("int8:channel:pow2")
    assert fmt.spec == "int8:channel:pow2" and parse(fmt.spec) == fmt
    scale, _ = fmt.compute_scale(torch.tensor([[0.3, -5.0], [100.0, 1e-3]]), axis=0)
    assert torch.equal(torch.log2(scale), torch.log2(scale).round())  # powers of two ...
    assert (scale * 127 >= torch.tensor([[5.0], [100.0]])).all()  # ... never clipping more than the plain scale
    fake = _model(tmp_path)
    opt(fake, 'calibrate{method=minmax},quantize{w="int8:channel:pow2" a="int8:pow2"},lower-dataflow{pow2=true}',
        calib=_calib())
    lin = [op for op in fake.main.body.ops if isinstance(op, df.LinearOp) and op.multiplier is not None]
    for op in lin:
        m = torch.as_tensor(fake.weights[op.multiplier.data])
        assert ((m & (m - 1)) == 0).all()  # M is a power of two: the requantizer is a rounding shift
