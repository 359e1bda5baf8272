"""Small models for the hardware backends: an MLP, a CNN block and a transformer encoder layer.

``write(name, folder)`` exports the model to ``folder/model.onnx`` (torch's ONNX exporter, batch
axis symbolic) and writes ``folder/calib.npz`` (calibration inputs) and ``folder/test.npz`` (held-out
inputs), all from a fixed seed; ``examples/generated/hw/<name>`` is where ``make`` and the tests put
them (git-ignored).  The weights are random but shaped like real layers: the encoder is a BERT
post-LN layer (attention with two heads, GELU MLP, two layer norms) on 8 tokens of width 32, the CNN
block a ResNet basic block after a stem convolution.  ``bench/hardware.py`` also builds the
encoder at all-MiniLM-L6-v2's width from its real first layer.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

NAMES = ("mlp", "cnn", "encoder")
SEED = 0
DEFAULT_DIR = Path("examples/generated/hw")


def _modules():
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    class CNNBlock(nn.Module):
        """stem conv 3x3 + relu, then a ResNet basic block (conv-relu-conv + identity, relu) on 8x8 maps."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            return torch.relu(self.conv2(torch.relu(self.conv1(x))) + x)

    class EncoderLayer(nn.Module):
        """BERT's layer: post-LN self-attention and GELU MLP (no mask: every token attends to every token)."""

        def __init__(self, d: int = 32, heads: int = 2, ffn: int = 64, eps: float = 1e-12) -> None:
            super().__init__()
            self.h, self.dh = heads, d // heads
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
            self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)

        def _heads(self, t):
            b, s, _ = t.shape
            return t.reshape(b, s, self.h, self.dh).transpose(1, 2)

        def forward(self, x):
            b, s, d = x.shape
            q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.dh), dim=-1)
            a = (p @ v).transpose(1, 2).reshape(b, s, d)
            x = self.ln1(x + self.o(a))
            return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))

    return {"mlp": MLP, "cnn": CNNBlock, "encoder": EncoderLayer}


def build(name: str):
    """The torch module of example ``name`` (eval mode, seeded weights)."""
    import torch

    if name not in NAMES:
        raise ValueError(f"hardware example must be one of {', '.join(NAMES)}, not {name!r}")
    torch.manual_seed(SEED)
    return _modules()[name]().eval()


def item_shape(name: str) -> tuple[int, ...]:
    return {"mlp": (16,), "cnn": (3, 8, 8), "encoder": (8, 32)}[name]


def inputs(name: str, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *item_shape(name)), dtype=np.float32)


def export_onnx(module, example: np.ndarray, path: Path, input_name: str = "x") -> None:
    """Export ``module`` to ``path`` (batch axis symbolic); written to a temp file, then renamed."""
    import logging

    import torch
    from torch.export import Dim

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" chatter
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad():
            prog = torch.onnx.export(module, (torch.from_numpy(example),), dynamo=True, opset_version=18,
                                     input_names=[input_name], output_names=["y"],
                                     dynamic_shapes=({0: Dim("batch", min=1, max=4096)},), optimize=True, verbose=False)
            prog.save(tmp, external_data=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(name: str, folder: str | os.PathLike | None = None, force: bool = False) -> Path:
    """``folder/model.onnx``, ``folder/calib.npz`` (64 inputs) and ``folder/test.npz`` (64 others) of example
    ``name``; existing files are kept unless ``force``.  Returns the folder."""
    import contextlib
    import io
    import warnings

    folder = Path(folder) if folder is not None else DEFAULT_DIR / name
    model = folder / "model.onnx"
    if force or not model.exists():
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            export_onnx(build(name), inputs(name, 2, SEED), model)
    for file, seed in (("calib.npz", 1), ("test.npz", 2)):
        if force or not (folder / file).exists():
            np.savez(folder / file, x=inputs(name, 64, seed))
    return folder


__all__ = ["DEFAULT_DIR", "NAMES", "build", "export_onnx", "inputs", "item_shape", "write"]


def main(argv: list[str] | None = None) -> int:
    """``python -m mase_compiler.hw_examples [NAME ...]``: write the examples (all by default)."""
    import sys

    names = (argv if argv is not None else sys.argv[1:]) or list(NAMES)
    for name in names:
        print(write(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
