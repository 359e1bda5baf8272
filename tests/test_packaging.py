"""The package list in pyproject.toml covers every package in the tree (a normal,
non-editable install would silently drop one that is missing)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_installed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    dirs = {name: ROOT / path for name, path in cfg["package-dir"].items()}
    found = set()
    for name, top in dirs.items():
        for init in top.rglob("__init__.py"):
            rel = init.parent.relative_to(top)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    # Sub-packages of mapped packages that have their own package-dir entry are found twice; fine.
    assert found - listed == set(), f"add to pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


def test_console_script_points_at_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"masec": "mase_compiler.cli:main"}
    from mase_compiler.cli import main

    assert callable(main)
