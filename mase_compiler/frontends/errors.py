"""Errors shared by the frontends."""

from __future__ import annotations


class FrontendError(ValueError):
    """A model that a frontend cannot import: unsupported ops (each named with a location), bad arguments."""


__all__ = ["FrontendError"]
