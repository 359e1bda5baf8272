"""Token importance and the ``token-bits`` pass (EdgeQAT token-adaptive activation bits).

Oracles: hand-computed importance (with a causal mask), per-row fake-quantization of each token by
itself (so a row is "low" exactly when it equals the int4 quantization of that row alone), a brute-force
ranking of tokens by importance with position tie-breaks, and the interpreter for the emitted model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mase_compiler import zoo
from mase_compiler.backends import pytorch as pt
from mase_compiler.dialects.quant import TokenCastOp, TokenImportanceOp
from mase_compiler.driver import import_model
from mase_compiler.interpreter import Interpreter, run as interpret
from mase_compiler.model import Model
from mase_compiler.numerics import parse
from mase_compiler.numerics.tokens import low_tokens, token_importance, token_mixed
from mase_compiler.pipeline import PipelineError, run_pipeline
from mase_compiler.session import Session

HIGH, LOW = parse("int8:token"), parse("int4:token")
NEG = float("-inf")


# ---- numerics ----------------------------------------------------------------------------------
def test_importance_by_hand_with_a_causal_mask():
    # 1 sequence, 2 heads, 3 tokens; causal: query i sees keys 0..i.
    h0 = [[1.0, NEG, NEG], [2.0, 4.0, NEG], [3.0, 0.0, 6.0]]
    h1 = [[5.0, NEG, NEG], [0.0, 2.0, NEG], [1.0, 2.0, 0.0]]
    logits = torch.tensor([[h0, h1]])
    # key 0 is seen by 3 queries in each head: (1+2+3+5+0+1)/6; key 1 by 2: (4+0+2+2)/4; key 2 by 1: (6+0)/2.
    want = torch.tensor([[12 / 6, 8 / 4, 6 / 2]])
    torch.testing.assert_close(token_importance(logits), want, rtol=0, atol=1e-6)
    # A mask added as a large negative finite number (what exports do) counts as masked too.
    masked = torch.where(torch.isinf(logits), torch.full_like(logits, -3.4e38), logits)
    torch.testing.assert_close(token_importance(masked), want, rtol=0, atol=1e-6)
    p = torch.softmax(logits, dim=-1)
    seen = torch.tensor([3.0, 2.0, 1.0]) * 2
    torch.testing.assert_close(token_importance(logits, "probs"), (p.sum(dim=(1, 2)) / seen), rtol=0, atol=1e-6)
    # probs-sum: column sums.  Head 0 row 1 is softmax([2, 4]); row 2 softmax([3, 0, 6]); head 1 likewise.
    e = math.exp
    col0 = 1 + e(2) / (e(2) + e(4)) + e(3) / (e(3) + e(0) + e(6)) + 1 + e(0) / (e(0) + e(2)) + e(1) / (e(1) + e(2) + e(0))
    torch.testing.assert_close(token_importance(logits, "probs-sum")[0, 0], torch.tensor(col0), rtol=1e-6, atol=0)


def test_a_key_no_query_sees_is_least_important():
    logits = torch.zeros(1, 1, 2, 3)
    logits[..., 2] = NEG  # a padded key
    assert token_importance(logits).tolist() == [[0.0, 0.0, NEG]]


def test_ties_go_to_the_later_token():
    imp = torch.tensor([[1.0, 0.0, 0.0, 2.0, 0.0, 1.0]])
    assert low_tokens(imp, 0.5).nonzero()[:, 1].tolist() == [1, 2, 4]
    assert low_tokens(imp, 2 / 6).nonzero()[:, 1].tolist() == [2, 4]
    assert low_tokens(imp, 4 / 6).nonzero()[:, 1].tolist() == [1, 2, 4, 5]
    assert low_tokens(imp, 0.0).sum() == 0 and low_tokens(imp, 1.0).all()
    assert low_tokens(imp, threshold=1.0).nonzero()[:, 1].tolist() == [1, 2, 4]


def _rows(x: torch.Tensor, fmt) -> torch.Tensor:
    """Each row quantized alone: the per-token oracle."""
    return torch.stack([torch.stack([fmt.quantize(r[None])[0] for r in seq]) for seq in x])


def _ranked_low(imp: torch.Tensor, k: int) -> list[set[int]]:
    """Brute force: the k least important positions per sequence, the later one first among equals."""
    return [set(sorted(range(len(row)), key=lambda j: (row[j], -j))[:k]) for row in imp.tolist()]


def _classify(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per token: 1 if y's row is the int4 row, 0 if the int8 row (asserting it is one of them)."""
    lo, hi = _rows(x, LOW), _rows(x, HIGH)
    is_lo = (y == lo).all(-1)
    is_hi = (y == hi).all(-1)
    assert bool((is_lo | is_hi).all()), "every token must be quantized with exactly one of the two formats"
    assert not bool((is_lo & is_hi).any()), "test data must tell the two formats apart"
    return is_lo


@pytest.mark.parametrize("ratio, k", [(0.25, 2), (0.5, 4)])
def test_token_mixed_uses_low_for_exactly_the_least_important_share(ratio, k):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 16, generator=g)
    imp = torch.randn(3, 8, generator=g)
    imp[1, 2] = imp[1, 5]  # a tie
    y, mask = token_mixed(x, imp, "int8:token", "int4:token", ratio, return_low=True)
    low = _classify(x, y)
    assert low.sum(-1).tolist() == [k] * 3
    assert torch.equal(low, mask)
    assert [set(r.nonzero()[:, 0].tolist()) for r in low] == _ranked_low(imp, k)
    # [seq, d] is one sequence.
    assert torch.equal(token_mixed(x[0], imp[:1], HIGH, LOW, ratio), y[0])


def test_token_mixed_threshold_and_bad_shapes():
    g = torch.Generator().manual_seed(1)
    x, imp = torch.randn(2, 8, 16, generator=g), torch.randn(2, 8, generator=g)
    low = _classify(x, token_mixed(x, imp, HIGH, LOW, threshold=0.1))
    assert torch.equal(low, imp < 0.1)
    with pytest.raises(ValueError, match=r"token importance must be \[batch, seq\] = \[2, 8\] .*not \[2, 7\]"):
        token_mixed(x, imp[:, :7], HIGH, LOW)
    with pytest.raises(ValueError, match="method must be one of logits, probs, probs-sum, not 'attn'"):
        token_importance(torch.zeros(1, 1, 2, 2), "attn")


# ---- the pass on zoo models --------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_path(zoo_dir):
    return zoo.export("llama", "dynamo", cache_dir=zoo_dir).path


def _watch(model: Model, feed: dict) -> tuple[dict, list]:
    """Run the interpreter; the logits each importance op read, and (x, importance, result) of each token cast."""
    logits, casts = {}, []

    def observe(op, operands, results):
        if isinstance(op, TokenImportanceOp):
            logits[op.result] = (operands[0], results[0])
        elif isinstance(op, TokenCastOp):
            casts.append((op, operands[0], operands[1], results[0]))

    Interpreter(model)(feed, observe=observe)
    return logits, casts


def _brute_importance(logits: torch.Tensor) -> torch.Tensor:
    b, h, q, k = logits.shape
    out = torch.empty(b, k)
    for bi in range(b):
        for j in range(k):
            vals = [float(logits[bi, hi, i, j]) for hi in range(h) for i in range(q)
                    if math.isfinite(float(logits[bi, hi, i, j])) and float(logits[bi, hi, i, j]) > -1e4]
            out[bi, j] = sum(vals) / len(vals) if vals else NEG
    return out


@pytest.mark.parametrize("ratio, k", [(0.25, 2), (0.5, 4)])
def test_token_bits_on_llama_low_for_exactly_the_share_of_least_important_tokens(llama_path, ratio, k):
    model = import_model(llama_path)
    feed = zoo.inputs("llama", seed=3, batch=2, seq=8)
    calib = [zoo.inputs("llama", seed=s, batch=2, seq=8) for s in (4, 5)]
    rec = run_pipeline(model, f"token-bits{{ratio={ratio}}}", session=Session(model, calibration=calib))[-1]
    # 2 blocks; downstream linears: o_proj, gate/up (one input), down, then the next layer's q/k/v (one input)
    # for block 0; o_proj, gate/up, down for block 1.
    assert rec["ops_changed"] == {"quant.token_importance": 2, "quant.token_cast": 7}
    assert rec["notes"]["linears"] == 11
    logits, casts = _watch(model, feed)
    assert len(casts) == 7
    for op, x, imp, y in casts:
        raw, got = logits[op.importance]
        torch.testing.assert_close(got, _brute_importance(raw), rtol=1e-5, atol=1e-5)
        low = _classify(x, y)
        assert low.sum(-1).tolist() == [k, k]
        assert [set(r.nonzero()[:, 0].tolist()) for r in low] == _ranked_low(imp, k)
    # Every linear reads the same share: the average is exact.
    assert rec["notes"]["low_token_share"] == ratio
    assert rec["notes"]["avg_activation_bits"] == 8 - 4 * ratio


def test_reported_bits_match_the_count_with_a_threshold(llama_path):
    model = import_model(llama_path)
    calib = [zoo.inputs("llama", seed=s, batch=2, seq=8) for s in (6, 7)]
    notes = run_pipeline(model, 'token-bits{threshold=0.0 high="int8:token" low=mxfp4}',
                         session=Session(model, calibration=calib))[-1]["notes"]
    low_elems = elems = low = tokens = 0
    for batch in calib:
        _, casts = _watch(model, batch)
        for op, x, imp, y in casts:
            n = int((imp < 0.0).sum())
            assert torch.equal((y == parse("mxfp4").quantize(x)).all(-1) & (imp < 0.0), imp < 0.0)
            readers = len(list(op.result.uses))
            low, tokens = low + n, tokens + imp.numel()
            low_elems, elems = low_elems + n * x.shape[-1] * readers, elems + imp.numel() * x.shape[-1] * readers
    assert 0 < low < tokens
    assert notes["low_token_share"] == pytest.approx(low / tokens)
    assert notes["avg_activation_bits"] == pytest.approx((low_elems * 4.25 + (elems - low_elems) * 8) / elems)


@pytest.mark.parametrize("name", ["llama", "bert"])
def test_emitted_pytorch_model_is_bit_exact_and_a_second_run_changes_nothing(zoo_dir, tmp_path, name):
    model = import_model(zoo.export(name, "dynamo", cache_dir=zoo_dir).path)
    rec = run_pipeline(model, 'quantize{w="int8:channel" a="int8:token"},token-bits{ratio=0.5 method=probs}',
                       session=Session(model))
    assert rec[-1]["notes"]["replaced_casts"] == rec[-1]["notes"]["linears"] > 0
    text = model.text()
    assert Model.parse(text, model.weights).text() == text  # the new ops round-trip
    assert run_pipeline(model, "token-bits{ratio=0.5 method=probs}", session=Session(model))[-1]["ops_changed"] == {}
    assert model.text() == text
    pt.emit(model, tmp_path)
    assert "from mase_compiler.numerics import tokens" in (tmp_path / "model.py").read_text()
    feed = zoo.inputs(name, seed=11, batch=2, seq=8)
    ref, got = interpret(model, feed), pt.run(tmp_path, feed)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ("ratio=1.5", r"ratio must be in \[0, 1\], not 1.5"),
    ("method=logit", r"method must be one of logits, probs, probs-sum, not 'logit'"),
    ("low=int1", r"token-bits low: 'int1': int width must be in 2..16, not 1"),
    ("hgh=int8", r"has no option 'hgh'"),
])
def test_bad_options_are_one_line_errors(options, message):
    from mase_compiler.pipeline import parse as parse_pipeline

    with pytest.raises(PipelineError, match=message) as e:
        parse_pipeline(f"token-bits{{{options}}}")
    assert "\n" not in str(e.value)


_MISMATCH = """builtin.module {
  func.func @main(%x: tensor<1x1x4x8xf32> {graph.name = "x"}, %h: tensor<1x6x8xf32> {graph.name = "h"}) -> (tensor<1x6x8xf32> {graph.name = "y"}, tensor<1x1x4x8xf32> {graph.name = "o"}) {
    %kt = graph.transpose %x {perm = array<i64: 0, 1, 3, 2>} : (tensor<1x1x4x8xf32>) -> tensor<1x1x8x4xf32>
    %s = graph.matmul %x, %kt : (tensor<1x1x4x8xf32>, tensor<1x1x8x4xf32>) -> tensor<1x1x4x4xf32>
    %p = graph.softmax %s {axis = -1 : i64} : (tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
    %o = graph.matmul %p, %x : (tensor<1x1x4x4xf32>, tensor<1x1x4x8xf32>) -> tensor<1x1x4x8xf32>
    %w = graph.weight {name = "w"} : tensor<8x8xf32>
    %y = graph.matmul %h, %w {graph.node = "proj"} : (tensor<1x6x8xf32>, tensor<8x8xf32>) -> tensor<1x6x8xf32>
    func.return %y, %o : tensor<1x6x8xf32>, tensor<1x1x4x8xf32>
  }
}
"""


def test_shapes_that_do_not_line_up_and_models_without_attention_are_refused():
    model = Model.parse(_MISMATCH)
    model.weights["w"] = np.eye(8, dtype=np.float32)
    before = model.text()
    with pytest.raises(PipelineError, match=r"token-bits needs proj's activation as \[batch, seq, d\] with seq = the keys "
                                            r"of attention 0 \(tensor<1x1x4x4xf32>\), not tensor<1x6x8xf32>") as e:
        run_pipeline(model, "token-bits", session=Session(model))
    assert "\n" not in str(e.value) and model.text() == before
    plain = Model.parse(_MISMATCH.replace("graph.softmax", "graph.relu").replace(" {axis = -1 : i64}", ""))
    with pytest.raises(PipelineError, match="token-bits needs attention blocks"):
        run_pipeline(plain, "token-bits", session=Session(plain))


def test_verifiers_name_the_problem():
    ok = _MISMATCH.replace('%w = graph.weight', '%i = quant.token_importance %s {method = "logits"} : '
                           '(tensor<1x1x4x4xf32>) -> tensor<1x4xf32>\n    %w = graph.weight')
    Model.parse(ok).module.verify()
    with pytest.raises(Exception, match="expected method one of logits, probs, probs-sum, got 'attn'"):
        Model.parse(ok.replace('"logits"', '"attn"')).module.verify()
    with pytest.raises(Exception, match=r"expected result \[batch, keys\] = \[1, 4\]"):
        Model.parse(ok.replace("-> tensor<1x4xf32>", "-> tensor<1x5xf32>")).module.verify()
    cast = ok.replace("%y = graph.matmul %h", '%c = quant.token_cast %h, %i {high = #quant.int<"int8:token">, '
                      'low = #quant.int<"int4:token">, ratio = RATIO : f64} : (tensor<1x6x8xf32>, tensor<1x4xf32>) '
                      '-> tensor<1x6x8xf32>\n    %y = graph.matmul %h')
    with pytest.raises(Exception, match=r"expected importance \[batch, seq\] = \[1, 6\], got tensor<1x4xf32>"):
        Model.parse(cast.replace("RATIO", "5.000000e-01")).module.verify()
    with pytest.raises(Exception, match=r"expected ratio in \[0, 1\], got 2.0"):
        Model.parse(cast.replace("RATIO", "2.000000e+00")).module.verify()
