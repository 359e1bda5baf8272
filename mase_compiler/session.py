"""What a pass may need beyond the IR: the model's weights and the calibration data.

xDSL passes see ``apply(ctx, module)`` only.  :func:`mase_compiler.pipeline.run_pipeline`
opens a :class:`Session` around the passes it runs; a pass that reads or writes
weights, or runs the model on calibration data, asks for it with :func:`current`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .model import Model


@dataclass
class Session:
    """The model being compiled and the data passes may run it on."""

    model: Model
    # Calibration batches, each keyed by the model's input names.
    calibration: list[dict[str, np.ndarray]] | None = None
    # Where the calibration data came from (shown in reports), e.g. "calib.npz" or "synthetic".
    calibration_source: str = ""
    # Show progress bars (the CLI turns them on; tests and the API leave them off).
    progress: bool = False
    # Facts a pass reports about its run (merged into the pass's record by the pipeline).
    notes: dict[str, Any] = field(default_factory=dict)
    # Task loss for sensitivity / search: loss(outputs, batch) -> float, when the user has one.
    loss: Callable[[Mapping[str, Any], Mapping[str, Any]], float] | None = None


_CURRENT: ContextVar[Session | None] = ContextVar("masec_session", default=None)


class NoSessionError(RuntimeError):
    """A pass that needs the model's weights or data was run outside a masec pipeline."""


def current(pass_name: str) -> Session:
    """The open session; ``pass_name`` names the asking pass in the error when there is none."""
    s = _CURRENT.get()
    if s is None:
        raise NoSessionError(
            f"pass {pass_name!r} needs the model's weights and data: run it through masec (masec opt/compile, "
            "or mase_compiler.driver.opt), not a bare xDSL pass manager"
        )
    return s


@contextlib.contextmanager
def open_session(session: Session) -> Iterator[Session]:
    token = _CURRENT.set(session)
    try:
        yield session
    finally:
        _CURRENT.reset(token)


__all__ = ["NoSessionError", "Session", "current", "open_session"]
