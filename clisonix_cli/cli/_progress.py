"""Progress of a transform run on stderr: a Rich bar on a terminal, plain lines otherwise.

Only the parent (driver) process shows progress; workers report through their records.
Plain lines (cron, CI, job arrays) are one per finished task, so logs stay greppable.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from clisonix_cli.cli._console import err_console, safe

if TYPE_CHECKING:
    from clisonix_cli.taskarray.collect import Event


class RunProgress:
    """Turns run events into a progress display.

    Parameters
    ----------
    rich_bar : bool
        Show a live Rich bar (stderr is a terminal); otherwise print plain lines.
    quiet : bool
        Print nothing but notes (used with ``--json`` off a terminal).
    """

    def __init__(self, *, rich_bar: bool, quiet: bool = False) -> None:
        self.rich_bar = rich_bar
        self.quiet = quiet
        self._progress: Any = None
        self._bar: Any = None
        self._failed = 0
        self._slices = 0
        self._t0 = time.monotonic()

    def __enter__(self) -> RunProgress:
        if self.rich_bar:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TextColumn("{task.fields[rate]} slices/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
            self._progress = None

    def __call__(self, event: Event) -> None:
        """Handle one event from :func:`clisonix_cli.taskarray.execute.run`."""
        if event.kind == "note":
            self._line(f"note: {event.message}", style="yellow")
            return
        if self._progress is not None:
            if event.kind == "start":
                self._t0 = time.monotonic()
                self._bar = self._progress.add_task(
                    "transform", total=event.total, failed=0, rate="-"
                )
            elif event.kind == "task" and self._bar is not None:
                rec = event.record or {}
                self._count(event, rec)
                elapsed = max(time.monotonic() - self._t0, 1e-9)
                self._progress.update(
                    self._bar,
                    completed=event.done,
                    failed=self._failed,
                    rate=f"{self._slices / elapsed:,.0f}",
                )
                if rec.get("status") == "failed":
                    err = rec.get("error") or {}
                    self._line(f"{err.get('code')}: {err.get('message')}", style="red")
            return
        if self.quiet:
            return
        if event.kind == "start":
            self._line(f"running {event.total} task(s)")
        elif event.kind == "task" and event.record is not None:
            rec = event.record
            width = len(str(event.total))
            head = f"[{event.done:>{width}}/{event.total}] {rec['status']:<6} {rec['task']}"
            if rec.get("status") == "ok":
                outs = [o["path"] for o in rec.get("outputs") or []]
                main = [p for p in outs if not p.endswith(".json")] or outs
                self._line(f"{head} {main[0] if main else ''}")
            else:
                err = rec.get("error") or {}
                self._line(f"{head} {err.get('code')}: {err.get('message')}")

    def _count(self, event: Event, rec: Any) -> None:
        """Tally failed tasks and the slices of successful ones (for the rate column)."""
        if rec.get("status") == "failed":
            self._failed += 1
        elif rec.get("status") == "ok" and event.task is not None:
            stack = event.task.stack
            self._slices += stack.n_slices * max(stack.n_volumes, 1)

    def _line(self, text: str, style: str | None = None) -> None:
        target = self._progress.console if self._progress is not None else err_console
        target.print(safe(text), style=style)
