"""Progress of long CLI work: a rich progress bar on a terminal, plain lines otherwise
(CI logs, pipes, files), so a long ledger check or prefill never looks hung.

    with progress("ledger check", total=5) as p:
        ...
        p.advance(note="replaying the journal")

Plain mode prints a line at every tenth of the way (or every ``interval`` seconds) and a
final ``done`` line with the elapsed time. Output goes to stderr, so stdout stays data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO


class Reporter(Protocol):
    def advance(self, amount: int = 1, *, note: str | None = None) -> None: ...


class PlainReporter:
    def __init__(
        self, description: str, total: int | None, stream: TextIO, interval: float = 5.0
    ) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self._last_print = self.started
        self._last_tenth = 0

    def _line(self, text: str) -> None:
        print(f"{self.description}: {text}", file=self.stream, flush=True)

    def _amount(self) -> str:
        if self.total:
            return f"{self.done}/{self.total} ({100 * self.done // self.total}%)"
        return str(self.done)

    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        self.done += amount
        now = time.monotonic()
        tenth = 10 * self.done // self.total if self.total else 0
        if note is not None or tenth > self._last_tenth or now - self._last_print >= self.interval:
            self._last_tenth, self._last_print = tenth, now
            self._line(self._amount() + (f"  {note}" if note else ""))

    def finish(self) -> None:
        self._line(f"done, {self.done} in {time.monotonic() - self.started:.1f} s")


class RichReporter:
    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task

    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        fields: dict[str, Any] = {}
        if note is not None:
            fields["note"] = note
        self._bar.update(self._task, advance=amount, **fields)


@contextmanager
def progress(
    description: str,
    total: int | None = None,
    *,
    stream: TextIO | None = None,
    plain: bool | None = None,
) -> Iterator[Reporter]:
    """A reporter for ``description``; rich when ``stream`` is a terminal unless ``plain``."""
    out = stream or sys.stderr
    if plain is None:
        plain = not out.isatty()
    if plain:
        reporter = PlainReporter(description, total, out)
        yield reporter
        reporter.finish()
        return
    from rich.console import Console  # noqa: PLC0415 - only on a terminal
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=Console(file=out),
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total, note="")
        yield RichReporter(bar, task)
