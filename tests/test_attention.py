"""The attention finder: one block per layer in real exports, with the right operands (checked by running them)."""

from __future__ import annotations

import pytest
import torch

from mase_compiler import hw_examples, zoo
from mase_compiler.attention import find_attention
from mase_compiler.driver import import_model
from mase_compiler.interpreter import Interpreter


@pytest.mark.parametrize("name, layers", [("bert", 2), ("llama", 2), ("gpt2", 2)])
def test_one_attention_per_layer_and_its_map_is_a_softmax_of_its_logits(zoo_dir, name, layers):
    model = import_model(zoo.export(name, "dynamo", cache_dir=zoo_dir).path)
    found = find_attention(model.module)
    assert len(found) == layers and [a.index for a in found] == list(range(layers))
    seen: dict = {}
    watch = {a.logits: "logits" for a in found} | {a.probs: "probs" for a in found} | {a.output: "out" for a in found}
    watch |= {a.value: "value" for a in found}

    def observe(op, operands, results):
        for r, t in zip(op.results, results):
            if r in watch:
                seen[r] = t

    Interpreter(model)(zoo.inputs(name, seed=1, batch=2, seq=7), observe=observe)
    for a in found:
        logits, probs = seen[a.logits], seen[a.probs]
        assert logits.shape[-1] == logits.shape[-2] == 7  # [batch, heads, queries, keys]
        torch.testing.assert_close(probs, torch.softmax(logits, dim=-1))
        torch.testing.assert_close(seen[a.output], probs @ seen[a.value])


def test_linear_layers_and_a_model_without_attention_give_none(tmp_path):
    mlp = import_model(hw_examples.write("mlp", tmp_path / "mlp") / "model.onnx")
    assert find_attention(mlp.module) == []
    enc = import_model(hw_examples.write("encoder", tmp_path / "enc") / "model.onnx")
    assert len(find_attention(enc.module)) == 1  # the example encoder's two heads are one batched matmul
