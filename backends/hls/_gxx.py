"""Compile and run C++ with g++: C-simulation of the HLS backend and its header tests.

Every compile uses the same strict flags (:data:`FLAGS`: C++17, ``-O1``, all
warnings as errors) and sees :data:`~mase_compiler.backends.hls.INCLUDE_DIR`, so
code that passes here compiles cleanly for whoever builds it next.  Failures
raise :class:`GxxError` with a one-line message naming the file and the first
diagnostic; the full compiler output stays on the exception as ``.output``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from . import INCLUDE_DIR

FLAGS: tuple[str, ...] = ("-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror")


class GxxError(RuntimeError):
    """g++ is missing, a compile failed, or the compiled program failed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def find_gxx() -> str | None:
    """Path of the C++ compiler: ``$CXX`` if set and found, else ``g++`` on PATH, else None."""
    for name in (os.environ.get("CXX"), "g++"):
        if name:
            found = shutil.which(name)
            if found:
                return found
    return None


def _first_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        if " error: " in ln or ln.startswith("error: "):
            return ln
    return lines[0] if lines else "no output"


def compile_cpp(
    source: str | Path,
    exe: str | Path | None = None,
    *,
    include_dirs: Sequence[str | Path] = (),
    defines: Sequence[str] = (),
    extra_flags: Sequence[str] = (),
    timeout: float = 120.0,
) -> Path:
    """Compile ``source`` into ``exe`` (default: ``source`` without its suffix) and return its path.

    ``include_dirs`` come before :data:`INCLUDE_DIR`, so a test can shadow the
    header; ``defines`` are ``NAME`` or ``NAME=VALUE`` (passed as ``-D``).
    """
    gxx = find_gxx()
    if gxx is None:
        raise GxxError("g++ must be installed to compile C++ (apt-get install g++), not missing")
    source = Path(source)
    exe = Path(exe) if exe is not None else source.with_suffix("")
    cmd = [gxx, *FLAGS, *extra_flags, *(f"-I{d}" for d in include_dirs), f"-I{INCLUDE_DIR}"]
    cmd += [f"-D{d}" for d in defines] + [str(source), "-o", str(exe)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise GxxError(f"g++ on {source.name} must finish within {timeout:g} s, not run longer") from e
    if proc.returncode != 0:
        out = proc.stdout + proc.stderr
        raise GxxError(f"g++ failed on {source.name}: {_first_error(out)}", out)
    return exe


def run_exe(exe: str | Path, args: Sequence[str] = (), *, stdin: str | None = None, timeout: float = 60.0) -> str:
    """Run a compiled program and return its standard output; a nonzero exit raises :class:`GxxError`."""
    exe = Path(exe)
    try:
        proc = subprocess.run([str(exe), *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise GxxError(f"{exe.name} must finish within {timeout:g} s, not run longer") from e
    if proc.returncode != 0:
        err = _first_error(proc.stderr) if proc.stderr.strip() else "no message"
        raise GxxError(f"{exe.name} exited with status {proc.returncode}: {err}", proc.stdout + proc.stderr)
    return proc.stdout


def compile_and_run(source: str | Path, **kwargs) -> str:
    """:func:`compile_cpp` then :func:`run_exe` (keywords go to the compile)."""
    return run_exe(compile_cpp(source, **kwargs))


__all__ = ["FLAGS", "GxxError", "compile_and_run", "compile_cpp", "find_gxx", "run_exe"]
