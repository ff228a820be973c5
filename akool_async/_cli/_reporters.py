"""Progress of a ``bulk`` run: a ``rich`` live display, or one plain line per event."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from .._bulk import BulkStats
from ._output import Output

_QUIET_WHEN_LIVE: Final = frozenset({"created", "processing", "completed", "downloaded", "resume"})
_TO_STDERR: Final = frozenset(
    {"warning", "error", "unknown", "budget", "create_failed", "failed", "download_failed"}
)


class PlainReporter:
    """One line per event: for logs, pipes and CI."""

    def __init__(self, output: Output, *, events_to_stderr: bool) -> None:
        self._output = output
        self._all_to_stderr = events_to_stderr

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def event(self, kind: str, message: str) -> None:
        line = f"{kind:<15} {message}"
        if self._all_to_stderr or kind in _TO_STDERR:
            self._output.note(line)
        else:
            self._output.line(line)

    def refresh(self, stats: BulkStats) -> None:
        return None


class LiveReporter:
    """A ``rich`` live display: a bar, counts per status, credits and an ETA."""

    def __init__(self, title: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console()
        self._title = title
        self._stats = BulkStats()
        self._last = ""
        self._live = Live(
            console=self._console,
            get_renderable=self._render,
            refresh_per_second=4,
            transient=False,
        )

    def __enter__(self) -> LiveReporter:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()
        if not self._console.is_terminal:
            self._console.line()  # the last frame ends without a newline off a terminal

    def event(self, kind: str, message: str) -> None:
        self._last = f"{kind}: {message}"
        if kind not in _QUIET_WHEN_LIVE:
            style = "yellow" if kind == "warning" else "red"
            self._console.print(f"{kind}: {message}", style=style, markup=False, highlight=False)

    def refresh(self, stats: BulkStats) -> None:
        self._stats = stats

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        s = self._stats
        done = s.wanted - s.remaining
        eta = s.eta()
        bar = Table.grid(padding=(0, 2))
        bar.add_row(
            Text(self._title, style="bold"),
            ProgressBar(total=max(s.wanted, 1), completed=done, width=40),
            Text(f"{done}/{s.wanted}"),
            Text(f"ETA {_clock(eta)}" if eta is not None else "ETA --"),
            Text(f"{s.credits:g} credits"),
        )
        counts = Text(
            f"queueing {s.queueing}  processing {s.processing}  completed {s.completed}  "
            f"failed {s.failed}  unknown {s.unknown}  downloaded {s.downloaded}"
        )
        return Group(bar, counts, Text(self._last[:200], style="dim"))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def make_reporter(args: argparse.Namespace, output: Output) -> PlainReporter | LiveReporter:
    """The reporter ``--progress`` asks for (``auto``: live on a terminal unless ``--json``)."""
    mode = args.progress
    if mode == "auto":
        mode = "live" if output.stdout.isatty() and not args.json else "plain"
    if mode == "live":
        try:
            return LiveReporter(f"bulk {Path(args.jobs).name}")
        except ImportError:
            output.note("rich is not installed (pip install 'akool-async[cli]'): plain progress")
    return PlainReporter(output, events_to_stderr=args.json)
