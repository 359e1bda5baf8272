"""Fixtures shared by the test files."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    """Where zoo ONNX exports are cached: the repository's cache if writable, else a temp dir."""
    from mase_compiler import zoo

    d = zoo.default_cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".write-probe-{id(tmp_path_factory)}"
        probe.write_text("")
        probe.unlink()
        return d
    except OSError:
        return tmp_path_factory.mktemp("zoo")
