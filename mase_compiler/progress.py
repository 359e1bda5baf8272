"""Progress bars for long passes (rich), shown only when the session asks (the CLI does; tests and the API don't)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def bar(show: bool, total: int, what: str) -> Iterator[Callable[[], None]]:
    """Yields the function that advances a bar of ``total`` steps labelled ``what`` (a no-op when not shown)."""
    if not show:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda: progress.advance(task)
