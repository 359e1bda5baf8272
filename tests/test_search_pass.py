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
