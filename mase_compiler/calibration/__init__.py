"""Calibration: observers of activation ranges, calibration data, and statistics on the IR.

The ``calibrate`` pass (``passes/calibrate.py``) runs the model on the data that
:func:`load_calibration` returns, feeds each activation to an observer and stores
the observer's result on the IR with :func:`set_stats`.
"""

from .data import CalibrationError, load_calibration
from .observers import (
    DEFAULT_BINS,
    MASK_THRESHOLD,
    METHODS,
    EntropyObserver,
    HistogramObserver,
    MinMaxObserver,
    MSEObserver,
    Observer,
    PercentileObserver,
    make_observer,
)
from .stats import STATS_ATTR, calibrated_values, get_stats, set_stats, stats_table

__all__ = [
    "DEFAULT_BINS",
    "MASK_THRESHOLD",
    "METHODS",
    "STATS_ATTR",
    "CalibrationError",
    "EntropyObserver",
    "HistogramObserver",
    "MSEObserver",
    "MinMaxObserver",
    "Observer",
    "PercentileObserver",
    "calibrated_values",
    "get_stats",
    "load_calibration",
    "make_observer",
    "set_stats",
    "stats_table",
]
