"""The weight store: named parameters kept outside the IR text.

``graph.weight {name = "..."}`` ops refer to entries here.  Arrays are numpy
views that cost no copy: of memory-mapped safetensors files (our own small
reader maps the file once and slices it) or of the initializer bytes of an ONNX
model.  Passes that rewrite weights put new entries; nothing else is copied.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import warnings
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import ml_dtypes
import numpy as np
import torch

# safetensors dtype names <-> numpy dtypes (ml_dtypes supplies the ones numpy lacks).
_ST_TO_NP: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8), "U16": np.dtype(np.uint16),
    "U32": np.dtype(np.uint32), "U64": np.dtype(np.uint64), "BOOL": np.dtype(np.bool_),
}
_NP_TO_ST = {v: k for k, v in _ST_TO_NP.items()}


class WeightStore(MutableMapping[str, np.ndarray]):
    """A mapping from parameter name to numpy array."""

    def __init__(self, arrays: dict[str, np.ndarray] | None = None, path: str | os.PathLike | None = None):
        self._arrays: dict[str, np.ndarray] = dict(arrays or {})
        self.path = Path(path) if path is not None else None

    # ---- mapping ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"weight {name!r} is not in the weight store ({len(self)} entries)") from None

    def __setitem__(self, name: str, value: np.ndarray | torch.Tensor) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        self._arrays[name] = np.asarray(value)

    def __delitem__(self, name: str) -> None:
        del self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def tensor(self, name: str) -> torch.Tensor:
        """The entry as a torch tensor sharing memory with the store (treat it as read-only)."""
        arr = self[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only mmap views: we never write through them
            if arr.dtype == ml_dtypes.bfloat16:
                return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
            return torch.from_numpy(arr)

    # ---- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write a safetensors file atomically (temp file, then rename)."""
        path = Path(path)
        header: dict[str, object] = {}
        offset = 0
        arrays = []
        for name, arr in self._arrays.items():
            arr = np.ascontiguousarray(arr).reshape(np.shape(arr))  # ascontiguousarray makes 0-d arrays 1-d
            if arr.dtype not in _NP_TO_ST:
                raise TypeError(f"weight {name!r} has dtype {arr.dtype}, which safetensors cannot hold")
            header[name] = {"dtype": _NP_TO_ST[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
            offset += arr.nbytes
            arrays.append(arr)
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * ((-len(blob)) % 8)  # keep the data 8-byte aligned
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(struct.pack("<Q", len(blob)))
                f.write(blob)
                for arr in arrays:
                    f.write(memoryview(arr.reshape(-1).view(np.uint8)))
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WeightStore":
        """Memory-map a safetensors file; entries are read-only views into the mapping."""
        path = Path(path)
        try:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
        except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read weight file {path}: {e}") from None
        header.pop("__metadata__", None)
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if path.stat().st_size > 8 + n else np.zeros(0, np.uint8)
        arrays = {}
        for name, info in header.items():
            if info["dtype"] not in _ST_TO_NP:
                raise ValueError(f"weight file {path}: entry {name!r} has unsupported dtype {info['dtype']}")
            start, end = info["data_offsets"]
            arrays[name] = data[start:end].view(_ST_TO_NP[info["dtype"]]).reshape(info["shape"])
        return cls(arrays, path)
