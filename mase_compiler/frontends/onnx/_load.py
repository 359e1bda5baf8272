"""Reading ONNX files without copying weight bytes.

``onnx.load`` reads the whole file into a bytes object and then parses it into
a protobuf that holds a second copy of every weight; ``numpy_helper.to_array``
makes a third.  Here a small walker of the protobuf wire format reads only the
field headers of the file (with ``pread``), finds the ``raw_data`` of every
large float initializer, and rebuilds the serialized model without those bytes:
the protobuf that onnx parses holds only the graph structure and small tensors.
The weight store gets numpy views of a read-only memory mapping of the file at
the recorded offsets; external data files are memory-mapped the same way.  The
weights are then in memory once, as clean file pages that the OS can drop and
re-read, and only once something reads them.
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
from google.protobuf.message import DecodeError

from ..errors import FrontendError

TP = onnx.TensorProto
NP_DTYPES: dict[int, np.dtype] = {
    TP.FLOAT: np.dtype(np.float32), TP.DOUBLE: np.dtype(np.float64), TP.FLOAT16: np.dtype(np.float16),
    TP.BFLOAT16: np.dtype(ml_dtypes.bfloat16), TP.FLOAT8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    TP.FLOAT8E5M2: np.dtype(ml_dtypes.float8_e5m2), TP.INT8: np.dtype(np.int8), TP.INT16: np.dtype(np.int16),
    TP.INT32: np.dtype(np.int32), TP.INT64: np.dtype(np.int64), TP.UINT8: np.dtype(np.uint8),
    TP.UINT16: np.dtype(np.uint16), TP.UINT32: np.dtype(np.uint32), TP.UINT64: np.dtype(np.uint64),
    TP.BOOL: np.dtype(np.bool_),
}
FLOAT_TYPES = {TP.FLOAT, TP.DOUBLE, TP.FLOAT16, TP.BFLOAT16, TP.FLOAT8E4M3FN, TP.FLOAT8E5M2}
# Raw data of at least this many bytes stays in the file mapping (float tensors; any tensor from BIG_BYTES).
# Smaller tensors stay in the protobuf, where shape inference can read their values.
STRIP_BYTES = 1024
BIG_BYTES = 1 << 16

# Field numbers of the protobuf messages we walk (checked against onnx's descriptors at import).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_RAW = 1, 2, 8, 9
assert onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number == _MODEL_GRAPH
assert onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number == _GRAPH_INITIALIZER
assert [TP.DESCRIPTOR.fields_by_name[f].number for f in ("dims", "data_type", "name", "raw_data")] == [1, 2, 8, 9]


def dtype_name(data_type: int) -> str:
    try:
        return TP.DataType.Name(data_type)
    except ValueError:
        return str(data_type)


@dataclass
class Loaded:
    """An ONNX model whose large weights live outside the protobuf."""

    model: onnx.ModelProto
    base_dir: Path | None
    # name -> (offset, length) of raw_data left in ``buffer`` (a mapping of the .onnx file)
    raw: dict[str, tuple[int, int]] = field(default_factory=dict)
    buffer: mmap.mmap | None = None
    source: onnx.ModelProto | None = None  # a caller's ModelProto whose initializers hold the data
    _files: dict[Path, np.ndarray] = field(default_factory=dict)

    def initializer_arrays(self) -> dict[str, np.ndarray]:
        """name -> data of every initializer (views of the file or of the caller's protobuf where possible)."""
        graph = (self.source or self.model).graph
        return {t.name: self.initializer_array(t) for t in graph.initializer}

    def initializer_array(self, t: onnx.TensorProto) -> np.ndarray:
        """The data of initializer ``t`` as a numpy array (a view wherever possible)."""
        dtype = NP_DTYPES.get(t.data_type)
        if dtype is None:
            raise FrontendError(f"initializer '{t.name}' has element type {dtype_name(t.data_type)}, which masec does not support")
        shape = tuple(t.dims)
        count = math.prod(shape)
        if t.name in self.raw:
            offset, length = self.raw[t.name]
            if length != count * dtype.itemsize:
                raise FrontendError(f"initializer '{t.name}' holds {length} bytes of data, but shape {list(shape)} of {dtype_name(t.data_type)} needs {count * dtype.itemsize}")
            return np.frombuffer(self.buffer, dtype, count, offset).reshape(shape)
        if t.data_location == TP.EXTERNAL:
            return self._external(t, dtype, shape, count)
        if self.source is not None and t.HasField("raw_data"):
            # A caller's ModelProto: one copy of the bytes (protobuf hands out a new bytes object).
            data = t.raw_data
            if len(data) != count * dtype.itemsize:
                raise FrontendError(f"initializer '{t.name}' holds {len(data)} bytes of data, but shape {list(shape)} of {dtype_name(t.data_type)} needs {count * dtype.itemsize}")
            return np.frombuffer(data, dtype, count).reshape(shape)
        try:
            arr = onnx.numpy_helper.to_array(t)
        except Exception as e:
            raise FrontendError(f"initializer '{t.name}' cannot be read: {e}") from None
        if arr.size != count:
            raise FrontendError(f"initializer '{t.name}' holds {arr.size} values, but its shape {list(shape)} needs {count}")
        return arr.astype(dtype, copy=False).reshape(shape)

    def _external(self, t: onnx.TensorProto, dtype: np.dtype, shape: tuple[int, ...], count: int) -> np.ndarray:
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if not location:
            raise FrontendError(f"initializer '{t.name}' has external data without a location")
        if self.base_dir is None:
            raise FrontendError(f"initializer '{t.name}' has external data in '{location}', but the model was given as a ModelProto without base_dir")
        rel = Path(location)
        if rel.is_absolute() or ".." in rel.parts:
            raise FrontendError(f"initializer '{t.name}': external data location must be a path inside the model's directory, not '{location}'")
        path = self.base_dir / rel
        if path not in self._files:
            if not path.is_file():
                raise FrontendError(f"initializer '{t.name}': external data file '{location}' does not exist")
            size = path.stat().st_size
            self._files[path] = np.memmap(path, np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        data = self._files[path]
        offset = int(info.get("offset", 0))
        nbytes = count * dtype.itemsize
        length = int(info.get("length", nbytes))
        if length != nbytes or offset + nbytes > data.size:
            raise FrontendError(f"initializer '{t.name}': external data ({length} bytes at offset {offset} of '{location}', "
                                f"{data.size} bytes long) does not hold shape {list(shape)} of {dtype_name(t.data_type)}")
        return np.asarray(data[offset:offset + nbytes]).view(dtype).reshape(shape)


# ---- sources --------------------------------------------------------------------------------------
def load(src: str | os.PathLike | onnx.ModelProto, base_dir: str | os.PathLike | None = None) -> Loaded:
    if isinstance(src, onnx.ModelProto):
        return Loaded(_strip(src), Path(base_dir) if base_dir is not None else None, source=src)
    path = Path(src)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise FrontendError(f"cannot read {path}: {e.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise FrontendError(f"{path} is empty, not an ONNX model")
        try:
            data, raw = _rebuild(_File(f.fileno(), size))
        except _Corrupt as e:
            raise FrontendError(f"{path} is not a valid ONNX file (truncated or corrupt: {e})") from None
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if raw else None
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError) as e:
        raise FrontendError(f"{path} is not a valid ONNX file (truncated or corrupt: {e})") from None
    return Loaded(model, Path(base_dir) if base_dir is not None else path.parent, raw, buf)


def _strip(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large float initializers have shape and type but no data (for shape inference)."""
    out = onnx.ModelProto()
    for desc, value in model.ListFields():
        if desc.name != "graph":
            if desc.is_repeated:
                getattr(out, desc.name).extend(value)
            elif desc.message_type is not None:
                getattr(out, desc.name).CopyFrom(value)
            else:
                setattr(out, desc.name, value)
    g, h = model.graph, out.graph
    for desc, value in g.ListFields():
        if desc.name == "initializer":
            continue
        if desc.is_repeated:
            getattr(h, desc.name).extend(value)
        else:
            setattr(h, desc.name, value)
    for t in g.initializer:
        dtype = NP_DTYPES.get(t.data_type)
        nbytes = math.prod(t.dims) * (dtype.itemsize if dtype is not None else 1)
        if t.data_location != TP.EXTERNAL and nbytes >= STRIP_BYTES and (t.data_type in FLOAT_TYPES or nbytes >= BIG_BYTES):
            h.initializer.add(name=t.name, data_type=t.data_type, dims=t.dims)
        else:
            h.initializer.append(t)
    return out


# ---- protobuf wire format -----------------------------------------------------------------------
class _Corrupt(Exception):
    pass


class _File:
    """Byte access to a file by ``pread`` through a small window.

    The walker reads only field headers; reading them through a memory mapping
    would map whole page-cache folios of weight data into the process (on
    kernels with large folios, megabytes per touch), so it reads with pread.
    """

    WINDOW = 4096

    def __init__(self, fd: int, size: int):
        self.fd, self.size = fd, size
        self.lo, self.chunk = 0, b""

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k: int | slice) -> int | bytes:
        if isinstance(k, slice):
            start, stop = max(k.start or 0, 0), min(k.stop if k.stop is not None else self.size, self.size)
            return os.pread(self.fd, max(stop - start, 0), start) if stop > start else b""
        if not self.lo <= k < self.lo + len(self.chunk):
            if not 0 <= k < self.size:
                raise IndexError(k)
            self.lo, self.chunk = k, os.pread(self.fd, self.WINDOW, k)
        return self.chunk[k - self.lo]


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    try:
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result, pos
            shift += 7
            if shift > 63:
                raise _Corrupt(f"bad varint at byte {pos}")
    except IndexError:
        raise _Corrupt("file ends inside a field") from None


def _encode_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(number, wire type, field start, key end, value start, value end) of each field in ``buf[start:end]``."""
    pos = start
    while pos < end:
        fstart = pos
        key, pos = _varint(buf, pos)
        kend = pos
        num, wt = key >> 3, key & 7
        if wt == 0:
            vs = pos
            _, pos = _varint(buf, pos)
        elif wt == 1:
            vs, pos = pos, pos + 8
        elif wt == 2:
            n, vs = _varint(buf, pos)
            pos = vs + n
        elif wt == 5:
            vs, pos = pos, pos + 4
        else:
            raise _Corrupt(f"unknown wire type {wt} at byte {fstart}")
        if num == 0 or pos > end:
            raise _Corrupt(f"field {num} at byte {fstart} runs past the end of its message" if num else f"field number 0 at byte {fstart}")
        yield num, wt, fstart, kend, vs, pos


def _rebuild(buf: _File) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The serialized model without the raw data of large initializers, and where that data lies in ``buf``."""
    raw: dict[str, tuple[int, int]] = {}
    pieces: list[bytes] = []
    for num, wt, fs, ke, vs, ve in _fields(buf, 0, len(buf)):
        if num == _MODEL_GRAPH and wt == 2:
            graph = _rebuild_graph(buf, vs, ve, raw)
            pieces += [buf[fs:ke], _encode_varint(len(graph)), graph]
        else:
            pieces.append(buf[fs:ve])
    return b"".join(pieces), raw


def _rebuild_graph(buf, start: int, end: int, raw: dict[str, tuple[int, int]]) -> bytes:
    pieces: list[bytes] = []
    for num, wt, fs, ke, vs, ve in _fields(buf, start, end):
        if num == _GRAPH_INITIALIZER and wt == 2 and ve - vs >= STRIP_BYTES:
            t = _strip_tensor(buf, vs, ve, raw)
            if t is not None:
                pieces += [buf[fs:ke], _encode_varint(len(t)), t]
                continue
        pieces.append(buf[fs:ve])
    return b"".join(pieces)


def _strip_tensor(buf, start: int, end: int, raw: dict[str, tuple[int, int]]) -> bytes | None:
    """The TensorProto at ``buf[start:end]`` without raw_data if it is worth leaving in the file, else None."""
    data_type = 0
    name = None
    raw_at = None
    keep: list[tuple[int, int]] = []
    for num, wt, fs, _, vs, ve in _fields(buf, start, end):
        if num == _TENSOR_RAW and wt == 2:
            raw_at = (vs, ve - vs)
            continue
        if num == _TENSOR_TYPE and wt == 0:
            data_type, _ = _varint(buf, vs)
        elif num == _TENSOR_NAME and wt == 2:
            name = buf[vs:ve].decode("utf-8", "replace")
        keep.append((fs, ve))
    if raw_at is None or name is None or raw_at[1] < STRIP_BYTES or name in raw:
        return None
    if data_type not in FLOAT_TYPES and raw_at[1] < BIG_BYTES:
        return None
    raw[name] = raw_at
    return b"".join(buf[a:b] for a, b in keep)
