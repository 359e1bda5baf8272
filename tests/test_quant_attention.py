"""Quantized attention (EdgeQAT): ``quantize{query key attn value kv}``, the distribution statistics of
``mase_compiler.attention_stats`` and the ``attention-stats`` pass.

Oracles: the FP32 model's own values (observed with the interpreter) fake-quantized by the numerics
library along the axis docs say; hand-computed entropies and KL; the emitted PyTorch model.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from mase_compiler import hw_examples, zoo
from mase_compiler.attention import find_attention
from mase_compiler.attention_stats import attention_kl, code_entropy, fp32_reference, gaussian_entropy, measure
from mase_compiler.backends import pytorch as pt
from mase_compiler.dialects.quant import CastOp
from mase_compiler.driver import import_model, opt
from mase_compiler.interpreter import Interpreter
from mase_compiler.numerics import parse
from mase_compiler.pipeline import PipelineError

# role -> (matmul of the block, operand index, the axis that per-token scales reduce over / MX blocks run along)
ROLES = {"query": ("qk", 0, -1), "key": ("qk", 1, -2), "attn": ("av", 0, -1), "value": ("av", 1, -1)}


def _model(zoo_dir, name: str):
    return import_model(zoo.export(name, "dynamo", cache_dir=zoo_dir).path)


def _operands(model, feed) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Per block, each role's (value the matmul reads, value before its cast or the value itself)."""
    blocks = find_attention(model.module)
    want = {}
    for i, b in enumerate(blocks):
        for role, (attr, index, _) in ROLES.items():
            v = getattr(b, attr).operands[index]
            want[id(v.owner)] = want.get(id(v.owner), []) + [(i, role, "read", v)]
            src = v.owner.operands[0] if isinstance(v.owner, CastOp) else v
            want[id(src.owner)] = want.get(id(src.owner), []) + [(i, role, "fp32", src)]
    seen: list[dict] = [{} for _ in blocks]

    def observe(op, operands, results):
        for entry in want.get(id(op), ()):
            i, role, what = entry[:3]
            seen[i].setdefault(role, {})[what] = results[list(op.results).index(entry[3])]

    Interpreter(model)(feed, observe=observe)
    return [{r: (d[r]["read"], d[r]["fp32"]) for r in ROLES} for d in seen]


@pytest.mark.parametrize("name", ["bert", "llama"])
@pytest.mark.parametrize("role, spec", [("query", "int8:token"), ("key", "int4:token"), ("attn", "int8:token"),
                                        ("value", "int8:token"), ("value", "mxint8:block=4"), ("key", "mxfp8_e4m3:block=4")])
def test_each_option_casts_its_operand_of_every_block_to_the_formats_fake_quant(zoo_dir, name, role, spec):
    model = _model(zoo_dir, name)
    feed = zoo.inputs(name, seed=3, batch=2, seq=6)
    fp32 = _operands(model, feed)
    opt(model, f'quantize{{{role}="{spec}"}}')
    blocks = find_attention(model.module)
    casts = [op for op in model.module.walk() if isinstance(op, CastOp)]
    assert len(casts) == len(blocks) == 2  # one cast per block, nothing else quantized
    attr, index, axis = ROLES[role]
    for b in blocks:
        assert getattr(b, attr).operands[index].owner in casts
    got = _operands(model, feed)
    fmt = parse(spec)
    for i, block in enumerate(got):
        read, before = block[role]
        if i == 0:  # upstream of the first block nothing is quantized: the cast reads the FP32 value
            torch.testing.assert_close(before, fp32[0][role][1], rtol=0, atol=0)
        torch.testing.assert_close(read, fmt.quantize(before, axis=axis), rtol=0, atol=0)
        assert not torch.equal(read, before)
        for other in set(ROLES) - {role}:  # the other operands stay float
            assert torch.equal(block[other][0], block[other][1])


def test_per_token_scales_cover_one_token_of_k_and_v(zoo_dir):
    """K^T [.., dh, Sk] and V [.., Sk, dh] in int8:token: every key / value token has its own scale
    max|token| / 127 (hand-computed, not through the numerics library)."""
    model = _model(zoo_dir, "llama")
    feed = zoo.inputs("llama", seed=4, batch=1, seq=5)
    opt(model, 'quantize{kv="int8:token"}')
    for block in _operands(model, feed):
        for role, dh_axis in (("key", -2), ("value", -1)):
            read, before = block[role]
            scale = before.abs().amax(dim=dh_axis, keepdim=True) / 127
            want = torch.clamp(torch.round(before / scale), -127, 127) * scale
            torch.testing.assert_close(read, want, rtol=1e-6, atol=1e-7)


def test_kv_is_key_plus_value(zoo_dir):
    a, b = _model(zoo_dir, "bert"), _model(zoo_dir, "bert")
    opt(a, 'quantize{kv="int4:token" query="int8:token"}')
    opt(b, 'quantize{key="int4:token" value="int4:token" query="int8:token"}')
    assert a.text() == b.text()
    assert sum(isinstance(op, CastOp) for op in a.module.walk()) == 6


def test_options_win_over_the_generic_activation_format_and_none_keeps_float(zoo_dir):
    model = _model(zoo_dir, "bert")
    opt(model, 'quantize{a="int8:token" query="int4:token" key=none}')
    for b in find_attention(model.module):
        assert str(b.query.owner.properties["format"].format) == "int4:token"
        assert not isinstance(b.key.owner, CastOp)
        assert str(b.value.owner.properties["format"].format) == "int8:token"  # no option: the generic format
    # act_act=false leaves attention matmuls float, except the operands an option names.
    model = _model(zoo_dir, "bert")
    opt(model, 'quantize{a="int8:token" act_act=false query="int8:token"}')
    for b in find_attention(model.module):
        assert isinstance(b.query.owner, CastOp)
        assert not any(isinstance(v.owner, CastOp) for v in (b.key, b.probs, b.value))


def test_static_formats_use_calibrated_ranges_of_the_attention_operands(zoo_dir):
    model = _model(zoo_dir, "llama")
    with pytest.raises(PipelineError, match="needs calibration statistics.*calibrate"):
        opt(model, "quantize{kv=int8}")
    calib = [zoo.inputs("llama", seed=s, batch=2, seq=6) for s in (5, 6)]
    amax = [0.0, 0.0]
    for feed in calib:  # the oracle: max |K| over the calibration batches, from the FP32 model (calibrate runs it)
        for i, block in enumerate(_operands(model, feed)):
            amax[i] = max(amax[i], float(block["key"][0].abs().max()))
    opt(model, "calibrate,quantize{kv=int8}", calib=calib)
    for i, b in enumerate(find_attention(model.module)):
        cast = b.key.owner
        assert str(cast.properties["format"].format) == "int8"
        scale = cast.operands[1].owner.properties["value"]
        assert float(scale.get_values()[0]) == pytest.approx(amax[i] / 127, rel=1e-6)


@pytest.mark.parametrize("spec, message", [
    ('quantize{kv=int8 key="int4:token"}', "kv sets both key and value.*key='int4:token'"),
    ("quantize{query=int9z}", "quantize option query:"),
    ("quantize{qeury=int8}", "has no option 'qeury'"),
    ('quantize{attn="int8:channel"}', "per-channel granularity"),
])
def test_bad_options_are_one_line_errors(zoo_dir, spec, message):
    with pytest.raises(PipelineError, match=message) as e:
        opt(_model(zoo_dir, "bert"), spec)
    assert "\n" not in str(e.value)


def test_options_on_a_model_without_attention_are_an_error(tmp_path):
    mlp = import_model(hw_examples.write("mlp", tmp_path / "mlp") / "model.onnx")
    with pytest.raises(PipelineError, match="quantize options query=, kv= need attention blocks"):
        opt(mlp, 'quantize{query="int8:token" kv="int8:token"}')


def test_query_key_int8_token_compiles_bit_exact_to_pytorch(zoo_dir, tmp_path):
    model = _model(zoo_dir, "llama")
    opt(model, 'quantize{query="int8:token" key="int8:token"}')
    (tmp_path / "out").mkdir()
    pt.emit(model, tmp_path / "out")
    for seed in (0, 1):
        feed = zoo.inputs("llama", seed=seed, batch=2, seq=7)
        ref, got = Interpreter(model)(feed), pt.run(tmp_path / "out", feed)
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)


# ---- statistics: hand-computed values --------------------------------------------------------------
def test_gaussian_entropy_hand_computed_and_differentiable():
    x = torch.tensor([1.0, -1.0, 3.0, -3.0], requires_grad=True)  # population variance (1 + 1 + 9 + 9) / 4 = 5
    h = gaussian_entropy(x)
    assert h.shape == () and float(h.detach()) == pytest.approx(0.5 * math.log(2 * math.pi * math.e * 5), rel=1e-6)
    h.backward()
    # d/dx 0.5 log(var) = (x - mean) / (n var)
    torch.testing.assert_close(x.grad, torch.tensor([1.0, -1.0, 3.0, -3.0]) / 20)
    assert float(gaussian_entropy(torch.zeros(3))) == pytest.approx(0.5 * math.log(2 * math.pi * math.e * 1e-12))


def test_code_entropy_hand_computed():
    assert code_entropy(torch.tensor([0.0, 0.0, 1.0, 2.0])) == pytest.approx(1.5)  # p = 1/2, 1/4, 1/4
    assert code_entropy(torch.tensor([[3, 3], [3, 3]])) == 0.0
    assert code_entropy(torch.arange(16)) == pytest.approx(4.0)


def test_attention_kl_hand_computed_and_differentiable():
    t = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    s = torch.tensor([[0.25, 0.75], [0.5, 0.5]], requires_grad=True)
    # row 0: 0.5 ln 2 + 0.5 ln(2/3); row 1: ln 2 (the zero probability contributes 0)
    want = (0.5 * math.log(2) + 0.5 * math.log(2 / 3) + math.log(2)) / 2
    kl = attention_kl(t.reshape(1, 2, 2), s.reshape(1, 2, 2))
    assert kl.shape == () and float(kl.detach()) == pytest.approx(want, rel=1e-5)
    kl.backward()
    torch.testing.assert_close(s.grad, -t / (s.detach() + 1e-12) / 2)
    assert float(attention_kl(t, t)) == 0.0


# ---- measure and the pass --------------------------------------------------------------------------
def test_measure_against_the_fp32_reference(zoo_dir):
    model = _model(zoo_dir, "llama")
    batches = [zoo.inputs("llama", seed=s, batch=2, seq=6) for s in (7, 8)]
    fp32 = measure(model, batches, reference=fp32_reference(model))
    assert [r["attention_kl"] for r in fp32] == [0.0, 0.0]  # the model against itself
    opt(model, 'quantize{query="int2:token" key="int4:token"}')
    ref = fp32_reference(model)
    assert not any(isinstance(op, CastOp) for op in ref.module.walk())
    rows = measure(model, batches, reference=ref)
    assert len(rows) == 2 and rows[0]["query_format"] == "int2:token"
    for f, q in zip(fp32, rows):
        assert q["attention_kl"] > 1e-6
        assert q["query_code_entropy"] <= 2.0 < f["query_code_entropy"]
        assert q["key_code_entropy"] <= 4.0 < f["key_code_entropy"]
    # the oracle for block 0 (its inputs are FP32): the formulas on the quantized operands, per batch
    h = [float(gaussian_entropy(_operands(model, b)[0]["query"][0])) for b in batches]
    assert rows[0]["query_gaussian_entropy"] == pytest.approx(sum(h) / 2, rel=1e-6)


def test_attention_stats_pass_writes_json(zoo_dir, tmp_path):
    model = _model(zoo_dir, "bert")
    calib = [zoo.inputs("bert", seed=9, batch=2, seq=6)]
    out = tmp_path / "stats.json"
    opt(model, f'quantize{{query="int4:token" key="int4:token"}},attention-stats{{out="{out}"}}', calib=calib)
    data = json.loads(out.read_text())
    assert data["batches"] == 1 and len(data["blocks"]) == 2
    assert data["blocks"] == json.loads(json.dumps(measure(model, calib, reference=fp32_reference(model))))
    with pytest.raises(PipelineError, match="needs calibration data"):
        opt(_model(zoo_dir, "bert"), "attention-stats")
