"""The pass manager: presets, option checking, per-pass records, IR printing and verification."""

from __future__ import annotations

import dataclasses

import pytest
from xdsl.passes import ModulePass

from mase_compiler import pipeline
from mase_compiler.dialects import graph as g
from mase_compiler.model import Model
from mase_compiler.pipeline import PRESETS, PipelineError, expand, expanded_text, parse, run_pipeline

IR = """builtin.module {
  func.func @main(%x: tensor<2x4xf32> {graph.name = "x"}) -> (tensor<2x4xf32> {graph.name = "y"}) {
    %a = graph.relu %x : (tensor<2x4xf32>) -> tensor<2x4xf32>
    %b = graph.relu %x : (tensor<2x4xf32>) -> tensor<2x4xf32>
    %c = graph.add %a, %b : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
    %dead = graph.neg %x : (tensor<2x4xf32>) -> tensor<2x4xf32>
    func.return %c : tensor<2x4xf32>
  }
}
"""


def test_every_preset_parses_and_expands():
    for name, (text, summary) in PRESETS.items():
        assert summary
        assert [p.name for p in parse(name)] == [s.name for s in expand(text)]
        assert expanded_text(name) == expanded_text(text)
    assert [s.name for s in expand("w8a8,dce")] == ["calibrate", "quantize", "dce"]


def test_records_say_what_each_pass_changed():
    model = Model.parse(IR)
    seen = []
    records = run_pipeline(model, "dce,cse", print_ir_after_all=lambda name, text: seen.append((name, text)))
    assert [r["pass"] for r in records] == ["dce", "cse"]
    assert records[0]["ops_changed"] == {"graph.neg": -1}
    assert records[1]["ops_changed"] == {"graph.relu": -1}
    assert all(r["seconds"] >= 0 for r in records)
    assert [n for n, _ in seen] == ["dce", "cse"]
    assert "graph.neg" not in seen[0][1] and seen[0][1].count("graph.relu") == 2 and seen[1][1].count("graph.relu") == 1


def test_a_pass_that_breaks_the_ir_is_named(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Breaker(ModulePass):
        name = "breaker"

        def apply(self, ctx, op):
            from xdsl.rewriter import InsertPoint, Rewriter

            add = next(o for o in op.walk() if o.name == "graph.add")
            bad = g.TransposeOp.create(operands=[add.results[0]], result_types=[add.results[0].type],
                                       properties={"perm": g.i64_array([0, 0])})
            Rewriter.insert_op(bad, InsertPoint.after(add))

    monkeypatch.setitem(pipeline.PASSES, "breaker", lambda: Breaker)
    with pytest.raises(PipelineError, match="IR does not verify after pass 'breaker'"):
        run_pipeline(Model.parse(IR), "breaker")


@pytest.mark.parametrize("spec, message", [
    ("cse,dcee", "unknown pass or preset 'dcee'; did you mean dce"),
    ("cse{x=1}", "pass 'cse' has no option 'x'"),
    ("calibrate{method=minmx}", "minmax"),
    ("calibrate{percentile=abc}", "calibrate"),
    ("quantize{", "cannot parse pipeline"),
])
def test_errors_name_the_closest_valid_names(spec, message):
    with pytest.raises(PipelineError, match=message):
        parse(spec)


def test_passes_needing_a_model_refuse_a_bare_xdsl_pass_manager():
    from xdsl.passes import PassPipeline

    from mase_compiler.dialects import make_context
    from mase_compiler.session import NoSessionError

    (q,) = parse("quantize{default=mxfp4}")
    with pytest.raises(NoSessionError, match="run it through masec"):
        PassPipeline((q,)).apply(make_context(), Model.parse(IR).module)
