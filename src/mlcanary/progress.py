"""Progress bars for long operations, on stderr so stdout stays machine-readable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Steps:
    """A named bar per stage; ``Steps(None)`` is silent (library use, tests)."""

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self._progress: Progress | None = None

    @contextmanager
    def running(self) -> Iterator[Steps]:
        if self.console is None:
            yield self
            return
        self._progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        with self._progress:
            yield self
        self._progress = None

    @contextmanager
    def stage(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yield an ``advance(steps=1)`` callable for a stage of ``total`` steps."""
        if self._progress is None:
            yield lambda steps=1: None
            return
        progress = self._progress
        task = progress.add_task(description, total=max(total, 1))
        yield lambda steps=1: progress.advance(task, steps)
        progress.update(task, completed=max(total, 1))

    def warn(self, message: str) -> None:
        if self.console is not None:
            self.console.print(f"[yellow]warning:[/] {message}", highlight=False)
