"""A model in masec: an xDSL module in the graph/quant dialects plus its weight store.

On disk a model is ``NAME.mlir`` (the IR text, small) beside ``NAME.safetensors``
(the weights); the module's ``graph.weights`` attribute names the weight file
relative to the ``.mlir`` file.  Both are written to temporary files and renamed,
so a failed save never leaves a partial model behind.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.dialects.func import FuncOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError

from .dialects import make_context, print_ir
from .weights import WeightStore

WEIGHTS_ATTR = "graph.weights"
NAME_ATTR = "graph.name"


class ModelError(ValueError):
    """A model file that cannot be read, or IR that does not verify."""


@dataclass
class Model:
    module: ModuleOp
    weights: WeightStore = field(default_factory=WeightStore)

    # ---- structure -------------------------------------------------------------------------
    @property
    def main(self) -> FuncOp:
        for op in self.module.ops:
            if isinstance(op, FuncOp) and op.sym_name.data == "main":
                return op
        raise ModelError("module has no func.func @main")

    @property
    def input_names(self) -> list[str]:
        return _names(self.main.arg_attrs, len(self.main.args), "input")

    @property
    def output_names(self) -> list[str]:
        return _names(self.main.res_attrs, len(self.main.function_type.outputs.data), "output")

    def verify(self) -> None:
        self.module.verify()

    # ---- text ------------------------------------------------------------------------------
    def text(self, generic: bool = False) -> str:
        return print_ir(self.module, generic)

    @classmethod
    def parse(cls, text: str, weights: WeightStore | None = None, source: str = "<string>") -> "Model":
        try:
            module = Parser(make_context(), text, source).parse_module()
        except ParseError as e:
            raise ModelError(f"{source}: cannot parse IR: {str(e).strip().splitlines()[0]}") from None
        model = cls(module, weights or WeightStore())
        try:
            model.verify()
        except Exception as e:  # xDSL raises VerifyException and DiagnosticException
            raise ModelError(f"{source}: {str(e).strip().splitlines()[-1]}") from None
        return model

    # ---- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.mlir) and the weights beside it as ``<stem>.safetensors``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        wpath = path.with_suffix(".safetensors")
        self.module.attributes[WEIGHTS_ATTR] = StringAttr(wpath.name)
        if len(self.weights):
            self.weights.save(wpath)
        else:
            del self.module.attributes[WEIGHTS_ATTR]
        _atomic_write(path, self.text())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Model":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ModelError(f"cannot read {path}: {e.strerror}") from None
        model = cls.parse(text, source=str(path))
        wattr = model.module.attributes.get(WEIGHTS_ATTR)
        if isinstance(wattr, StringAttr):
            wpath = path.parent / wattr.data
            if not wpath.exists():
                raise ModelError(f"{path}: weight file {wpath} named by {WEIGHTS_ATTR} does not exist")
            model.weights = WeightStore.load(wpath)
        return model


def _names(attrs: ArrayAttr | None, n: int, kind: str) -> list[str]:
    names = []
    for i in range(n):
        d = attrs.data[i] if attrs is not None else None
        v = d.data.get(NAME_ATTR) if isinstance(d, DictionaryAttr) else None
        names.append(v.data if isinstance(v, StringAttr) else f"{kind}{i}")
    return names


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
