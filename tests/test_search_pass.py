"""The search pass end to end: sensitivity -> exact ILP under a bits budget -> quantize; its reported pipeline,
replayed from scratch (as ``masec compile -p`` does), gives the same IR and the accuracy the search reported."""

from __future__ import annotations

import json

import pytest
import torch

from mase_compiler.interpreter import Interpreter
from mase_compiler.metrics import sqnr_db
from mase_compiler.pipeline import PipelineError, run_pipeline
from mase_compiler.session import Session

from test_quantize import _calib, _model


def _fresh(folder):
    folder.mkdir(parents=True, exist_ok=True)
    return _model(folder)


def _search(tmp_path, pipeline: str):
    fp32 = _fresh(tmp_path / "fp32")
    model = _fresh(tmp_path / "searched")  # its own weight store: the names the passes add must match the replay's
    session = Session(model, calibration=_calib())
    run_pipeline(model, pipeline, session=session)
    return fp32, model, session.notes


@pytest.mark.parametrize("strategy", ["ilp", "greedy"])
def test_the_reported_pipeline_replays_to_the_same_model_and_accuracy(tmp_path, strategy):
    fp32, searched, notes = _search(
        tmp_path, f'search{{formats="int8,mxint8,mxfp4" budget=12 strategy={strategy} out="{tmp_path}/s.json"}}')
    assert notes["search_avg_bits"] <= 12 + 1e-9
    assert set(notes["search_formats"].values()) <= {"int8", "mxint8", "mxfp4"}
    replay = _fresh(tmp_path / "replay")
    run_pipeline(replay, notes["search_pipeline"], session=Session(replay, calibration=_calib()))
    assert replay.text() == searched.text()
    ref = torch.cat([Interpreter(fp32)(b)["y"].reshape(-1) for b in _calib()])
    got = torch.cat([Interpreter(replay)(b)["y"].reshape(-1) for b in _calib()])
    assert sqnr_db(ref, got) == pytest.approx(notes["search_measured_sqnr_db"], abs=1e-6)
    # The additive model predicts the measured error closely on this two-layer model.
    assert abs(notes["search_predicted_sqnr_db"] - notes["search_measured_sqnr_db"]) < 3
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["pipeline"] == notes["search_pipeline"] and saved["sensitivity"] and saved["pareto"]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_a_larger_budget_never_predicts_worse(tmp_path):
    _, _, tight = _search(tmp_path, 'search{formats="int8,mxint8,mxfp4" budget=9}')
    _, _, loose = _search(tmp_path, 'search{formats="int8,mxint8,mxfp4" budget=20}')
    assert loose["search_predicted_sqnr_db"] >= tight["search_predicted_sqnr_db"]
    assert tight["search_avg_bits"] <= 9 < loose["search_avg_bits"]


def test_bad_options_and_budgets_are_one_line_errors(tmp_path):
    with pytest.raises(PipelineError, match="search strategy must be ilp, greedy or evolution, not 'tpe'"):
        _search(tmp_path, "search{strategy=tpe}")
    with pytest.raises(PipelineError, match="unknown number format"):
        _search(tmp_path, 'search{formats="mxfp5"}')
    with pytest.raises(PipelineError, match="budget average bits must be at least 10.6857"):
        _search(tmp_path, 'search{formats="mxfp4,mxint8" budget=3}')
    with pytest.raises(PipelineError, match="search energy must be a positive number or a format like int8"):
        _search(tmp_path, 'search{energy=int8x}')
    with pytest.raises(PipelineError, match="search area must be a positive number or a format like int8, not -1"):
        _search(tmp_path, 'search{area=-1}')


def _priced(model) -> dict:
    from mase_compiler.cost import model_cost

    return model_cost(model, dynamic_dim=len(_calib()[0]["x"])).totals  # the batch the search priced: the first calibration batch


@pytest.mark.parametrize("strategy", ["ilp", "evolution"])
def test_an_energy_limit_of_int8_everywhere_holds_on_the_replayed_model(tmp_path, strategy):
    """``energy=int8``: at most the energy of int8 weights and activations on every layer, as the cost model prices
    the model the chosen pipeline quantizes (the oracle: that model, and the uniform-int8 model, priced)."""
    formats = "int8,mxint8,mxfp4,fp8_e4m3"
    _, searched, notes = _search(tmp_path, f'search{{formats="{formats}" budget=40 energy=int8 strategy={strategy} trials=12}}')
    uniform = _fresh(tmp_path / "int8")
    run_pipeline(uniform, 'calibrate{method=minmax},quantize{default=int8}', session=Session(uniform, calibration=_calib()))
    limit = _priced(uniform)["energy_pj"]
    got = _priced(searched)["energy_pj"]
    assert got <= limit * (1 + 1e-9)
    assert notes["search_energy_uj"] * 1e6 == pytest.approx(got, rel=1e-12)
    # The limit binds: without it the most accurate choice is a richer one that costs more energy.
    _, free, _ = _search(tmp_path / "free", f'search{{formats="{formats}" budget=40}}')
    assert _priced(free)["energy_pj"] > limit


def test_an_area_limit_in_lut_equivalents(tmp_path):
    _, free, _ = _search(tmp_path / "free", 'search{formats="int8,mxint8,mxfp4" budget=40}')
    cap = 0.9 * _priced(free)["area_le"]
    _, searched, notes = _search(tmp_path, f'search{{formats="int8,mxint8,mxfp4" budget=40 area={cap}}}')
    assert _priced(searched)["area_le"] <= cap * (1 + 1e-9)
    assert notes["search_area_le"] == pytest.approx(_priced(searched)["area_le"], rel=1e-12)


def test_a_bytes_limit_holds_and_binds(tmp_path):
    """``bytes=``: the searched tensors' storage (weights + the first calibration batch's activations), exact."""
    _, _, free = _search(tmp_path / "free", 'search{formats="int8,mxint8,mxfp4" budget=40}')
    cap = 0.8 * free["search_bytes"]
    _, _, capped = _search(tmp_path, f'search{{formats="int8,mxint8,mxfp4" budget=40 bytes={cap}}}')
    assert capped["search_bytes"] <= cap * (1 + 1e-9) < free["search_bytes"]
    assert capped["search_budget"].endswith(f"bytes <= {cap:g}")
    with pytest.raises(PipelineError, match="search bytes must be a non-negative number of bytes"):
        _search(tmp_path / "bad", "search{bytes=-5}")
