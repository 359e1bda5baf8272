"""A trainable PyTorch module that executes graph + quant IR: the student of quantization-aware training.

:class:`Trainable` runs the IR as the reference interpreter does (the same kernels, from
:mod:`mase_compiler.interpreter.kernels`, op by op) but with gradients: every float ``graph.weight``
is an :class:`torch.nn.Parameter` and every ``quant.cast`` a fake quantizer with a straight-through
estimator (EdgeQAT, Shen et al. 2024, §3.1).  Integer casts with a static scale operand (a
``graph.weight`` or ``graph.constant``) learn that scale as an LSQ step size (Esser et al. 2020);
with ``learn_dynamic=True`` dynamic per-tensor / per-channel integer casts get one too, initialized
from the data by :meth:`Trainable.initialize` (max / qmax).  Other formats (MX, minifloat, fixed
point, per-token / per-group dynamic integers) keep their own ``quantize`` with a straight-through
gradient.  In eval mode with the initial values the outputs equal the interpreter's bit for bit.

Each forward records, per attention block (:func:`mase_compiler.attention.find_attention`), the query
and key as the ``Q @ K^T`` matmul reads them (after their casts) and the attention map (the softmax
output), for EdgeQAT's entropy and distribution losses.

:meth:`Trainable.write_back` puts the learned weights and steps back into the IR and its weight
store (a ``graph.constant`` scale becomes a weight-store entry), so the trained model is plain IR
that every backend compiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import torch
from torch import Tensor, nn
from xdsl.dialects.builtin import TensorType, f32, i32
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from ..attention import find_attention
from ..dialects import graph as g
from ..interpreter import Interpreter, InterpreterError, run_step
from ..interpreter.kernels import KERNELS, KernelEnv, dense_to_tensor, p_int
from ..model import Model
from ._fakequant import learnable, lsq_quantize, positive_step, ste_apply, ste_quantize

_SCALE_OPS = ("graph.weight", "graph.constant")


@dataclass
class _Cast:
    """How one ``quant.cast`` runs: its format and axis, and the LSQ step it reads (if any)."""

    fmt: object
    axis: int | None
    step: str | None  # key in Trainable.steps, or None (format's own quantize, STE)
    dynamic_learn: bool  # a dynamic cast whose step is initialized from the data


def _key(name: str) -> str:
    """A weight-store name as a module attribute key (dots are not allowed there)."""
    return name.replace(".", "\u2024")  # one dot leader: readable, and no collision with real names


class Trainable(nn.Module):
    """``model`` (a :class:`~mase_compiler.model.Model`) as an ``nn.Module`` on ``device`` (default CPU; build
    it where it will run rather than ``.to()`` it: the kernels hold their constants on that device).
    ``forward(inputs)`` takes a dict keyed by input name and returns a dict keyed by output name; ``queries``, ``keys``, ``maps`` hold the
    last forward's per-block attention values, ``query_codes`` / ``key_codes`` the query and key in units
    of their cast's learned per-tensor step (the grid values EdgeQAT's entropy term is about; the values
    themselves where no such step made them)."""

    def __init__(self, model: Model, *, learn_dynamic: bool = False, device: str | torch.device | None = None):
        super().__init__()
        device = torch.device(device or "cpu")
        self._binder = Interpreter(model, device)  # input checking and dtype conversion, as the interpreter does
        func = model.main
        self._ops: list[Operation] = [op for op in func.body.ops if op.name != "func.return"]
        self._signature = [op.name for op in self._ops]
        env = KernelEnv(model.weights, device)
        ids: dict[SSAValue, int] = {a: i for i, a in enumerate(func.args)}
        for op in self._ops:
            for r in op.results:
                ids[r] = len(ids)
        self._n_values = len(ids)
        self._position = {op: i for i, op in enumerate(self._ops)}
        self._result_ids = [ids[v] for v in func.body.block.last_op.operands]
        self.output_names = model.output_names

        scale_of: dict[SSAValue, Operation] = {}  # scale operand -> its producer, for learned steps
        for op in self._ops:
            if op.name == "quant.cast" and learnable(op.properties["format"].format) and len(op.operands) > 1:
                src = op.operands[1].owner
                if isinstance(src, Operation) and src.name in _SCALE_OPS:
                    scale_of[op.operands[1]] = src
        trainable = _parameters(func, self._ops)
        self.weights = nn.ParameterDict()  # float weights, by (escaped) weight-store name
        self.steps = nn.ParameterDict()  # LSQ steps, by "w:<store name>" or "c:<op index>" / "d:<op index>"
        self._plan: list[tuple[object, list[int], list[int], str]] = []
        self._casts: dict[int, _Cast] = {}
        for index, op in enumerate(self._ops):
            ins, outs = [ids[v] for v in op.operands], [ids[r] for r in op.results]
            if op.name == "graph.weight":
                name = op.properties["name"].data
                value = model.weights.tensor(name).to(device, copy=True)
                if op.results[0] in scale_of:
                    key = f"w:{_key(name)}"
                    if key not in self.steps:
                        self.steps[key] = nn.Parameter(value.float())
                    self._plan.append((("step", key), ins, outs, op.name))
                    continue
                if not value.is_floating_point() or op.results[0] not in trainable:
                    self.register_buffer(f"const_{_key(name)}", value, persistent=False)
                    self._plan.append((("buffer", f"const_{_key(name)}"), ins, outs, op.name))
                    continue
                if _key(name) not in self.weights:
                    self.weights[_key(name)] = nn.Parameter(value)
                self._plan.append((("weight", _key(name)), ins, outs, op.name))
                continue
            if op.name == "graph.constant" and op.results[0] in scale_of:
                key = f"c:{index}"
                self.steps[key] = nn.Parameter(dense_to_tensor(op.properties["value"]).float().to(device))
                self._plan.append((("step", key), ins, outs, op.name))
                continue
            if op.name == "quant.cast":
                self._casts[index] = self._cast(index, op, scale_of, learn_dynamic)
                self._plan.append((("cast", index), ins, outs, op.name))
                continue
            if op.name not in KERNELS:
                raise InterpreterError(f"the interpreter has no kernel for: {op.name}")
            fn = KERNELS[op.name](op, env)
            if op.name == "quant.token_cast":  # token-adaptive bits (EdgeQAT §3.4): its rounding needs the STE too
                fn = _token_cast_ste(fn)
            self._plan.append((fn, ins, outs, op.name))

        blocks = find_attention(model.module)
        self._attention = [(ids[b.query], ids[b.key], ids[b.probs]) for b in blocks]
        # The learned step of the cast that produces a query / key, to express it in grid units.
        self._grid_step: dict[int, str] = {}
        for b in blocks:
            for v in (b.query, b.key):
                c = self._casts.get(self._position.get(v.owner, -1))
                if c is not None and c.step is not None:
                    self._grid_step[ids[v]] = c.step
        self.queries: list[Tensor] = []
        self.keys: list[Tensor] = []
        self.maps: list[Tensor] = []
        self.query_codes: list[Tensor] = []
        self.key_codes: list[Tensor] = []
        self._initializing = False

    def _cast(self, index: int, op: Operation, scale_of: dict, learn_dynamic: bool) -> _Cast:
        fmt, axis = op.properties["format"].format, p_int(op, "axis")
        if not learnable(fmt):
            return _Cast(fmt, axis, None, False)
        if len(op.operands) > 1:
            if op.operands[1] not in scale_of:  # a computed scale: read as an operand, not learned
                return _Cast(fmt, axis, None, False)
            src = scale_of[op.operands[1]]
            key = f"w:{_key(src.properties['name'].data)}" if src.name == "graph.weight" else f"c:{self._position[src]}"
            return _Cast(fmt, axis, key, False)
        if learn_dynamic and fmt.granularity in ("tensor", "channel"):
            return _Cast(fmt, axis, f"d:{index}", True)
        return _Cast(fmt, axis, None, False)  # per-token / per-group: the scale follows each input

    # ---- execution --------------------------------------------------------------------------------
    def _run_cast(self, c: _Cast, x: Tensor, params: list[Tensor]) -> Tensor:
        if c.step is None:
            return ste_quantize(x, c.fmt, params, c.axis)
        if c.dynamic_learn:
            if c.step not in self.steps:
                if not self._initializing:
                    raise ValueError("a dynamic cast has no step yet: call Trainable.initialize(batch) before training")
                scale, zp = c.fmt.compute_scale(x.detach().float(), axis=c.axis)  # max / qmax, as the format does
                self.steps[c.step] = nn.Parameter(scale.float())
                if zp is not None:
                    self.register_buffer(f"zp_{c.step[2:]}", zp)
            scale, zp = self.steps[c.step], getattr(self, f"zp_{c.step[2:]}", None)
        else:
            scale, zp = self.steps[c.step], (params[1] if len(params) > 1 else None)
        return lsq_quantize(x, c.fmt, scale, zp, c.axis)

    def forward(self, inputs: Mapping[str, Tensor | np.ndarray]) -> dict[str, Tensor]:
        env: list[Tensor | None] = [None] * self._n_values
        for i, x in enumerate(self._binder._bind_inputs(inputs)):
            env[i] = x
        for step, (fn, ins, outs, name) in enumerate(self._plan):
            run_step(env, self._own(fn) if isinstance(fn, tuple) else fn, ins, outs, name, step)
        self.queries = [env[q] for q, _, _ in self._attention]
        self.keys = [env[k] for _, k, _ in self._attention]
        self.maps = [env[p] for _, _, p in self._attention]
        self.query_codes = [self._codes(q, env[q]) for q, _, _ in self._attention]
        self.key_codes = [self._codes(k, env[k]) for _, k, _ in self._attention]
        return {n: env[i] for n, i in zip(self.output_names, self._result_ids)}

    def _own(self, fn: tuple[str, str]) -> Callable[..., Tensor]:
        """The step function of a plan entry this module owns: a parameter, a learned step, a buffer, a cast."""
        kind, key = fn
        if kind == "weight":
            return lambda: self.weights[key]
        if kind == "step":
            return lambda: self.steps[key]
        if kind == "buffer":
            return lambda: getattr(self, key)
        return lambda x, *params: self._run_cast(self._casts[key], x, list(params))

    def _codes(self, vid: int, x: Tensor) -> Tensor:
        """``x`` in units of the learned step of the cast that made it (the grid values, up to the zero
        point), or ``x`` itself where no learned step made it."""
        key = self._grid_step.get(vid)
        if key is None or key not in self.steps:
            return x
        step = positive_step(self.steps[key])
        return x / step if step.numel() == 1 else x

    @torch.no_grad()
    def initialize(self, inputs: Mapping[str, Tensor | np.ndarray]) -> None:
        """Give every learnable dynamic cast (``learn_dynamic=True``) its initial step from ``inputs``
        (the format's own scale: max|x| / qmax per tensor or channel); a no-op when there is none.
        Call it before building the optimizer: it adds parameters."""
        if any(c.dynamic_learn and c.step not in self.steps for c in self._casts.values()):
            self._initializing = True
            try:
                self.forward(inputs)
            finally:
                self._initializing = False

    # ---- write-back -------------------------------------------------------------------------------
    @torch.no_grad()
    def write_back(self, model: Model) -> Model:
        """Store the learned weights and steps into ``model`` (the model this module was built from, or an
        unchanged copy of it): weight-store entries are replaced, a ``graph.constant`` step becomes a
        weight-store entry ``<node>.scale``, a learned dynamic cast gets scale (and zero-point) operands.
        Returns ``model``; its interpreter output then equals this module's eval output."""
        ops = [op for op in model.main.body.ops if op.name != "func.return"]
        same = len(ops) == len(self._signature) and all(
            a.name == b or (a.name in _SCALE_OPS and b in _SCALE_OPS) for a, b in zip(ops, self._signature))
        if not same:
            raise ValueError("write_back needs the model this Trainable was built from (or an unchanged copy): "
                             "its ops differ")
        for key, p in self.weights.items():
            name = key.replace("\u2024", ".")
            model.weights[name] = _numpy(p, model.weights[name].dtype)
        for key, p in self.steps.items():
            if key.startswith("w:"):
                name = key[2:].replace("\u2024", ".")
                model.weights[name] = _numpy(positive_step(p), model.weights[name].dtype)
            elif key.startswith("c:"):
                op = ops[int(key[2:])]
                if op.name == "graph.weight":  # written back before: a store entry already
                    model.weights[op.properties["name"].data] = _numpy(positive_step(p), model.weights[op.properties["name"].data].dtype)
                    continue
                name = _unique(model.weights, f"{_node_name(next(iter(op.results[0].uses)).operation)}.scale")
                model.weights[name] = _numpy(positive_step(p).reshape(op.results[0].type.get_shape()), np.dtype(np.float32))
                Rewriter.replace_op(op, g.WeightOp(name, op.results[0].type))
        for index, c in self._casts.items():
            if not c.dynamic_learn or c.step not in self.steps:
                continue
            cast = ops[index]
            if len(cast.operands) > 1:
                raise ValueError(f"write_back: cast {index} has scale operands already: write back into a fresh copy")
            new: list[Operation] = []
            for suffix, t, elem in (("scale", positive_step(self.steps[c.step]), f32), ("zero_point", getattr(self, f"zp_{index}", None), i32)):
                if t is None:
                    continue
                name = _unique(model.weights, f"{_node_name(cast)}.{suffix}")
                model.weights[name] = _numpy(t, np.dtype(np.int32 if elem is i32 else np.float32))
                new.append(g.WeightOp(name, TensorType(elem, list(t.shape))))
            Rewriter.insert_op(new, InsertPoint.before(cast))
            cast.operands = [cast.operands[0], *(w.results[0] for w in new)]
        model.verify()
        return model


def _token_cast_ste(fn):
    """A ``quant.token_cast`` kernel with a straight-through gradient to its input (the importance
    only ranks tokens: no gradient)."""
    return lambda x, importance: ste_apply(x, lambda t: fn(t, importance.detach()))


def _parameters(func, ops: list[Operation]) -> set[SSAValue]:
    """The weights that are layer parameters: tensors (not scalars such as a pow exponent or an epsilon)
    that meet input data, possibly through views of themselves.  Weights that only meet shapes and
    positions (rotary frequencies) stay fixed, as they are in the source model."""
    data: set[SSAValue] = set(func.args)  # values that depend on input values (graph.shape reads shapes only)
    for op in ops:
        if op.name != "graph.shape" and any(o in data for o in op.operands):
            data.update(op.results)
    out: set[SSAValue] = set()
    for op in ops:
        if op.name != "graph.weight" or math.prod(op.results[0].type.get_shape()) <= 1:
            continue
        frontier, seen = [op.results[0]], 0
        while frontier and seen < 64:
            v = frontier.pop()
            seen += 1
            for use in v.uses:
                if any(o in data for o in use.operation.operands):
                    out.add(op.results[0])
                    frontier = []
                    break
                frontier.extend(use.operation.results)
    return out


def _node_name(op: Operation) -> str:
    """A readable stem for new weight-store entries: the source-node name of the op, else of its input."""
    src = op.operands[0].owner if op.operands else None
    return g.node_name(op) or (g.node_name(src) if isinstance(src, Operation) else None) or "qat"


def _unique(store, key: str) -> str:
    base, n = key, 1
    while key in store:
        key, n = f"{base}_{n}", n + 1
    return key


def _numpy(t: Tensor, dtype: np.dtype) -> np.ndarray:
    t = t.detach().cpu()
    if dtype == ml_dtypes.bfloat16:
        return t.to(torch.bfloat16).view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy().astype(dtype, copy=False) if t.dtype != torch.bfloat16 else t.float().numpy().astype(dtype)


__all__ = ["Trainable"]
