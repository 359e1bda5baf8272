"""The evolutionary search: finds the true optimum of a non-additive objective (brute-force oracle), is seeded
and reproducible, gives the same answer with 1 or 2 worker processes or Ray actors, resumes from its journal,
and its chosen pipeline replayed from scratch reproduces the accuracy it reported."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from mase_compiler.interpreter import Interpreter
from mase_compiler.metrics import sqnr_db
from mase_compiler.pipeline import PipelineError, run_pipeline
from mase_compiler.search import Budget, Choice, Problem, Tensor, solve_ilp
from mase_compiler.search.evaluate import Evaluator, Payload, open_pool
from mase_compiler.search.evolve import best, evolve
from mase_compiler.search.journal import Journal
from mase_compiler.session import Session

from test_quantize import _calib, _model

FORMATS = "int8,mxint8,mxfp4"


# ---- the algorithm, on a synthetic objective ------------------------------------------------------
def _toy(seed: int, n: int = 6):
    """A problem whose additive errors mislead: the true score has a pairwise interaction term."""
    rng = np.random.default_rng(seed)
    tensors = tuple(Tensor(f"l{i}", "weight", int(rng.integers(10, 100))) for i in range(n))
    specs = ("int8", "mxint8", "mxfp4")
    choices = tuple(tuple(Choice(s, float(rng.uniform(0.1, 1.0)) * (1 + 3 * j), b)
                          for j, (s, b) in enumerate(zip(specs, (8.0, 8.25, 4.25)))) for _ in tensors)
    problem = Problem(tensors, choices)
    inter = rng.uniform(0, 2.0, size=(n, n))

    def truth(picks) -> float:
        low = [p == 2 for p in picks]  # two neighbouring 4-bit tensors hurt more than the sum says
        return -sum(c[p].error for c, p in zip(choices, picks)) - sum(
            inter[i, i + 1] for i in range(n - 1) if low[i] and low[i + 1])

    return problem, truth


@pytest.mark.parametrize("seed", range(4))
def test_evolution_finds_the_true_optimum_that_the_additive_ilp_misses(seed):
    problem, truth = _toy(seed)
    budget = Budget(avg_bits=6.0)
    calls: list[int] = []

    def evaluate(solutions):
        calls.append(len(solutions))
        assert all(s.meets(budget) for s in solutions)  # repair: nothing over budget is ever scored
        return [{"accuracy": truth(s.picks)} for s in solutions]

    feasible = [p for p in itertools.product(range(3), repeat=6) if problem.solution(p).meets(budget)]
    oracle = max(truth(p) for p in feasible)
    history = evolve(problem, budget, evaluate, trials=120, population=8, seed=seed)
    assert len({t.solution.picks for t in history}) == len(history) <= 120  # each candidate scored once
    assert best(history).accuracy == pytest.approx(oracle)
    assert best(history).accuracy >= truth(solve_ilp(problem, budget).picks)


def test_evolution_is_reproducible_and_seed_dependent():
    problem, truth = _toy(7)
    budget = Budget(avg_bits=6.0)

    def run(seed):
        h = evolve(problem, budget, lambda sols: [{"accuracy": truth(s.picks)} for s in sols], trials=30, seed=seed)
        return [t.solution.picks for t in h]

    assert run(3) == run(3)
    assert run(3) != run(4)


# ---- on a model: evaluator, pools, journal, the pass ------------------------------------------------
def _search(tmp_path, name: str, options: str):
    model = _model(_dir(tmp_path / name))
    session = Session(model, calibration=_calib())
    run_pipeline(model, f'search{{formats="{FORMATS}" budget=12 strategy=evolution {options}}}', session=session)
    return model, session.notes


def _dir(p):
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_the_chosen_pipeline_replays_to_the_accuracy_the_search_reported(tmp_path):
    searched, notes = _search(tmp_path, "a", f'trials=12 population=4 out="{tmp_path}/s.json"')
    assert notes["search_avg_bits"] <= 12 + 1e-9 and notes["search_trials"] == 12
    # The evaluator's score of the choice is the SQNR the replay measures (metric=sqnr).
    assert notes["search_accuracy"] == pytest.approx(notes["search_measured_sqnr_db"], abs=1e-9)
    fp32, replay = _model(_dir(tmp_path / "fp32")), _model(_dir(tmp_path / "replay"))
    run_pipeline(replay, notes["search_pipeline"], session=Session(replay, calibration=_calib()))
    assert replay.text() == searched.text()
    ref = torch.cat([Interpreter(fp32)(b)["y"].reshape(-1) for b in _calib()])
    got = torch.cat([Interpreter(replay)(b)["y"].reshape(-1) for b in _calib()])
    assert sqnr_db(ref, got) == pytest.approx(notes["search_accuracy"], abs=1e-6)
    saved = json.loads((tmp_path / "s.json").read_text())
    assert len(saved["pareto"]) == 12 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    # The ILP's answer is in the first generation, so the measured choice is never worse than it.
    _, ilp = _search_ilp(tmp_path)
    assert notes["search_accuracy"] >= ilp["search_measured_sqnr_db"] - 1e-9


def _search_ilp(tmp_path):
    model = _model(_dir(tmp_path / "ilp"))
    session = Session(model, calibration=_calib())
    run_pipeline(model, f'search{{formats="{FORMATS}" budget=12}}', session=session)
    return model, session.notes


def _payload(tmp_path) -> Payload:
    model = _model(_dir(tmp_path / "payload"))
    return Payload(model.text(), {k: model.weights[k] for k in model.weights}, _calib())


ASSIGNMENTS = [{("fc1", "weight"): "mxfp4", ("fc2", "weight"): "int8"},
               {("fc1", "weight"): "mxint8", ("fc1", "activation"): "mxfp4", ("fc2", "weight"): "mxfp4"},
               {("fc2", "activation"): "mxint8"}]


def test_worker_processes_score_exactly_as_in_process(tmp_path):
    payload = _payload(tmp_path)
    here = [Evaluator(payload)(a) for a in ASSIGNMENTS]
    with open_pool(payload, workers=2) as pool:
        there = list(pool.map(ASSIGNMENTS))
    assert there == here
    assert here[0]["sqnr_db"] != here[1]["sqnr_db"]  # the assignments really differ


def test_ray_actors_score_exactly_as_in_process(tmp_path):
    pytest.importorskip("ray")
    payload = _payload(tmp_path)
    here = [Evaluator(payload)(a) for a in ASSIGNMENTS]
    with open_pool(payload, workers=2, ray="local") as pool:
        there = list(pool.map(ASSIGNMENTS))
    assert there == here


def test_the_search_gives_the_same_answer_with_two_workers(tmp_path):
    _, one = _search(tmp_path, "one", "trials=10 population=4 seed=5")
    _, two = _search(tmp_path, "two", "trials=10 population=4 seed=5 workers=2")
    assert two["search_pipeline"] == one["search_pipeline"] and two["search_accuracy"] == one["search_accuracy"]


def test_a_stopped_search_resumes_from_its_journal(tmp_path):
    journal = tmp_path / "search.jsonl"
    _, short = _search(tmp_path, "short", f'trials=6 population=4 resume="{journal}"')
    assert short["search_resumed"] == 0
    lines = journal.read_text().splitlines()
    assert len(lines) == 1 + 1 + 6  # header, sensitivity table, six candidates
    with journal.open("a") as f:
        f.write('{"key": "cut sho')  # a kill mid-write leaves half a line
    _, longer = _search(tmp_path, "longer", f'trials=12 population=4 resume="{journal}"')
    _, fresh = _search(tmp_path, "fresh", "trials=12 population=4")
    assert longer["search_resumed"] == 6
    assert longer["search_pipeline"] == fresh["search_pipeline"] and longer["search_accuracy"] == fresh["search_accuracy"]
    assert len(Journal(journal, json.loads(lines[0])["fingerprint"]).evaluations) == 12


def test_a_journal_of_another_search_is_refused(tmp_path):
    journal = tmp_path / "search.jsonl"
    _search(tmp_path, "a", f'trials=4 population=2 resume="{journal}"')
    model = _model(_dir(tmp_path / "b"))
    with pytest.raises(PipelineError, match="was written for another model, data or options"):
        run_pipeline(model, f'search{{formats="int8,mxfp4" budget=12 strategy=evolution resume="{journal}"}}',
                     session=Session(model, calibration=_calib()))


@pytest.mark.parametrize("options, message", [
    ("strategy=tpe", "search strategy must be ilp, greedy or evolution, not 'tpe'"),
    ("strategy=evolution metric=acc", "search metric must be one of sqnr, kl, loss, not 'acc'"),
    ("strategy=evolution trials=0", "search trials must be an integer >= 1, not 0"),
    ("strategy=evolution workers=0", "search workers must be an integer >= 1, not 0"),
    ("strategy=evolution metric=loss", "search metric=loss needs a task loss"),
])
def test_bad_evolution_options_are_one_line_errors(tmp_path, options, message):
    model = _model(_dir(tmp_path / "m"))
    with pytest.raises(PipelineError, match=message):
        run_pipeline(model, f"search{{{options}}}", session=Session(model, calibration=_calib()))


def test_masec_compile_replays_the_search_to_the_accuracy_it_reported(tmp_path):
    """The acceptance path as a user runs it: the CLI's search, then the CLI with the pipeline it reported."""
    from mase_compiler import hw_examples
    from mase_compiler.backends import pytorch as pt
    from mase_compiler.cli import main

    folder = hw_examples.write("mlp", tmp_path / "mlp")
    assert main(["compile", str(folder), "-p", 'search{formats="int8,mxint8,mxfp4" budget=9 strategy=evolution trials=8}',
                 "--target", "pytorch", "-o", str(tmp_path / "searched")]) == 0
    notes = next(p["notes"] for p in json.loads((tmp_path / "searched" / "compile.json").read_text())["passes"]
                 if p["pass"] == "search")
    assert main(["compile", str(folder), "-p", notes["search_pipeline"], "--target", "pytorch",
                 "-o", str(tmp_path / "replayed")]) == 0
    assert (tmp_path / "replayed" / "quantized.mlir").read_text() == (tmp_path / "searched" / "quantized.mlir").read_text()
    # The emitted PyTorch model of the replay, on the calibration data the search scored on, against FP32.
    mod = pt.load_module(tmp_path / "replayed")
    module = mod.load(tmp_path / "replayed", "cpu")
    fp32 = _onnx_runtime(folder / "model.onnx")
    with np.load(folder / "calib.npz") as calib:
        x = calib[calib.files[0]]
    batches = [x[i:i + 8] for i in range(0, len(x), 8)]  # the CLI's default calibration batching
    with torch.no_grad():
        got = torch.cat([next(iter(module(torch.from_numpy(b)).values())).reshape(-1) for b in batches])
    ref = torch.cat([torch.from_numpy(fp32(b)).reshape(-1) for b in batches])
    assert sqnr_db(ref, got) == pytest.approx(notes["search_accuracy"], abs=1e-3)


def _onnx_runtime(path):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]
