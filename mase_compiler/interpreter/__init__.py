"""The reference interpreter: executes graph + quant IR with torch.

Its results define what every backend must reproduce.  It runs on CPU (or
CUDA when asked), is deterministic, and frees each intermediate value after its
last use so a large model runs in little more than its weights' memory.

    outputs = run(model, {"input_ids": ids, "attention_mask": mask})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import ml_dtypes
import numpy as np
import torch
from xdsl.dialects.func import ReturnOp
from xdsl.ir import Operation, SSAValue

from ..dialects.graph import shape_of
from ..model import Model
from .dtypes import torch_dtype
from . import _dataflow  # noqa: F401  (registers the hardware-exact dataflow kernels)
from . import _tokens  # noqa: F401  (registers the token-adaptive quantization kernels)
from .kernels import KERNELS, KernelEnv


Observer = Callable[[Operation, list[torch.Tensor], tuple[torch.Tensor, ...]], None]


class InterpreterError(ValueError):
    """Inputs that do not fit the model, or an op the interpreter cannot run."""


def run_step(env: list, fn: Callable, ins: list[int], outs: list[int], name: str, step: int) -> None:
    """One plan step: ``fn`` on the values ``ins`` of ``env``, its results stored at ``outs``; a kernel failing
    on these inputs raises an InterpreterError naming the op (the trainable executor shares this)."""
    try:
        res = fn(*[env[i] for i in ins])
    except InterpreterError:
        raise
    except Exception as e:
        raise InterpreterError(f"{name} (op {step}) failed: {e}") from e
    if len(outs) == 1:
        env[outs[0]] = res
    else:
        for o, r in zip(outs, res):
            env[o] = r


class Interpreter:
    """A model prepared for repeated execution (kernels and weights bound once)."""

    def __init__(self, model: Model, device: str | torch.device | None = None):
        self.model = model
        self.device = torch.device(device or "cpu")
        env = KernelEnv(model.weights, self.device)
        func = model.main
        ids: dict[SSAValue, int] = {}
        for a in func.args:
            ids[a] = len(ids)
        self.arg_types = [a.type for a in func.args]
        self.input_names = model.input_names
        self.output_names = model.output_names
        missing = sorted({op.name for op in func.body.ops if op.name not in KERNELS and not isinstance(op, ReturnOp)})
        if missing:
            raise InterpreterError(f"the interpreter has no kernel for: {', '.join(missing)}")
        self.plan: list[tuple[object, list[int], list[int], str]] = []
        self.ops: list[Operation] = []  # the op of each plan step, for observers
        self.result_ids: list[int] = []
        for op in func.body.ops:
            if isinstance(op, ReturnOp):
                self.result_ids = [ids[v] for v in op.operands]
                continue
            for r in op.results:
                ids[r] = len(ids)
            self.ops.append(op)
            self.plan.append((KERNELS[op.name](op, env), [ids[v] for v in op.operands], [ids[r] for r in op.results], op.name))
        self.n_values = len(ids)
        # Free each value after its last reader (outputs are kept).
        last_use: dict[int, int] = {}
        for step, (_, ins, _, _) in enumerate(self.plan):
            for i in ins:
                last_use[i] = step
        keep = set(self.result_ids)
        self.release: list[list[int]] = [[] for _ in self.plan]
        for vid, step in last_use.items():
            if vid not in keep:
                self.release[step].append(vid)

    def _bind_inputs(self, inputs: Mapping[str, torch.Tensor | np.ndarray]) -> list[torch.Tensor]:
        unknown = sorted(set(inputs) - set(self.input_names))
        missing = [n for n in self.input_names if n not in inputs]
        if missing or unknown:
            raise InterpreterError(
                f"model inputs are {', '.join(self.input_names)}; "
                + (f"missing {', '.join(missing)}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {', '.join(unknown)}" if unknown else "")
            )
        bound = []
        for name, t in zip(self.input_names, self.arg_types):
            x = inputs[name]
            x = _to_tensor(x)
            want = torch_dtype(t)
            if x.dtype != want:
                if x.dtype.is_floating_point != want.is_floating_point or want == torch.bool:
                    raise InterpreterError(f"input {name!r} must be {want}, not {x.dtype}")
                x = x.to(want)
            shape = shape_of(t)
            if shape is not None:
                if len(shape) != x.dim() or any(s not in (-1, d) for s, d in zip(shape, x.shape)):
                    raise InterpreterError(f"input {name!r} must have shape {['?' if s == -1 else s for s in shape]}, not {list(x.shape)}")
            bound.append(x.to(self.device))
        return bound

    @torch.no_grad()
    def __call__(self, inputs: Mapping[str, torch.Tensor | np.ndarray], observe: Observer | None = None) -> dict[str, torch.Tensor]:
        """Outputs keyed by name; ``observe(op, operands, results)`` sees every op as it runs
        (calibration and per-layer reports use it; results are tuples, operands lists)."""
        env: list[torch.Tensor | None] = [None] * self.n_values
        for i, x in enumerate(self._bind_inputs(inputs)):
            env[i] = x
        for step, (fn, ins, outs, name) in enumerate(self.plan):
            run_step(env, fn, ins, outs, name, step)
            if observe is not None:
                observe(self.ops[step], [env[i] for i in ins], tuple(env[o] for o in outs))
            for vid in self.release[step]:
                env[vid] = None
        return {n: env[i] for n, i in zip(self.output_names, self.result_ids)}


def _to_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    if not isinstance(x, np.ndarray):
        return torch.as_tensor(x)
    x = np.ascontiguousarray(x).reshape(x.shape)  # ascontiguousarray makes 0-d arrays 1-d
    if x.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(x)


def run(model: Model, inputs: Mapping[str, torch.Tensor | np.ndarray], device: str | torch.device | None = None,
        observe: Observer | None = None) -> dict[str, torch.Tensor]:
    """Execute ``model`` on ``inputs`` (keyed by input name); outputs keyed by output name."""
    return Interpreter(model, device)(inputs, observe)


__all__ = ["Interpreter", "InterpreterError", "Observer", "run"]
