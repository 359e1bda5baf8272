"""The PyTorch frontend: models and single ops against torch itself, the ONNX frontend, errors.

Every model is imported once, verified, round-tripped through the textual IR,
and run by the interpreter on fresh random inputs (other values than the
example inputs; other shapes where the import has dynamic dims); the module's
own output is the reference.  Zoo models are also imported from their ONNX
export, and both imports must agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.export import Dim  # noqa: E402

from mase_compiler.frontends.errors import FrontendError  # noqa: E402
from mase_compiler.frontends.pytorch import import_module, supported_ops  # noqa: E402
from mase_compiler.interpreter import run  # noqa: E402
from mase_compiler.model import Model  # noqa: E402

RTOL = 1e-4  # max |out - ref| / max |ref|
THIS_FILE = Path(__file__).name


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.detach().double()
    return float((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def torch_outputs(module: nn.Module, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        out = module(*inputs.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


# ---- models ------------------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc3(F.gelu(self.fc2(torch.relu(self.fc1(x)))))


class CNN(nn.Module):
    """conv-bn-relu, max pool, avg pool, adaptive pool to 2x2, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False), nn.BatchNorm2d(8)
        self.fc = nn.Linear(32, 10)
        for bn in (self.bn1, self.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = F.avg_pool2d(torch.relu(self.bn2(self.conv2(x))), 3, stride=1, padding=1)
        x = F.adaptive_avg_pool2d(x, 2)
        return self.fc(torch.flatten(x, 1))


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    example: Callable[[int], dict[str, torch.Tensor]]  # seed -> inputs
    dynamic: bool = False  # import with symbolic batch (and sequence) dims
    fresh_shapes: list[dict] = field(default_factory=lambda: [{}])


def _rand(*shape: int) -> Callable[..., dict[str, torch.Tensor]]:
    def make(seed: int, batch: int | None = None) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {"x": torch.randn((batch or shape[0], *shape[1:]), generator=g)}

    return make


def _seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        return build().eval()

    return make


def _zoo_inputs(name: str) -> Callable[..., dict[str, torch.Tensor]]:
    def make(seed: int, batch: int = 2, seq: int = 8) -> dict[str, torch.Tensor]:
        from mase_compiler import zoo

        return {k: torch.from_numpy(v) for k, v in zoo.inputs(name, seed=seed, batch=batch, seq=seq).items()}

    return make


def _zoo_build(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        pytest.importorskip("transformers")
        from mase_compiler import zoo

        return zoo.build(name)

    return make


def _hf_lm(kind: str) -> Callable[[], nn.Module]:
    """A tiny causal LM with transformers' default (SDPA) attention, returning logits."""

    def make() -> nn.Module:
        tf = pytest.importorskip("transformers")
        torch.manual_seed(0)
        if kind == "gpt2":
            lm = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False))
        else:  # grouped-query attention: 4 query heads share 2 key/value heads
            lm = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                    num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, use_cache=False))
        assert lm.config._attn_implementation == "sdpa"
        return Logits(lm).eval()

    return make


class Logits(nn.Module):
    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask):
        return self.lm(input_ids=input_ids, attention_mask=attention_mask).logits


CASES = {c.name: c for c in [
    Case("mlp", _seeded(MLP), _rand(4, 16)),
    Case("small_cnn", _seeded(CNN), _rand(2, 3, 16, 16)),
    Case("transformer_encoder_layer",
         _seeded(lambda: nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)), _rand(2, 8, 32)),
    Case("bert", _zoo_build("bert"), _zoo_inputs("bert")),
    Case("gpt2", _zoo_build("gpt2"), _zoo_inputs("gpt2")),
    Case("llama", _zoo_build("llama"), _zoo_inputs("llama")),
    Case("minilm", _zoo_build("minilm"), _zoo_inputs("minilm")),
    Case("bert_dynamic", _zoo_build("bert"), _zoo_inputs("bert"), dynamic=True,
         fresh_shapes=[{"batch": 3, "seq": 5}, {"batch": 1, "seq": 12}]),
    Case("llama_dynamic", _zoo_build("llama"), _zoo_inputs("llama"), dynamic=True,
         fresh_shapes=[{"batch": 3, "seq": 5}, {"batch": 1, "seq": 12}]),
    Case("gpt2_lm_sdpa", _hf_lm("gpt2"), _zoo_inputs("gpt2")),
    Case("llama_lm_sdpa_dynamic", _hf_lm("llama"), _zoo_inputs("llama"), dynamic=True,
         fresh_shapes=[{"batch": 2, "seq": 8}, {"batch": 3, "seq": 5}]),
]}


@dataclass
class Imported:
    case: Case
    module: nn.Module
    model: Model


@pytest.fixture(scope="module")
def imported() -> Callable[[str], Imported]:
    cache: dict[str, Imported] = {}

    def get(name: str) -> Imported:
        if name not in cache:
            case = CASES[name]
            module = case.build()
            example = case.example(0)
            shapes = None
            if case.dynamic:
                batch, seq = Dim("batch", min=1, max=64), Dim("seq", min=2, max=64)
                shapes = tuple({0: batch, 1: seq} for _ in example)
            model = import_module(module, tuple(example.values()), input_names=list(example), dynamic_shapes=shapes)
            cache[name] = Imported(case, module, model)
        return cache[name]

    return get


@pytest.mark.parametrize("name", CASES)
def test_model_roundtrips(name, imported):
    model = imported(name).model
    model.verify()
    text = model.text()
    again = Model.parse(text, model.weights)
    assert again.text() == text
    assert all(op.name.startswith(("graph.", "func.")) for op in model.main.body.ops)


@pytest.mark.parametrize("name", CASES)
def test_model_matches_torch(name, imported):
    imp = imported(name)
    for i, shape in enumerate(imp.case.fresh_shapes):
        inputs = imp.case.example(100 + i, **shape)
        outs = run(imp.model, inputs)
        refs = torch_outputs(imp.module, inputs)
        assert len(outs) == len(refs)
        for out, ref in zip(outs.values(), refs):
            assert out.shape == ref.shape
            assert rel_err(out, ref) <= RTOL, f"{name} {shape}: relative error {rel_err(out, ref):.2e}"


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "bert"])
def test_weights_are_the_parameters_by_fqn(name, imported):
    imp = imported(name)
    state = imp.module.state_dict()
    weight_ops = [op for op in imp.model.main.body.ops if op.name == "graph.weight"]
    assert {op.properties["name"].data for op in weight_ops} == set(imp.model.weights)
    for wname, arr in imp.model.weights.items():
        assert wname in state, wname
        assert torch.equal(torch.from_numpy(arr), state[wname])
    params = {n for n, _ in imp.module.named_parameters() if ".pooler." not in n}  # BERT's pooler output is not returned
    assert params <= set(imp.model.weights)


def test_cnn_persistent_buffers_are_weights(imported):
    weights = imported("small_cnn").model.weights
    assert {"bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"} <= set(weights)
    assert "bn1.num_batches_tracked" not in weights  # unused in eval mode


def test_minilm_text_is_small_and_position_ids_are_folded(imported):
    """HF BERT's non-persistent ``position_ids`` buffer (FACTS.md) is a constant, not a weight; no blobs in the text."""
    model = imported("minilm").model
    text = model.text()
    assert len(text) < 100_000
    assert "dense_resource" not in text
    assert not any("position_ids" in n or "token_type_ids" in n for n in model.weights)
    assert sum(a.size for a in model.weights.values()) > 20_000_000  # the embedding tables and encoder weights
    assert model.input_names == ["input_ids", "attention_mask"] and model.output_names == ["output"]


def test_dynamic_dims_stay_symbolic(imported):
    model = imported("bert_dynamic").model
    assert "tensor<?x?xi64>" in model.text()


# ---- the same model through the ONNX frontend ------------------------------------------------------

@pytest.mark.parametrize("name", ["cnn", "bert", "gpt2", "llama", "minilm"])
def test_onnx_and_pytorch_imports_agree(name, zoo_dir, imported):
    onnx_frontend = pytest.importorskip("mase_compiler.frontends.onnx")
    pytest.importorskip("onnxscript")
    if name != "cnn":
        pytest.importorskip("transformers")
    from mase_compiler import zoo

    exported = zoo.export(name, cache_dir=zoo_dir)
    from_onnx = onnx_frontend.import_onnx(exported.path)
    if name in CASES:  # the same zoo module, imported on the same example inputs
        from_torch = imported(name).model
    else:
        example = {k: torch.from_numpy(v) for k, v in exported.inputs.items()}
        from_torch = import_module(zoo.build(name), tuple(example.values()), input_names=list(example))
    fresh = zoo.inputs(name, seed=7)
    (a,) = run(from_onnx, fresh).values()
    (b,) = run(from_torch, fresh).values()
    assert rel_err(a, b) <= RTOL


# ---- single ops --------------------------------------------------------------------------------------
class Fn(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def _x(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


OPS: dict[str, tuple[Callable[..., torch.Tensor], Callable[[], tuple[torch.Tensor, ...]]]] = {
    "unary": (lambda x: torch.exp(-x.abs()) + torch.sqrt(x.abs()) + torch.sin(x) * torch.cos(x) + torch.erf(x)
              + torch.sigmoid(x) + torch.tanh(x) + F.silu(x) + F.softplus(x) + torch.floor(x) - torch.ceil(x)
              + torch.round(x) + torch.sign(x) + torch.reciprocal(x.abs() + 1) + torch.rsqrt(x.abs() + 1)
              + torch.log(x.abs() + 1), lambda: (_x(3, 5),)),
    "activations": (lambda x: F.leaky_relu(x, 0.2) + F.hardtanh(x) + F.relu6(x) + F.gelu(x, approximate="tanh")
                    + torch.clamp(x, min=-0.5) + torch.clamp(x, max=0.5), lambda: (_x(3, 5),)),
    "binary_broadcast": (lambda a, b: (a + b) * (a - 2 * b) / (b.abs() + 1) + torch.maximum(a, b) - torch.minimum(a, b)
                         + torch.pow(a.abs(), 1.5) + torch.pow(a, b.round()), lambda: (_x(2, 3, 4), _x(3, 1))),
    "scalars": (lambda x: 3.0 - x + x / 2 + 2 ** x + torch.remainder(x, 0.7) + torch.fmod(x, 0.7), lambda: (_x(4, 4),)),
    "compare_where": (lambda a, b: torch.where((a > b) & (a >= 0) | (b < -1) ^ (a <= 0.5), a, b)
                      + torch.where(a != b, 1.0, 0.0) + (a == a).float(), lambda: (_x(3, 4), _x(3, 4))),
    "masked_fill": (lambda x: x.masked_fill(x > 0.5, -1e4).softmax(-1), lambda: (_x(3, 6),)),
    "int_division": (lambda a, b: torch.div(a, b, rounding_mode="floor") + torch.div(a, b, rounding_mode="trunc")
                     + a // b + a % b, lambda: (torch.randint(-20, 20, (5,)), torch.tensor([3, -4, 5, 7, -2]))),
    "float_division_modes": (lambda a, b: torch.div(a, b, rounding_mode="floor") + torch.div(a, b, rounding_mode="trunc"),
                             lambda: (_x(6) * 5, _x(6) + 3)),
    "reductions": (lambda x: x.mean(-1, keepdim=True).sum() + x.sum((0, 2)) .amax() + x.amin(1).prod(-1).sum()
                   + x.max(1).values.sum() + x.argmax(-1).float().sum() + x.argmin(1).float().mean()
                   + x.logsumexp(-1).sum() + x.var(-1).sum(), lambda: (_x(2, 3, 4),)),
    "any_all": (lambda x: (x > 0).any(-1).float() + (x > -1).all(-1).float(), lambda: (_x(3, 5),)),
    "softmax": (lambda x: F.softmax(x, 1) + F.log_softmax(x, -1), lambda: (_x(2, 3, 4),)),
    "layer_norm_no_affine": (lambda x: F.layer_norm(x, (4,)) + F.layer_norm(x, (3, 4)), lambda: (_x(2, 3, 4),)),
    "rms_norm": (lambda x: F.rms_norm(x, (4,), torch.linspace(0.5, 1.5, 4), 1e-6), lambda: (_x(2, 3, 4),)),
    "cumsum_tril": (lambda x: torch.cumsum(x, 1) + torch.tril(x, -1) + torch.triu(x, 1), lambda: (_x(2, 4, 4),)),
    "reshape_permute": (lambda x: x.reshape(2, 12).t().reshape(3, 2, 4).permute(2, 0, 1).transpose(0, 1).flatten(1)
                        .unsqueeze(0).squeeze(0), lambda: (_x(2, 3, 4),)),
    "expand_repeat": (lambda x: x[:, None].expand(2, 3, 4) + x.unsqueeze(1).repeat(1, 3, 1) + x.repeat(3, 1, 1).reshape(3, 2, 4).transpose(0, 1),
                      lambda: (_x(2, 4),)),
    "cat_stack_split": (lambda x: torch.cat([*x.split(2, -1), torch.stack(x.unbind(1), -1).sum(-1, keepdim=True)], -1)
                        + torch.cat(x.chunk(3, 0), 1).sum(), lambda: (_x(3, 5),)),
    "slicing": (lambda x: x[1:, ::2] + x[:-1, 1::2] + x[0, :3] + x[1:, -1:] + x.narrow(1, 1, 3)[:, :2].sum(), lambda: (_x(3, 6),)),
    "indexing": (lambda x, i: x[i] + x[:, i].sum() + x.index_select(1, i.abs()).sum() + torch.gather(x, 1, i.abs().expand(4, 3)).sum()
                 + x[i, i.flip(0)].sum(), lambda: (_x(4, 5), torch.tensor([2, 0, -1]))),
    "embedding": (lambda ids, w: F.embedding(ids, w), lambda: (torch.randint(0, 10, (2, 3)), _x(10, 4))),
    "pad": (lambda x: F.pad(x, (1, 2, 0, 1), value=0.5) + 1, lambda: (_x(2, 3, 4),)),
    "interpolate": (lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest")
                    + F.interpolate(x, size=(8, 8), mode="bilinear") + F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=True),
                    lambda: (_x(1, 2, 4, 4),)),
    "pools": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True).sum() + F.avg_pool2d(x, 2, count_include_pad=False).sum()
              + F.adaptive_avg_pool2d(x, (2, 3)).sum() + F.max_pool1d(x.flatten(2), 4).sum() + F.avg_pool1d(x.flatten(2), 4).sum(),
              lambda: (_x(1, 2, 6, 6),)),
    "conv1d_dilated": (lambda x, w: F.conv1d(x, w, None, 1, 2, 2), lambda: (_x(2, 3, 10), _x(4, 3, 3))),
    "casts_and_fills": (lambda x: x.to(torch.int32).to(torch.float32) + torch.ones_like(x) + torch.full_like(x, 2.0)
                        + torch.zeros(x.shape) + torch.arange(4.0) + x.new_ones(4) * x.numel(), lambda: (_x(3, 4),)),
    "sdpa_causal_and_masks": (lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, is_causal=True)
                              + F.scaled_dot_product_attention(q, k, v, attn_mask=m)
                              + F.scaled_dot_product_attention(q, k, v, attn_mask=m.float() * -2.0, scale=0.3),
                              lambda: (_x(2, 4, 6, 8), _x(2, 4, 6, 8), _x(2, 4, 6, 8), torch.rand(6, 6) > 0.3)),
    "sdpa_grouped_query": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
                           lambda: (_x(2, 4, 6, 8), _x(2, 2, 6, 8), _x(2, 2, 6, 8))),
    "tensor_bounds_and_batched_addmm": (lambda a, b: torch.clamp(a, b, b + 1) + torch.baddbmm(a, a, b.transpose(1, 2), beta=0.5)
                                        + a.min(-1, keepdim=True).values + b.type_as(a), lambda: (_x(2, 3, 3), _x(2, 3, 3))),
    "matmul_variants": (lambda a, b: torch.matmul(a, b) + torch.bmm(a, b) + torch.addmm(a[0], a[0], b[0], beta=0.5, alpha=2.0),
                        lambda: (_x(2, 4, 4), _x(2, 4, 4))),
}


@pytest.mark.parametrize("name", OPS)
def test_op(name):
    fn, make = OPS[name]
    torch.manual_seed(0)
    example = make()
    module = Fn(fn).eval()
    model = import_module(module, example)
    assert Model.parse(model.text(), model.weights).text() == model.text()
    torch.manual_seed(1)
    fresh = make()
    (out,) = run(model, dict(zip(model.input_names, fresh))).values()
    ref = module(*fresh)
    assert out.dtype == ref.dtype
    assert rel_err(out, ref) <= 1e-5, f"relative error {rel_err(out, ref):.2e}"


def test_supported_ops_cover_the_models():
    ops = set(supported_ops())
    assert {"aten.linear", "aten.convolution", "aten.layer_norm", "aten._native_batch_norm_legit_no_training",
            "aten.max_pool2d_with_indices", "aten.embedding", "aten.index.Tensor", "aten._softmax"} <= ops


# ---- inputs, names, state ----------------------------------------------------------------------------
class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 4))
        self.register_buffer("offsets", torch.arange(4.0), persistent=False)

    def forward(self, x, *, bias):
        return self.proj(x) * self.scale + self.offsets + bias


def test_dict_inputs_and_buffers():
    module = WithBuffers().eval()
    example = {"x": torch.randn(2, 4), "bias": torch.randn(4)}
    model = import_module(module, example, output_names=["y"])
    assert model.input_names == ["x", "bias"] and model.output_names == ["y"]
    assert set(model.weights) == {"proj.weight", "proj.bias", "scale"}  # the non-persistent buffer is a constant
    fresh = {"x": torch.randn(2, 4), "bias": torch.randn(4)}
    assert rel_err(run(model, fresh)["y"], module(**fresh)) <= 1e-6


def test_multiple_outputs_and_input_names():
    module = Fn(lambda a, b: (a + b, a * b)).eval()
    model = import_module(module, (torch.randn(3), torch.randn(3)), input_names=["p", "q"])
    assert model.input_names == ["p", "q"] and model.output_names == ["output0", "output1"]


def test_large_folded_constants_go_to_the_weight_store():
    module = Fn(lambda x: x + torch.arange(1000.0).reshape(10, 100).cos()).eval()
    model = import_module(module, (torch.randn(10, 100),))
    assert list(model.weights) == ["constant0"] and model.weights["constant0"].shape == (10, 100)
    x = torch.randn(10, 100)
    assert rel_err(run(model, {"xs_0": x})["output"], module(x)) <= 1e-6


def _masked_with_inf() -> tuple[nn.Module, torch.Tensor]:
    x = torch.tensor([[0.1, 0.9, -0.3, 0.7], [2.0, 0.2, 0.4, -1.0]])
    return Fn(lambda x: x.masked_fill(x > 0.5, float("-inf")).softmax(-1)).eval(), x


def test_infinite_constants_compute():
    module, x = _masked_with_inf()
    model = import_module(module, (x,))
    assert rel_err(run(model, {"xs_0": -x})["output"], module(-x)) <= 1e-6


def test_infinite_constants_roundtrip():
    # xDSL 0.74 alone prints ±inf as dense<0xFF800000> and reads it back as an integer;
    # masec's IRPrinter writes the quoted hex form instead.
    module, x = _masked_with_inf()
    model = import_module(module, (x,))
    reparsed = Model.parse(model.text(), model.weights)
    assert reparsed.text() == model.text()
    assert rel_err(run(reparsed, {"xs_0": -x})["output"], module(-x)) <= 1e-6


# ---- errors ------------------------------------------------------------------------------------------
class Unsupported(nn.Module):
    def forward(self, x):
        spectrum = torch.fft.rfft(x).abs()
        top = torch.topk(x, 2).values
        return spectrum[..., :2] + top + torch.topk(x * 2, 2).values


def test_unsupported_ops_are_listed_with_locations():
    with pytest.raises(FrontendError) as info:
        import_module(Unsupported().eval(), (torch.randn(2, 8),))
    msg = str(info.value)
    assert "cannot convert 2 ops" in msg
    lines = msg.splitlines()[1:]
    assert lines[0].startswith("  aten._fft_r2c (node _fft_r2c at ") and THIS_FILE in lines[0]
    assert lines[1].startswith("  aten.topk (node topk at ") and THIS_FILE in lines[1] and lines[1].endswith(" (and 1 more)")


def test_unsupported_configuration_says_why():
    with pytest.raises(FrontendError, match=r"aten\.convolution \(node convolution at .*\): transposed convolution is not supported"):
        import_module(nn.ConvTranspose2d(2, 2, 3).eval(), (torch.randn(1, 2, 5, 5),))


@torch.library.custom_op("masec_test::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x):
    return torch.empty_like(x)


def test_custom_op_is_named():
    with pytest.raises(FrontendError, match=r"masec_test\.twice \(node twice at .*test_pytorch_frontend\.py:\d+\)"):
        import_module(Fn(lambda x: twice(x) + 1).eval(), (torch.randn(3),))


def test_training_mode_is_rejected():
    with pytest.raises(FrontendError, match=r"module must be in eval mode \(call module.eval\(\) first\), not training mode"):
        import_module(nn.Linear(2, 2), (torch.randn(1, 2),))


def test_bad_arguments():
    with pytest.raises(FrontendError, match="module must be a torch.nn.Module, not function"):
        import_module(lambda x: x, (torch.randn(1),))  # type: ignore[arg-type]
    with pytest.raises(FrontendError, match="example_inputs must be a tuple or a dict, not Tensor"):
        import_module(nn.ReLU().eval(), torch.randn(1))  # type: ignore[arg-type]
    with pytest.raises(FrontendError, match="input_names must name the 1 tensor inputs, not 2"):
        import_module(nn.ReLU().eval(), (torch.randn(1),), input_names=["a", "b"])
    with pytest.raises(FrontendError, match="torch.export failed"):
        import_module(Fn(lambda x: x if x.sum() > 0 else -x).eval(), (torch.randn(3),))
