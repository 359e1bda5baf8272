"""A search's journal: what it measured, appended line by line, so an interrupted search resumes.

A JSON-lines file: a header with the search's fingerprint (a hash of the model IR and weights, the
data and the options that change what a measurement means; not the metric: every measurement keeps
SQNR, cosine, KL and loss, so searches by different metrics share a journal), then the sensitivity table once
measured, then one line per evaluated candidate (its replay pipeline as the key).  A search given
the same file skips what the journal holds: the sensitivity pass is not re-run, and a seeded
evolutionary search regenerates the same candidates and finds their scores here, so it picks up
where it stopped (and a larger ``trials`` extends it).  A journal written for another model or
other options is refused rather than silently mixed in.  A last line cut short by a kill is ignored.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 1


def fingerprint(text: str, weights: Mapping[str, np.ndarray], batches: Sequence[Mapping[str, np.ndarray]],
                **options: Any) -> str:
    """A hash of everything the journal's numbers depend on."""
    h = hashlib.sha256()
    h.update(text.encode())
    for name in sorted(weights):
        a = np.ascontiguousarray(weights[name])
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    for b in batches:
        for name in sorted(b):
            a = np.ascontiguousarray(b[name])
            h.update(f"{name}:{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
    h.update(json.dumps(options, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _dump(x: Any) -> Any:
    """Strict JSON: infinities as strings (a lossless candidate has inf SQNR)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _dump(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_dump(v) for v in x]
    return x


def _load(x: Any) -> Any:
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    if isinstance(x, dict):
        return {k: _load(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_load(v) for v in x]
    return x


class Journal:
    """The journal at ``path`` (created if absent); ``path=None`` keeps everything in memory only."""

    def __init__(self, path: str | Path | None, fingerprint: str):
        self.path = Path(path) if path else None
        self.fingerprint = fingerprint
        self.rows: list[dict] | None = None
        self.evaluations: dict[str, dict] = {}
        self.resumed = 0
        if self.path is None:
            return
        if self.path.exists() and self.path.stat().st_size:
            self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"masec_search_journal": VERSION, "fingerprint": fingerprint})

    def _read(self) -> None:
        assert self.path is not None
        raw = self.path.read_text()
        lines = raw.splitlines()
        try:
            head = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            head = {}
        if head.get("masec_search_journal") != VERSION:
            raise ValueError(f"search resume file {self.path} is not a masec search journal; pass another path")
        if head.get("fingerprint") != self.fingerprint:
            raise ValueError(f"search resume file {self.path} was written for another model, data or options; "
                             "delete it or pass another path")
        for i, line in enumerate(lines[1:], start=2):
            try:
                rec = _load(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines):  # cut short by a kill mid-write: drop it, so appending starts on a fresh line
                    self.path.write_text("".join(ln + "\n" for ln in lines[:-1]))
                    break
                raise ValueError(f"search resume file {self.path} line {i} is not JSON; delete the file to start over") from None
            if i == len(lines) and not raw.endswith("\n"):  # whole but unterminated: terminate it
                self.path.write_text("".join(ln + "\n" for ln in lines))
            if "sensitivity" in rec:
                self.rows = rec["sensitivity"]
            elif "key" in rec:
                self.evaluations[rec["key"]] = rec["metrics"]
        self.resumed = len(self.evaluations)

    def _append(self, record: dict) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(_dump(record)) + "\n")

    def record_rows(self, rows: list[dict]) -> None:
        self.rows = rows
        self._append({"sensitivity": rows})

    def record(self, key: str, metrics: dict) -> None:
        self.evaluations[key] = metrics
        self._append({"key": key, "metrics": metrics})


__all__ = ["Journal", "fingerprint"]
