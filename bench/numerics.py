"""Quantize throughput of every built-in format.

For each format: median time of ``fmt.quantize(x)`` on one float32 tensor,
bandwidth counted as 4 bytes read + 4 bytes written per element, and the ratio
to ``torch.clone`` of the same tensor (the memory-bound ceiling: one read, one
write, one fresh output).  MX and block floating point formats are also timed
against a straightforward per-block reference written below in the style of
the public MX reference library (microxcaling), and checked against it.

    python bench/numerics.py                       # 16M elements, every format
    python bench/numerics.py --formats mxfp4,mxfp8 --repeat 20
    python bench/numerics.py --plain               # masec's plain eager path (no fast path)

Prints a table and writes JSON (default ``bench/results/numerics.json``).
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

import torch
from rich.console import Console
from rich.table import Table

from mase_compiler.numerics import BUILTIN_SPECS, IntElement, MXFormat, parse
from mase_compiler.numerics import _fast

# --------------------------------------------------------------------------------------------
# Straightforward reference, microxcaling style: reshape to blocks, shared exponent from
# floor(log2(max|A|)), divide by 2^shared_exp, quantize each element with the generic
# float recipe (private exponent from floor(log2|A|), shift the mantissa into the integer
# part, round, shift back, clamp), multiply back.  Eager torch, one op at a time.
# --------------------------------------------------------------------------------------------
FP32_MIN_NORMAL = 2.0**-126
SCALE_EMAX = 127  # E8M0


def _elem_params(fmt: MXFormat) -> tuple[int, int, int, float]:
    """(ebits, mbits, emax, max_norm) as microxcaling's _get_format_params gives them:
    mbits counts the sign and the implicit bit; integer elements have ebits = 0."""
    el = fmt.elem
    if isinstance(el, IntElement):
        return 0, el.bits, 0, el.kmax / 2.0**el.frac
    return el.exp_bits, el.man_bits + 2, el.emax, el.max_value


def _round_mantissa(a: torch.Tensor, rounding: str) -> torch.Tensor:
    if rounding == "even":
        absa = torch.abs(a)
        mask = ((absa - 0.5) % 2 == torch.zeros_like(a)).type(a.dtype)  # 0.5, 2.5, 4.5, ...
        return torch.sign(a) * (torch.floor(absa + 0.5) - mask)
    return torch.sign(a) * torch.floor(torch.abs(a) + 0.5)  # "nearest": ties away from zero


def _quantize_elemwise(a: torch.Tensor, mbits: int, ebits: int, max_norm: float, rounding: str) -> torch.Tensor:
    if ebits != 0:
        private_exp = torch.floor(torch.log2(torch.abs(a) + (a == 0).type(a.dtype)))
        min_exp = -(2 ** (ebits - 1)) + 2
        private_exp = private_exp.clip(min=min_exp)
        out = a / (2**private_exp) * (2 ** (mbits - 2))
    else:
        private_exp = None
        out = a * (2 ** (mbits - 2))
    out = _round_mantissa(out, rounding)
    if private_exp is not None:
        out = out / (2 ** (mbits - 2)) * (2**private_exp)
    else:
        out = out / (2 ** (mbits - 2))
    out = torch.clamp(out, min=-max_norm, max=max_norm)
    out[a == float("inf")] = float("inf")
    out[a == -float("inf")] = -float("inf")
    return out


def reference_mx(x: torch.Tensor, fmt: MXFormat, rounding: str = "even") -> torch.Tensor:
    """MX fake quantization of ``x`` along its last axis, one eager op at a time."""
    ebits, mbits, emax, max_norm = _elem_params(fmt)
    k = fmt.block
    shape = x.shape
    n = shape[-1]
    pad = (-n) % k
    a = torch.nn.functional.pad(x, (0, pad)) if pad else x
    a = a.reshape(*shape[:-1], (n + pad) // k, k)
    shared = torch.max(torch.abs(a), dim=-1, keepdim=True)[0]
    shared = torch.floor(torch.log2(shared + FP32_MIN_NORMAL * (shared == 0).type(shared.dtype)))
    shared = shared - emax
    shared[shared > SCALE_EMAX] = float("nan")
    shared[shared < -SCALE_EMAX] = -SCALE_EMAX
    a = a / (2**shared)
    a = _quantize_elemwise(a, mbits, ebits, max_norm, rounding)
    a = a * (2**shared)
    a = a.reshape(*shape[:-1], n + pad)
    return a[..., :n] if pad else a


# --------------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---- memory regime ---------------------------------------------------------------------------
# A fresh 64 MiB tensor costs a page fault per 4 KiB page unless the allocator hands back
# memory it already holds; which one happens depends on the allocation history of the
# process (glibc mmaps large blocks, but reuses a free block of its heap that fits).  The
# two regimes differ ~10x for torch.clone, so the benchmark fixes one:
#   cold: malloc_trim(0) before every timed call: every fresh tensor (output and
#         temporaries) pays its page faults, as in a process that has not yet used the memory;
#   warm: mmap disabled and the heap never trimmed: after the warm-up nothing faults, so
#         clone runs at cache/DRAM bandwidth and quantize is bound by its arithmetic;
#   default: whatever glibc does (varies with history: not reproducible).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_libc = None
_prep = None


def set_memory_regime(regime: str) -> bool:
    """Configure glibc malloc for ``regime``; False where that is not possible (not glibc)."""
    global _libc, _prep
    _prep = None
    if regime == "default":
        return True
    try:
        import ctypes

        _libc = ctypes.CDLL("libc.so.6")
        _libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return False
    if regime == "cold":
        _prep = lambda: _libc.malloc_trim(0)  # noqa: E731
    else:
        _libc.mallopt(_M_MMAP_MAX, 0)
        _libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    return True


def _before_call() -> None:
    if _prep is not None:
        _prep()


def time_ms(fn, repeat: int, warmup: int, device: str) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` in ms after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        _before_call()
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), times


def time_pair_ms(fn, base, repeat: int, warmup: int, device: str) -> tuple[float, float, list[float]]:
    """Medians of ``fn()`` and ``base()`` timed alternately, so that both see the same
    machine state (page-fault cost on a VM drifts over seconds)."""
    for _ in range(warmup):
        fn()
        base()
    t_fn, t_base = [], []
    for _ in range(repeat):
        for f, acc in ((base, t_base), (fn, t_fn)):
            _before_call()
            _sync(device)
            t0 = time.perf_counter()
            f()
            _sync(device)
            acc.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t_fn), statistics.median(t_base), t_fn


def fmt_ms(v: float) -> str:
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def equal_fraction(a: torch.Tensor, b: torch.Tensor) -> float:
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    return float(same.double().mean())


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape, strides and bits (NaN-aware, -0.0 != 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape or a.stride() != b.stride():
        return False
    na, nb = torch.isnan(a), torch.isnan(b)
    ib = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(na, nb) and torch.equal(a.contiguous().view(ib)[~na], b.contiguous().view(ib)[~nb])


def machine() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--numel", type=int, default=1 << 24, help="elements of the float32 tensor (default 2**24)")
    ap.add_argument("--repeat", type=int, default=11, help="timed calls per format (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    ap.add_argument("--formats", default=",".join(BUILTIN_SPECS), help="comma-separated spec strings (default: all built-in)")
    ap.add_argument("--json", default="bench/results/numerics.json", help="write results here ('' to skip)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--plain", action="store_true", help="time masec's plain eager path (fast path off)")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference implementation")
    ap.add_argument(
        "--memory", choices=("cold", "warm", "default"), default="cold",
        help="page-fault regime for fresh tensors (see the comment in the source; default cold)",
    )
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown (for docs/benchmarks.md)")
    ap.add_argument(
        "--compare-plain", action="store_true",
        help="also time the plain eager path (fast path off) and check that both give the same bits",
    )
    args = ap.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    specs = [s.strip() for s in args.formats.split(",") if s.strip()]
    fmts = [(s, parse(s)) for s in specs]  # fail early on a bad spec

    if args.device == "cuda":
        args.memory = "default"
    if not set_memory_regime(args.memory):
        print(f"note: cannot set the '{args.memory}' memory regime here (not glibc); using the default", file=sys.stderr)
        args.memory = "default"
    n = args.numel
    cols = 4096 if n % 4096 == 0 and n >= 4096 else n
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n // cols, cols, generator=g).to(args.device)
    nbytes = 2 * 4 * n
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(
        f"[bold]numerics[/]: quantize a float32 tensor of shape {tuple(x.shape)} ({n:,} elements) on {args.device}, "
        f"median of {args.repeat}, memory {args.memory}, fast path {'off (--plain)' if args.plain else 'on' if _fast.enabled() else 'off (MASEC_NUMERICS_FAST)'}"
    )
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = os.getloadavg()
    # Warm up the allocator and the VM's page backing before anything is timed.
    time_ms(lambda: x.clone(), 20, 0, args.device)
    clone_ms, _ = time_ms(lambda: x.clone(), max(args.repeat, 21), args.warmup, args.device)

    rows = []
    old = _fast.set_enabled(_fast.enabled() and not args.plain)
    try:
        for spec, fmt in fmts:
            ms, base_ms, times = time_pair_ms(lambda: fmt.quantize(x), lambda: x.clone(), args.repeat, args.warmup, args.device)
            row: dict[str, object] = {
                "format": spec,
                "ms": ms,
                "min_ms": min(times),
                "gb_s": nbytes / ms / 1e6,
                "clone_ms": base_ms,
                "ratio_to_clone": base_ms / ms,
            }
            if isinstance(fmt, MXFormat) and fmt.axis == -1 and not args.no_reference:
                ref_ms, _ = time_ms(lambda: reference_mx(x, fmt), max(3, args.repeat // 3), 1, args.device)
                ours = fmt.quantize(x)
                row["reference_ms"] = ref_ms
                row["speedup_vs_reference"] = ref_ms / ms
                row["reference_equal_fraction"] = equal_fraction(ours, reference_mx(x, fmt))
            if args.compare_plain and not args.plain:
                with _fast.plain():
                    plain_ms, _ = time_ms(lambda: fmt.quantize(x), max(3, args.repeat // 3), 1, args.device)
                    plain_out = fmt.quantize(x)
                row["plain_ms"] = plain_ms
                row["speedup_vs_plain"] = plain_ms / ms
                row["bit_identical_to_plain"] = same_bits(fmt.quantize(x), plain_out)
            rows.append(row)
            console.print(f"  {spec:<18} {ms:8.1f} ms", highlight=False)
    finally:
        _fast.set_enabled(old)

    table = Table(title=f"quantize, {n:,} float32 elements, clone = {clone_ms:.1f} ms ({nbytes / clone_ms / 1e6:.1f} GB/s)")
    cols = ["format", "ms", "GB/s", "clone ms", "x clone", "ref ms", "vs ref", "= ref"]
    with_plain = any("plain_ms" in r for r in rows)
    if with_plain:
        cols += ["plain ms", "vs plain", "= plain"]
    for col in cols:
        table.add_column(col, justify="left" if col == "format" else "right")
    for r in rows:
        has_ref = "reference_ms" in r
        cells = [
            str(r["format"]),
            fmt_ms(r['ms']),
            f"{r['gb_s']:.2f}",
            fmt_ms(r['clone_ms']),
            f"{r['ratio_to_clone']:.3f}",
            fmt_ms(r['reference_ms']) if has_ref else "",
            f"{r['speedup_vs_reference']:.1f}x" if has_ref else "",
            f"{r['reference_equal_fraction']:.6f}" if has_ref else "",
        ]
        if with_plain:
            cells += [fmt_ms(r['plain_ms']), f"{r['speedup_vs_plain']:.1f}x", "yes" if r["bit_identical_to_plain"] else "NO"]
        table.add_row(*cells)
    console.print(table)
    console.print(
        "GB/s counts 8 bytes per element (read + write); clone ms: torch.clone timed alternately with "
        "this format; x clone = clone time / quantize time; "
        "vs ref = reference time / masec time; = ref: fraction of elements equal to the reference "
        "(microxcaling-style, round='even')."
        + ("  plain: masec with the fast path off; = plain: identical bits, NaN-aware, strides included." if with_plain else "")
    )

    if args.markdown:
        print()
        print("| " + " | ".join(cols) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
        for r in rows:
            has_ref = "reference_ms" in r
            cells = [
                f"`{r['format']}`",
                fmt_ms(r['ms']),
                f"{r['gb_s']:.2f}",
                fmt_ms(r['clone_ms']),
                f"{r['ratio_to_clone']:.2f}",
                fmt_ms(r['reference_ms']) if has_ref else "",
                f"{r['speedup_vs_reference']:.1f}x" if has_ref else "",
                f"{r['reference_equal_fraction']:.6f}" if has_ref else "",
            ]
            if with_plain:
                cells += [fmt_ms(r['plain_ms']), f"{r['speedup_vs_plain']:.1f}x", "yes" if r["bit_identical_to_plain"] else "NO"]
            print("| " + " | ".join(cells) + " |")
        print()

    if args.json:
        result = {
            "benchmark": "numerics",
            "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine(),
            "device": args.device,
            "numel": n,
            "shape": list(x.shape),
            "repeat": args.repeat,
            "memory": args.memory,
            "fast_path": _fast.enabled() and not args.plain,
            "started": started,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "clone_ms": clone_ms,
            "clone_gb_s": nbytes / clone_ms / 1e6,
            "results": rows,
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
