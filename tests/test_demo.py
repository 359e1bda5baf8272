"""`masec demo` (the README's main job) and the sentence source it calibrates on."""

from __future__ import annotations

import json

from mase_compiler.cli import main
from mase_compiler.sentences import sentences, splits


def test_sentences_are_prose_deterministic_and_splits_disjoint():
    pool = sentences()
    assert len(pool) > 1000 and len(set(pool)) == len(pool)
    assert all(8 <= len(s.split()) <= 60 for s in pool)
    a, b = splits(10, 20, 5, seed=0), splits(10, 20, 5, seed=0)
    assert a == b
    assert not set(a["calib"]) & set(a["corpus"]) and not set(a["corpus"]) & set(a["queries"])


def test_demo_compiles_runs_and_reports(tmp_path, capsys, zoo_dir, monkeypatch):
    monkeypatch.setenv("MASEC_ZOO_DIR", str(zoo_dir))
    assert main(["demo", "--presets", "mxint8,mxfp4", "-o", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = {r["preset"]: r for r in summary["rows"]}
    # Real weights, real sentences: 8-bit MX keeps the embeddings, 4-bit loses visibly more.
    assert rows["mxint8"]["embedding_cosine"] > 0.99 > rows["mxfp4"]["embedding_cosine"] > 0.7
    assert rows["mxfp4"]["of_fp32"] < rows["mxint8"]["of_fp32"] < 1
    assert len(summary["report"]["layers"]) == 48  # every matmul of the six layers
    assert (tmp_path / "minilm-mxint8" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
