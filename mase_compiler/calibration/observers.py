"""Observers: running statistics of one activation over many calibration batches.

Every observer sees the tensor of each batch through :meth:`Observer.update` and
reports, through :meth:`Observer.result`, the calibrated range ``lo``/``hi`` that a
static activation scale is computed from, plus the raw ``min``/``max``, the
per-channel absolute maximum (last axis), per-token absolute-maximum statistics
(one token = one row over the last axis) and how many values it ignored.

Non-finite values and values with ``|x| >= 1e30`` are ignored and counted in
``dropped``: additive attention masks hold ``-inf`` or ``-3.4e38``, and a range that
includes them is useless (ONNX Runtime's entropy and percentile calibraters crash on
exactly that MiniLM tensor, see ``/work/shared/FACTS.md``).

The histogram observers (percentile, MSE, entropy) keep a fixed number of bins over
``[0, range]`` of ``|x|``; when a batch exceeds the range, the range grows by an
integer factor ``k`` and every ``k`` old bins merge into one, so the histogram stays
exact and memory is O(bins), not O(data) (like ONNX Runtime's
``HistogramCalibrater``, which instead appends bins).
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import numpy as np
import torch

from ..numerics import Format, IntFormat, MinifloatFormat, parse

MASK_THRESHOLD = 1e30
"""Values with ``|x| >= MASK_THRESHOLD`` are mask values, ignored like inf and NaN."""

DEFAULT_BINS = 2048
MAX_CHANNELS = 4096
"""``channel_absmax`` is reported only for tensors with at most this many channels."""


class Observer(abc.ABC):
    """Base of every observer: raw min/max, dropped count, channel and token statistics."""

    method: ClassVar[str]
    # Whether :meth:`_observe` needs the values (min/max alone do not).
    needs_values: ClassVar[bool] = True

    def __init__(self) -> None:
        self.batches = 0
        self.dropped = 0
        self.count = 0  # finite values seen
        self._min = math.inf
        self._max = -math.inf
        self._channel: torch.Tensor | None = None
        self._channel_ok = True
        self._tokens: list[torch.Tensor] = []

    # ---- data ------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add one batch (any shape, any float dtype)."""
        x = x.detach().to(torch.float32)
        absx = x.abs()
        self.batches += 1
        if not x.numel():
            return
        lo, hi = (float(v) for v in torch.aminmax(x))
        if math.isfinite(lo) and math.isfinite(hi) and max(-lo, hi) < MASK_THRESHOLD:
            # The common case: every value counts, no masking copies (NaN makes aminmax NaN).
            n_keep, kept = x.numel(), absx.reshape(-1)
        else:
            keep = torch.isfinite(x) & (absx < MASK_THRESHOLD)
            n_keep = int(keep.sum())
            absx = torch.where(keep, absx, torch.zeros((), dtype=absx.dtype))
            kept = absx[keep]
            if n_keep:
                lo, hi = (float(v) for v in torch.aminmax(x[keep]))
        self.dropped += x.numel() - n_keep
        self.count += n_keep
        if n_keep:
            self._min = min(self._min, lo)
            self._max = max(self._max, hi)
        if x.dim() >= 1:
            rows = absx.reshape(-1, x.shape[-1])
            self._update_channel(rows.amax(dim=0))
            self._tokens.append(rows.amax(dim=1).cpu())
        if n_keep and self.needs_values:
            self._observe(kept)

    def _update_channel(self, amax: torch.Tensor) -> None:
        if not self._channel_ok:
            return
        if self._channel is None:
            self._channel = amax.cpu()
        elif self._channel.shape != amax.shape:  # a dynamic last axis: no per-channel statistic
            self._channel_ok = False
            self._channel = None
        else:
            self._channel = torch.maximum(self._channel, amax.cpu())

    @abc.abstractmethod
    def _observe(self, absvals: torch.Tensor) -> None:
        """Accumulate the finite absolute values of one batch (non-empty, 1-D)."""

    @abc.abstractmethod
    def _threshold(self) -> tuple[float, float]:
        """The calibrated range before clamping to the raw [min, max]."""

    # ---- results ---------------------------------------------------------------------------
    @property
    def min(self) -> float:
        return self._min if self.count else 0.0

    @property
    def max(self) -> float:
        return self._max if self.count else 0.0

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max))

    def result(self) -> dict[str, Any]:
        """``method``, ``lo``, ``hi``, ``min``, ``max``, ``batches``, ``dropped``, the per-token
        absmax p50/p99/max and ``channel_absmax`` (a list; absent for a dynamic or too long last axis)."""
        if self.count:
            lo, hi = self._threshold()
            lo, hi = max(lo, self.min), min(hi, self.max)  # a clip range never exceeds the data
            lo = min(lo, hi)  # all-positive data clipped below its minimum: the range is the point hi
        else:
            lo = hi = 0.0
        out: dict[str, Any] = {
            "method": self.method,
            "lo": float(lo),
            "hi": float(hi),
            "min": float(self.min),
            "max": float(self.max),
        }
        if self._channel is not None and self._channel.numel() <= MAX_CHANNELS:
            out["channel_absmax"] = [float(v) for v in self._channel.to(torch.float32)]
        if self._tokens:
            t = torch.cat(self._tokens).double().numpy()
            out["token_absmax_p50"] = float(np.percentile(t, 50))
            out["token_absmax_p99"] = float(np.percentile(t, 99))
            out["token_absmax_max"] = float(t.max())
        out["batches"] = self.batches
        out["dropped"] = self.dropped
        return out


class MinMaxObserver(Observer):
    """The range is the raw min/max (FP8-BERT's "simple max" calibration)."""

    method = "minmax"
    needs_values = False

    def _observe(self, absvals: torch.Tensor) -> None:
        pass

    def _threshold(self) -> tuple[float, float]:
        return self.min, self.max


class HistogramObserver(Observer):
    """A histogram of ``|x|`` with a fixed number of bins over ``[0, self.range]``."""

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        super().__init__()
        if bins < 2:
            raise ValueError(f"bins must be >= 2, not {bins}")
        self.bins = bins
        self.hist = torch.zeros(bins, dtype=torch.float64)
        self.range = 0.0

    def _observe(self, absvals: torch.Tensor) -> None:
        amax = float(absvals.max())
        if amax > self.range:
            self._grow(amax)
        if self.range == 0.0:  # all zeros so far
            self.hist[0] += absvals.numel()
            return
        h = torch.histc(absvals, bins=self.bins, min=0.0, max=self.range)
        self.hist += h.to(torch.float64).cpu()

    def _grow(self, amax: float) -> None:
        if self.range == 0.0:
            self.range = amax  # zeros seen so far stay in bin 0
            return
        k = math.ceil(amax / self.range)
        while self.range * k < amax:  # float rounding
            k += 1
        pad = (-self.bins) % k
        merged = torch.cat([self.hist, self.hist.new_zeros(pad)]).view(-1, k).sum(dim=1)
        self.hist = torch.cat([merged, merged.new_zeros(self.bins - merged.numel())])
        self.range *= k

    @property
    def edges(self) -> np.ndarray:
        """Bin edges (``bins + 1`` of them) in float64."""
        return np.linspace(0.0, self.range, self.bins + 1)

    @property
    def bin_width(self) -> float:
        return self.range / self.bins

    def _symmetric(self, t: float) -> tuple[float, float]:
        return -t, t


class PercentileObserver(HistogramObserver):
    """The range is the ``percentile``-th percentile of ``|x|`` (interpolated within its bin)."""

    method = "percentile"

    def __init__(self, percentile: float = 99.99, bins: int = DEFAULT_BINS) -> None:
        super().__init__(bins)
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], not {percentile}")
        self.percentile = percentile

    def _threshold(self) -> tuple[float, float]:
        return self._symmetric(self.abs_percentile())

    def abs_percentile(self) -> float:
        hist = self.hist.numpy()
        cdf = np.cumsum(hist) / hist.sum()
        q = self.percentile / 100.0
        i = min(int(np.searchsorted(cdf, q)), self.bins - 1)
        below = cdf[i - 1] if i else 0.0
        frac = (q - below) / (cdf[i] - below) if cdf[i] > below else 1.0
        return float((i + min(max(frac, 0.0), 1.0)) * self.bin_width)


def grid_max(fmt: Format) -> float:
    """The largest grid magnitude of a scaled format: a clip threshold ``t`` means scale ``t / grid_max``.

    An asymmetric integer grid is fitted to the data's range, not to ``[-t, t]``: all its levels
    (``gmax - gmin``) span the magnitudes, so ``int8:asym`` and ``uint8`` search alike."""
    if isinstance(fmt, MinifloatFormat):
        return float(fmt.max_value)
    if hasattr(fmt, "grid_bounds") and not (isinstance(fmt, IntFormat) and fmt.fixed_scale() is not None):
        lo, hi = fmt.grid_bounds()
        return float(hi - lo) if _asymmetric(fmt) else float(hi)
    raise ValueError(f"mse and entropy calibration need an integer or minifloat format, not {str(fmt)!r}")


def _format(fmt: Format | str) -> Format:
    f = parse(fmt) if isinstance(fmt, str) else fmt
    grid_max(f)  # validate
    return f


def _asymmetric(fmt: Format) -> bool:
    return isinstance(fmt, IntFormat) and not fmt.symmetric


def _grid(fmt: Format, y: torch.Tensor) -> torch.Tensor:
    """``y`` (magnitudes already divided by the scale) rounded onto the format's grid, saturating;
    an asymmetric grid is shifted by its zero point so that its whole span covers them."""
    if isinstance(fmt, MinifloatFormat):
        return fmt.quantize(y)
    if _asymmetric(fmt):
        return fmt.quantize(y, torch.tensor(1.0), zero_point=int(fmt.grid_bounds()[0]))
    return fmt.quantize(y, torch.tensor(1.0))


class MSEObserver(HistogramObserver):
    """The clip threshold that minimizes the expected squared quantization error in ``format``.

    Each candidate threshold ``t`` (every bin edge) sets the scale ``t / grid_max``; the
    error of the histogram is ``sum(count_j * (q(c_j) - c_j)^2)`` over the bin centers
    ``c_j`` with ``q`` the format's own ``quantize`` (so clipping and rounding both count).
    """

    method = "mse"

    def __init__(self, format: Format | str = "int8", bins: int = DEFAULT_BINS) -> None:
        super().__init__(bins)
        self.format = _format(format)

    def _threshold(self) -> tuple[float, float]:
        return self._symmetric(self.best_threshold())

    def errors(self, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Candidate thresholds (bin edges ``indices``, default all of 1..bins) and the expected
        squared error of each."""
        if indices is None:
            indices = np.arange(1, self.bins + 1)
        edges = torch.from_numpy(self.edges)
        used = int(np.flatnonzero(self.hist.numpy()).max(initial=0)) + 1  # bins past the data add no error
        centers = ((edges[:used] + edges[1 : used + 1]) / 2).to(torch.float32)
        cand = edges[torch.from_numpy(np.asarray(indices))]
        gmax = grid_max(self.format)
        hist = self.hist[:used].to(torch.float64)
        errs = torch.empty(len(cand), dtype=torch.float64)
        step = max(1, (1 << 21) // used)  # about 2M elements at a time
        for s in range(0, len(cand), step):
            scale = (cand[s : s + step] / gmax).to(torch.float32)[:, None]
            q = _grid(self.format, centers[None, :] / scale) * scale
            errs[s : s + step] = ((q - centers[None, :]).double() ** 2 * hist[None, :]).sum(dim=1)
        return cand.numpy(), errs.numpy()

    def best_threshold(self) -> float:
        """Searched on every ``stride``-th edge (at most 256), then on every edge around the best."""
        if self.range == 0.0:
            return 0.0
        stride = max(1, self.bins // 256)
        coarse = np.arange(stride, self.bins + 1, stride)
        _, errs = self.errors(coarse)
        best = int(coarse[int(np.argmin(errs))])
        fine = np.arange(max(1, best - stride + 1), min(self.bins, best + stride - 1) + 1)
        cand, errs = self.errors(fine)
        return float(cand[int(np.argmin(errs))])


class EntropyObserver(HistogramObserver):
    """The clip threshold that minimizes KL(P || Q) (TensorRT's entropy calibration).

    For each candidate bin edge ``i >= start`` (TensorRT: 128 for int8), P is the histogram
    of ``|x|`` below it with the clipped tail added to its last bin, Q spreads each
    quantization level's count evenly over its non-empty bins.  Integer formats group
    the ``i`` bins into ``2^(bits-1)`` equal levels as TensorRT and ONNX Runtime do; other
    formats (minifloats) group the bins whose centers round to the same grid value.
    Both distributions are smoothed as ONNX Runtime does (``eps = 1e-4``) before the KL.
    The last minimum wins, as in TensorRT.
    """

    method = "entropy"
    EPS = 1e-4

    def __init__(self, format: Format | str = "int8", bins: int = DEFAULT_BINS) -> None:
        super().__init__(bins)
        self.format = _format(format)

    def _threshold(self) -> tuple[float, float]:
        return self._symmetric(self.best_threshold())

    def _levels(self) -> int | None:
        f = self.format
        if isinstance(f, IntFormat):
            return int(grid_max(f)) + 1  # magnitude levels: 128 for int8, 256 for uint8 and int8:asym
        return None

    def _groups(self, sizes: np.ndarray, ncol: int) -> np.ndarray:
        """Level index of every bin j < i for each candidate size i (rows); -1 beyond i."""
        j = np.arange(ncol)[None, :]
        i = sizes[:, None]
        levels = self._levels()
        if levels is not None:
            g = (j * levels) // i
        else:
            centers = torch.from_numpy((j + 0.5).astype(np.float32))
            scale = torch.from_numpy((i / grid_max(self.format)).astype(np.float32))
            q = _grid(self.format, centers / scale).numpy()
            g = np.concatenate([np.zeros((len(sizes), 1), np.int64), np.cumsum(np.diff(q, axis=1) != 0, axis=1)], axis=1)
        return np.where(j < i, g, -1)

    def divergences(self) -> tuple[np.ndarray, np.ndarray]:
        """Candidate thresholds and KL(P || Q) of each."""
        hist = self.hist.numpy()
        n = self.bins
        levels = self._levels()
        start = min(levels if levels is not None else 128, n)
        sizes = np.arange(start, n + 1)
        cand = sizes * self.bin_width
        kl = np.empty(len(sizes))
        chunk = max(1, (1 << 20) // n)
        for s in range(0, len(sizes), chunk):
            kl[s : s + chunk] = self._kl(hist, sizes[s : s + chunk])
        return cand, kl

    def _kl(self, hist: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        n = int(sizes.max())  # bins past the largest candidate lie outside every row
        rows = len(sizes)
        g = self._groups(sizes, n)
        inside = g >= 0
        h = np.where(inside, hist[None, :n], 0.0)
        nz = (h > 0).astype(np.float64)
        width = n + 1
        flat = (g + np.arange(rows)[:, None] * width).ravel()
        flat = np.where(inside.ravel(), flat, 0)
        sums = np.bincount(flat, weights=h.ravel(), minlength=rows * width).reshape(rows, width)
        cnts = np.bincount(flat, weights=nz.ravel(), minlength=rows * width).reshape(rows, width)
        gi = np.where(inside, g, 0)
        per = np.take_along_axis(sums, gi, 1) / np.maximum(np.take_along_axis(cnts, gi, 1), 1)
        q = np.where(nz > 0, per, 0.0)
        p = h.copy()
        tail = hist.sum() - h.sum(axis=1)
        p[np.arange(rows), sizes - 1] += tail
        return _kl_rows(_smooth(p, inside, self.EPS), _smooth(q, inside, self.EPS), inside)

    def best_threshold(self) -> float:
        if self.range == 0.0:
            return 0.0
        cand, kl = self.divergences()
        last = len(kl) - 1 - int(np.argmin(kl[::-1]))
        return float(cand[last])


def _smooth(p: np.ndarray, inside: np.ndarray, eps: float) -> np.ndarray:
    """ONNX Runtime's ``smooth_distribution`` per row over the bins ``inside``: zeros get
    ``eps``, taken evenly from the non-zero bins."""
    zeros = (p == 0) & inside
    n_zero = zeros.sum(axis=1, keepdims=True)
    n_nonzero = (inside & ~zeros).sum(axis=1, keepdims=True)
    eps1 = eps * n_zero / np.maximum(n_nonzero, 1)
    out = p + eps * zeros - eps1 * ((p != 0) & inside)
    return np.where(inside, out, 0.0)


def _kl_rows(p: np.ndarray, q: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """KL divergence of each row's normalized p and q (as ``scipy.stats.entropy``)."""
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(inside & (p > 0), p * np.log(p / q), 0.0)
    kl = terms.sum(axis=1)
    return np.where(np.isfinite(kl), kl, np.inf)


METHODS = ("minmax", "percentile", "mse", "entropy")
ALIASES = {"kl": "entropy"}


def make_observer(method: str, percentile: float = 99.99, format: Format | str = "int8",
                  bins: int = DEFAULT_BINS) -> Observer:
    """A fresh observer for ``method`` (``kl`` is an alias of ``entropy``)."""
    method = ALIASES.get(method, method)
    if method == "minmax":
        return MinMaxObserver()
    if method == "percentile":
        return PercentileObserver(percentile, bins)
    if method == "mse":
        return MSEObserver(format, bins)
    if method == "entropy":
        return EntropyObserver(format, bins)
    raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")
