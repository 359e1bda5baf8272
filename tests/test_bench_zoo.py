"""The pieces of ``bench/zoo.py`` (the trained LM for the W4A8 benchmarks) on its ``tiny`` config.

Oracles: the UTF-8 bytes of the text (tokenizer), uniform logits (perplexity = vocabulary
size), a 5-step training run whose loss must fall, and torch's logits for the ONNX export
run by ONNX Runtime and by the masec interpreter (within 1e-4).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


def _load():
    path = Path(__file__).resolve().parent.parent / "bench" / "zoo.py"
    spec = importlib.util.spec_from_file_location("bench_zoo", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


zoo = _load()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny LM trained for 5 steps in a temporary cache."""
    cache = tmp_path_factory.mktemp("lm")
    d = zoo.train_lm("tiny", steps=5, cache_dir=cache)
    return cache, d


def test_corpus_split_is_deterministic_and_disjoint():
    parts = zoo.corpus()
    assert set(parts["train"]) == set(parts["heldout"]) == {"pydoc_data.topics", "stdlib docstrings"}
    for source in parts["train"]:
        train, held = parts["train"][source], parts["heldout"][source]
        names = [n for n, _ in train + held]
        assert names == sorted(names) and len(set(names)) == len(names)
        assert train[-1][0] < held[0][0]  # the last names by sort order are held out
        assert 0.05 < len(held) / len(names) < 0.15
        assert all(text.strip() for _, text in train + held)
    topics = dict(parts["train"]["pydoc_data.topics"] + parts["heldout"]["pydoc_data.topics"])
    assert "assert" in topics and "while" in topics  # full topic texts, not sentences
    assert sum(len(t) for t in topics.values()) > 300_000


def test_byte_tokenizer_round_trip(tmp_path):
    tok = zoo.byte_tokenizer()
    text = "Größe ✓ of a `list`:\n\tx = [1, 2]  # ok\x00 </s> <s>"
    ids = tok.encode(text, add_special_tokens=False).ids
    assert ids == list(text.encode("utf-8"))  # ids are the bytes, specials in text are not special
    assert tok.decode(ids) == text
    assert tok.get_vocab_size() == zoo.VOCAB == 259
    assert [tok.token_to_id(s) for s in zoo.SPECIALS] == [zoo.BOS, zoo.EOS, zoo.PAD]
    tok.save(str(tmp_path / "tokenizer.json"))
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(text).ids == ids


def test_perplexity_of_uniform_logits_is_the_vocabulary_size():
    batches = [np.zeros((2, 9), np.int64), np.ones((1, 5), np.int64)]
    ppl = zoo.perplexity(lambda ids: np.zeros((*ids.shape, 37), np.float32), batches)
    assert ppl == pytest.approx(37.0, rel=1e-6)


def test_training_five_steps_lowers_the_loss_and_caches(tiny):
    cache, d = tiny
    meta = json.loads((d / "meta.json").read_text())
    losses = [v for _, v in meta["losses"]]
    assert meta["steps"] == 5 and len(losses) == 5
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert math.isfinite(meta["heldout_loss"]) and meta["heldout_ppl"] == pytest.approx(math.exp(meta["heldout_loss"]))
    assert (d / "model.safetensors").exists() and (d / "tokenizer.json").exists()
    stamp = (d / "meta.json").stat().st_mtime
    assert zoo.train_lm("tiny", steps=5, cache_dir=cache) == d  # same spec: reused, not retrained
    assert (d / "meta.json").stat().st_mtime == stamp


def test_heldout_batches(tiny):
    cache, _ = tiny
    batches = zoo.heldout_batches("tiny", seq_len=32, n=3, batch=2, cache_dir=cache)
    assert len(batches) == 3
    assert all(b.shape == (2, 32) and b.dtype == np.int64 for b in batches)
    assert all(int(b.max()) < zoo.VOCAB for b in batches)


def test_onnx_export_matches_torch_in_ort_and_masec(tiny):
    cache, _ = tiny
    check = zoo.check_onnx("tiny", cache_dir=cache, batch=2, seq=24)
    assert check["max_abs_diff_ort"] <= 1e-4
    assert check["max_abs_diff_masec"] <= 1e-4
    import onnx

    graph = onnx.load(check["onnx"]).graph
    assert [i.name for i in graph.input] == ["input_ids"] and [o.name for o in graph.output] == ["logits"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for d in dims)  # batch and sequence are symbolic


def test_unknown_size_is_rejected():
    with pytest.raises(zoo.ZooLMError, match="size must be one of"):
        zoo.train_lm("huge", steps=1)
