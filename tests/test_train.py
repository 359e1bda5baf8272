"""Quantization-aware training (mase_compiler.train): the trainable module against the interpreter,
LSQ gradients and each loss term against hand-computed values, write-back round trips, the seeded and
resumable loop, and `masec train`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mase_compiler import zoo
from mase_compiler.cli import main
from mase_compiler.driver import import_model
from mase_compiler.interpreter import Interpreter
from mase_compiler.numerics import IntFormat
from mase_compiler.pipeline import run_pipeline
from mase_compiler.session import Session
from mase_compiler.train import (Trainable, copy_model, distill_loss, distribution_loss, entropy_loss, task_loss, total,
                                 train)
from mase_compiler.train._fakequant import lsq_quantize

LR = 3e-5  # AdamW moves every parameter by ~lr a step: the tiny llama's weights are ~0.02, its steps ~0.01


@pytest.fixture(scope="module")
def llama(zoo_dir):
    return import_model(zoo.export("llama", "dynamo", cache_dir=zoo_dir).path)


@pytest.fixture(scope="module")
def batches():
    return [zoo.inputs("llama", seed=s, batch=4, seq=16) for s in range(4)]


def _quantized(model, pipeline, batches):
    q = copy_model(model)
    run_pipeline(q, pipeline, session=Session(q, calibration=batches))
    return q


# ---- losses: hand-computed values ---------------------------------------------------------------------
def test_task_loss_hand_computed():
    # Position 0 ([0, 0]) predicts id 1: -log(1/2); position 1 ([log 3, 0]) predicts id 0: -log(3/4).
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [5.0, -5.0]]])
    ids = torch.tensor([[1, 1, 0]])
    assert float(task_loss(logits, ids)) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="task_loss needs logits"):
        task_loss(logits[0], ids)


def test_distill_loss_hand_computed():
    # Teacher softmax [1/4, 3/4], student [1/2, 1/2]: KL = 1/4 log(1/2) + 3/4 log(3/2).
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    teacher, student = torch.tensor([[0.0, math.log(3)]]), torch.zeros(1, 2)
    assert float(distill_loss(student, teacher)) == pytest.approx(kl, abs=1e-6)
    # At T = 2 the teacher's logits [0, 2 log 3] soften to the same [1/4, 3/4]; the loss is T^2 * KL.
    assert float(distill_loss(student, teacher * 2, T=2)) == pytest.approx(4 * kl, abs=1e-6)
    assert float(distill_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-7)


def test_entropy_loss_hand_computed():
    # Variances 1 and 4: entropies 0.5 log(2 pi e) and 0.5 log(2 pi e) + log 2; the loss is minus their mean.
    h1 = 0.5 * math.log(2 * math.pi * math.e)
    got = entropy_loss([torch.tensor([1.0, -1.0, 1.0, -1.0]), torch.tensor([2.0, -2.0])])
    assert float(got) == pytest.approx(-(h1 + h1 + math.log(2)) / 2, abs=1e-5)
    # Minimizing it spreads the tensor: the gradient points to larger variance.
    x = torch.tensor([1.0, -1.0], requires_grad=True)
    entropy_loss([x]).backward()
    assert x.grad[0] < 0 < x.grad[1]


def test_distribution_loss_hand_computed():
    teacher = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    student = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    rows = [0.25 * math.log(0.5) + 0.75 * math.log(1.5), math.log(2)]  # KL(teacher || student) per row
    assert float(distribution_loss([student], [teacher])) == pytest.approx(sum(rows) / 2, abs=1e-6)
    # Two blocks: the mean of the blocks' means.
    assert float(distribution_loss([student, teacher], [teacher, teacher])) == pytest.approx(sum(rows) / 4, abs=1e-6)


def test_total_weights():
    terms = {"task": torch.tensor(1.0), "distill": torch.tensor(2.0), "entropy": torch.tensor(3.0),
             "distribution": torch.tensor(4.0)}
    assert float(total(terms)) == pytest.approx(1 + 2 + 0.1 * 3 + 4)
    assert float(total({**terms, "task": None}, {"entropy": 1.0})) == pytest.approx(2 + 3 + 4)
    with pytest.raises(ValueError, match="loss terms must be among"):
        total({"kl": torch.tensor(1.0)})


# ---- LSQ ------------------------------------------------------------------------------------------------
def test_lsq_gradients_hand_computed():
    """Esser et al. 2020, eq. 3: d x_hat / d s = round(x/s) - x/s inside the grid, the bound outside,
    times 1 / sqrt(N * Q_p); the straight-through gradient to x is 1 inside, 0 where clipped."""
    fmt = IntFormat(3)  # symmetric int3: grid [-3, 3]
    x = torch.tensor([0.3, 1.6, 5.0], requires_grad=True)
    s = torch.tensor(1.0, requires_grad=True)
    y = lsq_quantize(x, fmt, s, None, None)
    assert y.tolist() == [0.0, 2.0, 3.0]
    y.sum().backward()
    assert float(s.grad) == pytest.approx(((0 - 0.3) + (2 - 1.6) + 3) / math.sqrt(3 * 3), abs=1e-6)
    assert x.grad.tolist() == [1.0, 1.0, 0.0]


# ---- the trainable module -------------------------------------------------------------------------------
@pytest.mark.parametrize("pipeline", ["", "w4a8", "mxfp4"])
def test_trainable_eval_equals_interpreter(llama, batches, pipeline):
    q = _quantized(llama, pipeline, batches[:2]) if pipeline else llama
    t = Trainable(q).eval()
    with torch.no_grad():
        got = t(batches[2])
    want = Interpreter(q)(batches[2])
    assert torch.equal(got["last_hidden_state"], want["last_hidden_state"])
    assert len(t.maps) == len(t.queries) == len(t.keys) == 2  # the tiny llama's two attention blocks
    assert all(torch.allclose(m.sum(-1), torch.ones(())) for m in t.maps)


def test_trainable_gradients_reach_weights_and_steps(llama, batches):
    q = _quantized(llama, "w4a8", batches[:2])
    t = Trainable(q).train()
    t(batches[0])["last_hidden_state"].square().mean().backward()
    assert len(t.steps) == sum(1 for op in q.main.body.ops if op.name == "quant.cast")  # one LSQ step per int cast
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in t.parameters())
    assert all(float(p.grad.abs().sum()) > 0 for p in t.steps.values())
    # Scalars (pow exponents, epsilons) and the rotary frequencies stay fixed: they are not layer parameters.
    names = {k.replace("\u2024", ".") for k in t.weights}
    scalars = {op.properties["name"].data for op in q.main.body.ops
               if op.name == "graph.weight" and math.prod(op.results[0].type.get_shape()) <= 1}
    assert scalars and not names & scalars


def _steps(t: Trainable, batch, n: int = 3, lr: float = 1e-3) -> None:
    opt = torch.optim.AdamW(t.parameters(), lr=lr)
    t.train()
    for _ in range(n):
        opt.zero_grad()
        (t(batch)["last_hidden_state"] - 0.5).square().mean().backward()
        opt.step()
    t.eval()


def test_write_back_round_trip(llama, batches):
    q = _quantized(llama, "w4a8", batches[:2])
    before = {k: np.array(v) for k, v in q.weights.items()}
    n_constants = sum(1 for op in q.main.body.ops if op.name == "graph.constant")
    t = Trainable(q)
    _steps(t, batches[0])
    with torch.no_grad():
        want = t(batches[1])["last_hidden_state"]
    t.write_back(q)
    got = Interpreter(q)(batches[1])["last_hidden_state"]
    assert torch.equal(got, want)
    # Weight scales changed in place; activation scales moved from constants into the weight store.
    weight_scales = [k for k in before if k.endswith(".scale")]
    assert weight_scales and all(not np.array_equal(before[k], q.weights[k]) for k in weight_scales)
    new = sorted(set(q.weights) - set(before))
    assert len(new) == sum(1 for c in t._casts.values() if c.step and c.step.startswith("c:"))
    assert sum(1 for op in q.main.body.ops if op.name == "graph.constant") == n_constants - len(new)
    # The result is plain IR: it prints, parses and runs to the same numbers.
    from mase_compiler.model import Model

    again = Model.parse(q.text(), q.weights)
    assert torch.equal(Interpreter(again)(batches[1])["last_hidden_state"], want)


def test_learned_dynamic_steps_become_scale_operands(llama, batches):
    q = _quantized(llama, "w4a8", batches[:2])
    for op in q.main.body.ops:  # make the activation casts dynamic: no scale / zero-point operands
        if op.name == "quant.cast" and len(op.operands) == 3:
            op.operands = [op.operands[0]]
    t = Trainable(q, learn_dynamic=True)
    with pytest.raises(ValueError, match="initialize"):
        t(batches[0])
    t.initialize(batches[0])
    with torch.no_grad():
        assert torch.equal(t.eval()(batches[0])["last_hidden_state"], Interpreter(q)(batches[0])["last_hidden_state"])
    _steps(t, batches[0], n=2)
    with torch.no_grad():
        want = t(batches[3])["last_hidden_state"]
    t.write_back(q)
    assert all(len(op.operands) > 1 for op in q.main.body.ops if op.name == "quant.cast")
    assert torch.equal(Interpreter(q)(batches[3])["last_hidden_state"], want)


def test_write_back_needs_the_same_graph(llama, batches):
    t = Trainable(_quantized(llama, "w4a8", batches[:2]))
    with pytest.raises(ValueError, match="write_back needs the model"):
        t.write_back(copy_model(llama))


# ---- the loop -------------------------------------------------------------------------------------------
def _distill_to_teacher(model, teacher, batches) -> float:
    """Mean distillation loss of ``model``'s outputs from ``teacher``'s, both run by the interpreter."""
    run, ref = Interpreter(model), Interpreter(teacher)
    return float(np.mean([float(distill_loss(run(b)["last_hidden_state"], ref(b)["last_hidden_state"])) for b in batches]))


def test_qat_lowers_the_loss(llama, batches):
    res = train(llama, "w4a8", batches, steps=20, lr=LR, seed=0)
    h = res["history"]
    assert len(h) == 20 and set(h[0]) == {"step", "loss", "distill", "entropy", "distribution"}  # no logits: no task term
    # Same batches (step i uses batch i % 4): the last cycle's losses are below the first's.
    assert np.mean([r["loss"] for r in h[-4:]]) < np.mean([r["loss"] for r in h[:4]])
    # Independent check on the written-back IR: closer to the FP32 model than round-to-nearest W4A8 is.
    ptq = _quantized(llama, "w4a8", batches)
    assert _distill_to_teacher(res["model"], llama, batches) < _distill_to_teacher(ptq, llama, batches)
    assert "quant.cast" in res["model"].text() and llama.text().count("quant.cast") == 0  # the input stays FP32


def test_seeded_and_resumable(llama, batches, tmp_path):
    kw = dict(lr=LR, seed=1)
    one = train(llama, "w4a8", batches, steps=8, **kw)
    assert one["history"] == train(llama, "w4a8", batches, steps=8, **kw)["history"]
    ckpt = tmp_path / "ckpt.pt"
    first = train(llama, "w4a8", batches, steps=4, checkpoint=ckpt, **kw)
    assert first["history"] == one["history"][:4]
    rest = train(llama, "w4a8", batches, steps=8, checkpoint=ckpt, resume=True, **kw)
    assert rest["start_step"] == 4 and rest["history"] == one["history"]
    a, b = one["model"].weights, rest["model"].weights
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="other settings"):
        train(llama, "w4a8", batches, steps=8, checkpoint=ckpt, resume=True, lr=1e-4, seed=1)


# ---- masec train ----------------------------------------------------------------------------------------
def test_cli_train_then_compile(llama, batches, zoo_dir, tmp_path, capsys):
    src = str(zoo.export("llama", "dynamo", cache_dir=zoo_dir).path)
    data = tmp_path / "data.npz"
    np.savez(data, **{k: np.concatenate([b[k] for b in batches]) for k in batches[0]})
    out = tmp_path / "run"
    rc = main(["train", src, "-p", "w4a8", "--data", str(data), "--steps", "4", "--lr", str(LR), "--out", str(out),
               "--batch-size", "4", "--checkpoint-every", "2", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(res["history"]) == 4
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "train.json", "trained.mlir", "trained.safetensors"]
    rc = main(["compile", str(out / "trained.mlir"), "-p", "dce", "--target", "pytorch", "-o", str(tmp_path / "c"), "--json"])
    compiled = json.loads(capsys.readouterr().out)
    assert rc == 0 and compiled["outputs"]["last_hidden_state"]["max_abs_error"] == 0  # compiled as trained, not re-quantized


@pytest.mark.parametrize("argv, needle", [
    (["-p", "w4a9"], "unknown pass or preset 'w4a9'"),
    (["-p", "w4a8", "--resume"], "--resume needs"),
    (["-p", "w4a8", "--steps", "0"], "steps must be a positive integer"),
])
def test_cli_train_errors_one_line_no_output(zoo_dir, tmp_path, capsys, argv, needle):
    src = str(zoo.export("llama", "dynamo", cache_dir=zoo_dir).path)
    out = tmp_path / "run"
    rc = main(["train", src, "--out", str(out), *argv])
    _, err = capsys.readouterr()
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_train_refuses_foreign_directory(zoo_dir, tmp_path, capsys):
    src = str(zoo.export("llama", "dynamo", cache_dir=zoo_dir).path)
    (tmp_path / "notes.txt").write_text("mine")
    rc = main(["train", src, "-p", "w4a8", "--out", str(tmp_path)])
    assert rc == 2 and "did not write (notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
