"""The ``akool-async`` command line (also ``python -m akool_async``).

Subcommands: ``models``, ``credits``, ``create``, ``wait``, ``download``, ``bulk`` and
``fake-server``. Each one takes ``--api-key`` (default ``$AKOOL_API_KEY``; never printed) after
its own name, and each one but ``fake-server`` also ``--base-url``. Every error family has its
own exit code (``EXIT_CODES``), listed in ``akool-async --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TextIO

from ._budget import price_key
from ._bulk import BulkOutcome, BulkRunner, BulkStats, JobLine, describe_unknown, load_jobs
from ._client import AkoolClient
from ._constants import API_KEY_ENV, DEFAULT_BASE_URL, DEFAULT_POLL_INTERVAL, MAX_BATCH_COUNT
from ._downloads import DEFAULT_DOWNLOAD_CONCURRENCY
from ._errors import (
    AkoolConnectionError,
    AkoolError,
    AkoolValueError,
    AuthenticationError,
    BudgetExceededError,
    CreateOutcomeUnknownError,
    DownloadError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamError,
    ValidationError,
    VideoFailedError,
)
from ._journal import DEFAULT_JOURNAL_NAME, Journal
from ._models import Video, VideoRequest
from ._polling import PollPolicy

PROG: Final = "akool-async"

# --- exit codes ------------------------------------------------------------------------------

OK: Final = 0
GENERIC: Final = 1
BAD_INPUT: Final = 2  # argparse also exits 2 on a bad command line
AUTH: Final = 3
PERMISSION: Final = 4
NO_CREDITS: Final = 5
BUDGET: Final = 6
NOT_FOUND: Final = 7
RATE_LIMITED: Final = 8
UPSTREAM: Final = 9
CONNECTION: Final = 10
OUTCOME_UNKNOWN: Final = 11
VIDEO_FAILED: Final = 12
DOWNLOAD_FAILED: Final = 13
INTERRUPTED: Final = 130

#: Exit code -> what it means (the --help epilog and the README table are built from this).
EXIT_CODES: Final[dict[int, str]] = {
    OK: "success",
    GENERIC: "any other error",
    BAD_INPUT: "bad input: command line, jobs file line, or a value AKOOL rejected (1003)",
    AUTH: "authentication: no API key, key refused, or account banned",
    PERMISSION: "permission denied or subscription required",
    NO_CREDITS: "the account is out of credit (1006/1103/1104)",
    BUDGET: "--max-credits reached: creating stopped (created videos are kept)",
    NOT_FOUND: "a video or resource does not exist (or expired)",
    RATE_LIMITED: "rate limited (1005 / HTTP 429) after retries",
    UPSTREAM: "AKOOL failed on its side (1015/1205/HTTP 5xx), or a batch partly failed",
    CONNECTION: "connection failed or timed out (a wait timed out: the video is still there)",
    OUTCOME_UNKNOWN: "a create's outcome is unknown: it may have been billed; not resent",
    VIDEO_FAILED: "a video ended with status 4 (failed)",
    DOWNLOAD_FAILED: "a video file could not be saved whole",
    INTERRUPTED: "interrupted (Ctrl-C); bulk jobs resume from their journal",
}

#: When several things went wrong, the exit code is the first of these that occurred.
_PRIORITY: Final = (
    OUTCOME_UNKNOWN,
    AUTH,
    PERMISSION,
    NO_CREDITS,
    BUDGET,
    BAD_INPUT,
    RATE_LIMITED,
    UPSTREAM,
    CONNECTION,
    NOT_FOUND,
    VIDEO_FAILED,
    DOWNLOAD_FAILED,
    GENERIC,
)


class _NoKeyError(AkoolError):
    """No API key was given (exit code AUTH)."""


_FAMILIES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (_NoKeyError, AUTH),
    (CreateOutcomeUnknownError, OUTCOME_UNKNOWN),
    (BudgetExceededError, BUDGET),
    (AuthenticationError, AUTH),
    (PermissionDeniedError, PERMISSION),
    (InsufficientCreditsError, NO_CREDITS),
    (NotFoundError, NOT_FOUND),
    (RateLimitError, RATE_LIMITED),
    (UpstreamError, UPSTREAM),
    (ValidationError, BAD_INPUT),
    (AkoolValueError, BAD_INPUT),
    (AkoolConnectionError, CONNECTION),  # AkoolTimeoutError included
    (VideoFailedError, VIDEO_FAILED),
    (DownloadError, DOWNLOAD_FAILED),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error's family (``GENERIC`` for anything else)."""
    for family, code in _FAMILIES:
        if isinstance(exc, family):
            return code
    return GENERIC


def worst(codes: Sequence[int]) -> int:
    """The most urgent of several exit codes (``OK`` when there are none)."""
    present = set(codes) - {OK}
    for code in _PRIORITY:
        if code in present:
            return code
    return OK


def _epilog() -> str:
    lines = ["exit codes:"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items()]
    lines.append(
        "  When several things went wrong, the first of "
        + ", ".join(str(c) for c in _PRIORITY)
        + " that applies."
    )
    lines.append(f"\nThe API key comes from --api-key or ${API_KEY_ENV}; it is never printed.")
    return "\n".join(lines)


# --- output ----------------------------------------------------------------------------------


class _Output:
    """stdout for results, stderr for diagnostics; ``--json`` keeps stdout pure JSON.

    A reader that goes away (``akool-async bulk ... | head``) must not stop a job that is
    spending credits: on a broken pipe, output to that stream is dropped from then on.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def _write(self, stream: TextIO, text: str) -> None:
        try:
            print(text, file=stream, flush=True)
        except BrokenPipeError:
            _silence(stream)

    def line(self, text: str = "") -> None:
        self._write(self.stdout, text)

    def note(self, text: str) -> None:
        self._write(self.stderr, text)

    def error(self, text: str) -> None:
        self._write(self.stderr, f"{PROG}: error: {text}")

    def json(self, data: Any) -> None:
        self._write(self.stdout, json.dumps(data, indent=2, default=str))


def _silence(stream: TextIO) -> None:
    """Point a stream whose reader left at /dev/null (so exit-time flushes stay quiet too)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):  # no real file descriptor behind the stream
        pass


def _video_json(video: Video) -> dict[str, Any]:
    item = dict(video.raw)
    item.setdefault("_id", video.id)
    item["status"] = int(video.status)
    return item


def _video_line(video: Video) -> str:
    parts = [video.id, video.status.name.lower()]
    if video.video_url:
        parts.append(video.video_url)
    return "  ".join(parts)


# --- progress for bulk -----------------------------------------------------------------------

_QUIET_WHEN_LIVE: Final = frozenset({"created", "processing", "completed", "downloaded", "resume"})
_TO_STDERR: Final = frozenset(
    {"warning", "error", "unknown", "budget", "create_failed", "failed", "download_failed"}
)


class PlainReporter:
    """One line per event: for logs, pipes and CI."""

    def __init__(self, output: _Output, *, events_to_stderr: bool) -> None:
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


def _make_reporter(args: argparse.Namespace, output: _Output) -> PlainReporter | LiveReporter:
    mode = args.progress
    if mode == "auto":
        mode = "live" if output.stdout.isatty() and not args.json else "plain"
    if mode == "live":
        try:
            return LiveReporter(f"bulk {Path(args.jobs).name}")
        except ImportError:
            output.note("rich is not installed (pip install 'akool-async[cli]'): plain progress")
    return PlainReporter(output, events_to_stderr=args.json)


# --- the parser ------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _credits(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``akool-async`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"AKOOL API key (default: ${API_KEY_ENV}); never printed",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API root, e.g. a fake server's URL (default: {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--poll-interval",
        metavar="SECONDS",
        type=_positive_float,
        help=f"seconds between status polls (default: {DEFAULT_POLL_INTERVAL:g})",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate AKOOL image-to-video videos from the command line.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )

    models = command("models", "List the image-to-video models and what each offers.")
    models.add_argument("--json", action="store_true", help="print the raw model list as JSON")
    models.set_defaults(handler=_cmd_models)

    credits = command("credits", "Show the account's credit balance.")
    credits.add_argument("--json", action="store_true", help="print JSON")
    credits.set_defaults(handler=_cmd_credits)

    create = command("create", f"Create one batch of 1-{MAX_BATCH_COUNT} videos.")
    create.add_argument("--image-url", required=True, help="the image to animate")
    create.add_argument("--prompt", required=True, help="how to animate it")
    create.add_argument("--resolution", required=True, help='e.g. "720p"')
    create.add_argument("--video-length", required=True, type=_positive_int, help="seconds")
    create.add_argument("--model", dest="model_name", help="a model value from `models`")
    create.add_argument("--negative-prompt")
    create.add_argument("--extend-prompt", action="store_true", default=None)
    create.add_argument("--last-image-url")
    create.add_argument("--generate-audio", action="store_true", default=None)
    create.add_argument("--count", type=_positive_int, default=1, help="videos (default: 1)")
    create.add_argument("--webhook-url")
    create.add_argument("--max-credits", type=_credits, help="refuse if it may cost more")
    create.add_argument("--wait", action="store_true", help="wait and print the finished videos")
    create.add_argument("--timeout", type=_positive_float, default=3600.0, help="for --wait")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=_cmd_create)

    wait = command("wait", "Wait for videos to finish and print them.")
    wait.add_argument("ids", nargs="+", metavar="ID", help="video ids")
    wait.add_argument("--timeout", type=_positive_float, default=3600.0, help="seconds")
    wait.add_argument("--json", action="store_true", help="print JSON")
    wait.set_defaults(handler=_cmd_wait)

    download = command("download", "Wait for videos, then save their files.")
    download.add_argument("ids", nargs="+", metavar="ID", help="video ids")
    download.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory")
    download.add_argument("--overwrite", action="store_true", help="replace existing files")
    download.add_argument("--timeout", type=_positive_float, default=3600.0, help="seconds")
    download.add_argument("--concurrency", type=_positive_int, default=DEFAULT_DOWNLOAD_CONCURRENCY)
    download.add_argument("--json", action="store_true", help="print JSON")
    download.set_defaults(handler=_cmd_download)

    bulk = command(
        "bulk",
        "Run a JSONL job: create, follow and download every video; resumable.",
    )
    bulk.add_argument("jobs", type=Path, metavar="JOBS.jsonl", help="one request per line")
    bulk.add_argument("--out", required=True, type=Path, metavar="DIR", help="video directory")
    bulk.add_argument(
        "--journal",
        type=Path,
        metavar="PATH",
        help=f"the job journal (default: DIR/{DEFAULT_JOURNAL_NAME}); re-run to resume",
    )
    bulk.add_argument(
        "--max-credits",
        type=_credits,
        metavar="N",
        help="stop creating once this job's credits would pass N (counts earlier runs)",
    )
    bulk.add_argument(
        "--retry-unknown",
        action="store_true",
        help="create again the videos of creates whose outcome is unknown (may duplicate!)",
    )
    bulk.add_argument(
        "--skip-invalid", action="store_true", help="run the valid lines of a bad jobs file"
    )
    bulk.add_argument(
        "--concurrency", type=_positive_int, default=4, help="creates in flight (default: 4)"
    )
    bulk.add_argument(
        "--download-concurrency",
        type=_positive_int,
        default=DEFAULT_DOWNLOAD_CONCURRENCY,
        help=f"downloads in flight (default: {DEFAULT_DOWNLOAD_CONCURRENCY})",
    )
    bulk.add_argument(
        "--wait-timeout",
        type=_positive_float,
        default=3600.0,
        metavar="SECONDS",
        help="per video; a timed-out video is resumed by a re-run (default: 3600)",
    )
    bulk.add_argument(
        "--expiry-warning",
        type=_positive_float,
        default=24.0,
        metavar="HOURS",
        help="warn about videos this close to AKOOL's 7-day deletion (default: 24)",
    )
    bulk.add_argument(
        "--progress",
        choices=("auto", "live", "plain"),
        default="auto",
        help="live display (needs rich) or one line per event; auto: live on a terminal",
    )
    bulk.add_argument("--json", action="store_true", help="print the summary as JSON")
    bulk.set_defaults(handler=_cmd_bulk)

    fake = command(
        "fake-server",
        "Run a fake AKOOL server on loopback (for demos and tests); Ctrl-C stops it.",
    )
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    fake.add_argument("--queue-seconds", type=float, default=0.5)
    fake.add_argument("--process-seconds", type=float, default=2.0)
    fake.add_argument("--timing-jitter", type=float, default=0.3)
    fake.add_argument("--credit", type=float, default=100_000.0, help="starting balance")
    fake.add_argument("--seed", type=int, default=0)
    fake.set_defaults(handler=None)
    return parser


# --- commands --------------------------------------------------------------------------------


def _api_key(args: argparse.Namespace) -> str:
    key: str | None = args.api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise _NoKeyError(f"no API key: pass --api-key or set ${API_KEY_ENV}")
    return key


def _client(args: argparse.Namespace, **options: Any) -> AkoolClient:
    key = _api_key(args)
    poll = None
    if args.poll_interval is not None:
        interval = args.poll_interval
        poll = PollPolicy(initial_delay=interval, interval=interval, max_interval=interval * 6)
    return AkoolClient(key, base_url=args.base_url or DEFAULT_BASE_URL, poll=poll, **options)


async def _cmd_models(args: argparse.Namespace, output: _Output) -> int:
    async with _client(args) as client:
        models = await client.models.list()
    if args.json:
        output.json([dict(m.raw) for m in models])
        return OK
    rows = [("MODEL", "RESOLUTIONS", "SECONDS", "AUDIO", "LAST FRAME", "MAX", "LABEL")]
    for m in models:
        rows.append(
            (
                m.value,
                ",".join(m.resolution_values) or "-",
                ",".join(str(d) for d in m.durations) or "-",
                "yes" if m.supports_audio else "no",
                "yes" if m.supports_last_frame else "no",
                str(m.max_count) if m.max_count is not None else "-",
                m.label or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        output.line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return OK


async def _cmd_credits(args: argparse.Namespace, output: _Output) -> int:
    async with _client(args) as client:
        credit = await client.account.credits()
    if args.json:
        output.json({"credit": credit})
    else:
        output.line(f"credit balance: {credit:g}")
    return OK


async def _cmd_create(args: argparse.Namespace, output: _Output) -> int:
    request = VideoRequest(
        image_url=args.image_url,
        prompt=args.prompt,
        resolution=args.resolution,
        video_length=args.video_length,
        model_name=args.model_name,
        negative_prompt=args.negative_prompt,
        extend_prompt=args.extend_prompt,
        last_image_url=args.last_image_url,
        generate_audio=args.generate_audio,
        count=args.count,
        webhook_url=args.webhook_url,
    )
    request.batch_body(request.count)  # 1-10: one batch, checked before anything is sent
    async with _client(args, max_credits=args.max_credits) as client:
        batch = await client.image_to_video.create_from(request)
        if not args.json:
            output.note(
                f"created {len(batch.videos)} video(s) for {batch.deduction_credit:g} credits"
            )
        for item in batch.errors:
            output.note(f"not created: {json.dumps(dict(item), default=str)}")
        codes = [UPSTREAM] if batch.errors else []
        videos: list[Video] = list(batch.videos)
        failures: list[tuple[str, AkoolError]] = []
        if args.wait:
            outcomes = await asyncio.gather(
                *(h.wait(timeout=args.timeout) for h in batch.handles), return_exceptions=True
            )
            videos, failures = _split(batch.ids, outcomes)
    if args.json:
        output.json(
            {
                "batch_id": batch.batch_id,
                "deduction_credit": batch.deduction_credit,
                "videos": [_video_json(v) for v in videos],
                "errors": [dict(e) for e in batch.errors],
                "failures": [{"_id": i, "error": str(e)} for i, e in failures],
            }
        )
    else:
        for video in videos:
            output.line(_video_line(video))
        for video_id, error in failures:
            output.line(f"{video_id}  error  {error}")
    codes += [exit_code_for(e) for _, e in failures]
    return worst(codes)


def _split(
    ids: Sequence[str], outcomes: Sequence[Video | BaseException]
) -> tuple[list[Video], list[tuple[str, AkoolError]]]:
    videos: list[Video] = []
    failures: list[tuple[str, AkoolError]] = []
    for video_id, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, VideoFailedError):
            videos.append(outcome.video)
            failures.append((video_id, outcome))
        elif isinstance(outcome, AkoolError):
            failures.append((video_id, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            videos.append(outcome)
    return videos, failures


async def _cmd_wait(args: argparse.Namespace, output: _Output) -> int:
    ids = list(dict.fromkeys(args.ids))
    async with _client(args) as client:
        handles = [client.image_to_video.handle(i) for i in ids]
        outcomes = await asyncio.gather(
            *(h.wait(timeout=args.timeout) for h in handles), return_exceptions=True
        )
    videos, failures = _split(ids, outcomes)
    failed = {i for i, e in failures if isinstance(e, VideoFailedError)}
    if args.json:
        output.json(
            {
                "videos": [_video_json(v) for v in videos],
                "errors": [{"_id": i, "error": str(e)} for i, e in failures if i not in failed],
            }
        )
    else:
        for video in videos:
            output.line(_video_line(video))
        for video_id, error in failures:
            if video_id not in failed:
                output.line(f"{video_id}  error  {error}")
    return worst([exit_code_for(e) for _, e in failures])


async def _cmd_download(args: argparse.Namespace, output: _Output) -> int:
    ids = list(dict.fromkeys(args.ids))
    async with _client(args) as client:
        handles = [client.image_to_video.handle(i) for i in ids]
        outcomes = await asyncio.gather(
            *(h.wait(timeout=args.timeout) for h in handles), return_exceptions=True
        )
        videos, failures = _split(ids, outcomes)
        ready = [v for v in videos if v.video_url]
        saved = await client.download_many(
            ready,
            args.out,
            concurrency=args.concurrency,
            overwrite=args.overwrite,
            return_exceptions=True,
        )
    files: list[dict[str, Any]] = []
    for video, result in zip(ready, saved, strict=True):
        if isinstance(result, AkoolError):
            failures.append((video.id, result))
        elif isinstance(result, BaseException):
            raise result
        else:
            files.append({"_id": video.id, "path": str(result)})
    if args.json:
        output.json({"files": files, "errors": [{"_id": i, "error": str(e)} for i, e in failures]})
    else:
        for item in files:
            output.line(f"{item['_id']}  {item['path']}")
        for video_id, error in failures:
            output.line(f"{video_id}  error  {error}")
    return worst([exit_code_for(e) for _, e in failures])


async def _cmd_bulk(args: argparse.Namespace, output: _Output) -> int:
    _api_key(args)  # fail on a missing key before touching any file
    jobs, bad_lines = load_jobs(args.jobs)
    for bad in bad_lines:
        output.note(f"{args.jobs}: {bad}")
    if bad_lines and not args.skip_invalid:
        output.error(
            f"{len(bad_lines)} bad line(s) in {args.jobs}; nothing was created "
            "(fix them, or pass --skip-invalid to run the other lines)"
        )
        return BAD_INPUT
    if not jobs:
        output.error(f"{args.jobs} holds no requests")
        return BAD_INPUT
    journal_path = args.journal or args.out / DEFAULT_JOURNAL_NAME
    with Journal.open(journal_path) as journal:
        # Every request is on record before anything is created.
        journal.add_requests(job.as_new_request() for job in jobs)
        recovered = journal.recover()
        for create in [] if args.retry_unknown else recovered:
            output.note(
                f"unknown: a create of {create.count} video(s) ({create.request_key}) was in "
                "flight when the last run stopped; it may have been billed, so it is not resent "
                "(--retry-unknown resends it)"
            )
        if args.retry_unknown:
            for create in journal.abandon_unknown():
                if create.count > create.created:
                    output.note(
                        f"retrying: {create.count - create.created} video(s) of "
                        f"{create.request_key} whose create outcome was unknown (may duplicate "
                        "videos already made)"
                    )
        spent = journal.credits_spent()
        budget = None if args.max_credits is None else max(0.0, args.max_credits - spent)
        async with _client(
            args, max_credits=budget, max_concurrent_creates=args.concurrency
        ) as client:
            _seed_prices(client, journal, jobs)
            with _make_reporter(args, output) as reporter:
                runner = BulkRunner(
                    client,
                    journal,
                    args.out,
                    reporter,
                    download_concurrency=args.download_concurrency,
                    wait_timeout=args.wait_timeout,
                    expiry_warning=args.expiry_warning * 3600,
                )
                outcome = await runner.run(jobs, spent_before=spent)
    _print_summary(args, output, outcome, journal_path)
    code = _bulk_exit_code(outcome)
    return worst([code, BAD_INPUT]) if bad_lines else code


def _seed_prices(client: AkoolClient, journal: Journal, jobs: Sequence[JobLine]) -> None:
    """Teach the budget the prices earlier runs of this job were charged."""
    for job in jobs:
        for video in journal.videos(job.key):
            if video.credits is not None:
                client._budget.observe(price_key(job.request), video.credits)


def _bulk_exit_code(outcome: BulkOutcome) -> int:
    codes: list[int] = []
    if outcome.unknown:
        codes.append(OUTCOME_UNKNOWN)
    if outcome.budget is not None:
        codes.append(BUDGET)
    codes += [exit_code_for(e) for e in outcome.create_errors]
    codes += [exit_code_for(e) for e in outcome.follow_errors]
    codes += [CONNECTION for _ in outcome.timeouts]
    if outcome.video_failures or outcome.failed_before:
        codes.append(VIDEO_FAILED)
    codes += [DOWNLOAD_FAILED for _ in outcome.download_errors]
    return worst(codes)


def _print_summary(
    args: argparse.Namespace, output: _Output, outcome: BulkOutcome, journal_path: Path
) -> None:
    stats = outcome.stats
    if args.json:
        output.json(
            {
                **stats.as_dict(),
                "out": str(args.out),
                "journal": str(journal_path),
                "unknown_creates": [
                    {"request": key, "line": line, "reason": reason}
                    for key, line, reason in outcome.unknown
                ],
                "budget": str(outcome.budget) if outcome.budget else None,
                "errors": [
                    str(e)
                    for e in [
                        *outcome.create_errors,
                        *outcome.follow_errors,
                        *outcome.timeouts,
                        *outcome.download_errors,
                    ]
                ],
            }
        )
        return
    elapsed = time.monotonic() - stats.started
    output.line(
        f"summary: {stats.requests} request(s), {stats.wanted} video(s) wanted, {elapsed:.1f}s"
    )
    output.line(f"  created     {stats.created} ({stats.created_now} this run)")
    output.line(f"  completed   {stats.completed}")
    output.line(f"  failed      {stats.failed}")
    output.line(f"  unknown     {stats.unknown}")
    output.line(f"  downloaded  {stats.downloaded} in {args.out}")
    output.line(f"  credits     {stats.credits:g} ({stats.credits_now:g} this run)")
    if stats.create_failed:
        output.line(f"  not created {stats.create_failed} (refused or failed; a re-run retries)")
    if stats.not_created:
        output.line(f"  skipped     {stats.not_created} (creating stopped)")
    if stats.pending:
        output.line(f"  pending     {stats.pending} (not finished in time; a re-run resumes)")
    for line in describe_unknown(outcome.unknown):
        output.note(f"unknown: {line}")
    if outcome.budget is not None:
        output.note(f"budget: {outcome.budget}; re-run with a higher --max-credits to go on")


# --- fake server -----------------------------------------------------------------------------


def _run_fake_server(args: argparse.Namespace, output: _Output) -> int:
    from .testing import DEFAULT_API_KEY, FakeAkoolServer, serve_forever

    if args.base_url:
        output.error("fake-server serves requests itself: use --host/--port, not --base-url")
        return BAD_INPUT
    api_key = args.api_key or DEFAULT_API_KEY

    def ready(server: FakeAkoolServer) -> None:
        output.line(f"url: {server.url}")
        if api_key == DEFAULT_API_KEY:
            # The fake's built-in key is public (akool_async.testing.DEFAULT_API_KEY).
            output.line(f"api key: {api_key}")
        else:
            output.line("api key: the one passed with --api-key")
        output.line(f"try: {PROG} credits --base-url {server.url} --api-key <key>")

    options: dict[str, Any] = {
        "api_key": api_key,
        "queue_seconds": args.queue_seconds,
        "process_seconds": args.process_seconds,
        "timing_jitter": args.timing_jitter,
        "credit": args.credit,
        "seed": args.seed,
    }
    try:
        asyncio.run(serve_forever(host=args.host, port=args.port, ready=ready, **options))
    except KeyboardInterrupt:
        return OK
    except OSError as exc:
        output.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return CONNECTION
    return OK


# --- entry point -----------------------------------------------------------------------------


class _LogToStderr(logging.Handler):
    """SDK warnings (retries, polling trouble) as plain lines; they never hold a key."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(logging.WARNING)
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{record.levelname.lower()}: {record.getMessage()}", file=self._stream)
        except Exception:  # logging must never break the command
            self.handleError(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``EXIT_CODES``)."""
    output = _Output(sys.stdout, sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (code 2)
        return exc.code if isinstance(exc.code, int) else BAD_INPUT
    if args.command == "fake-server":
        return _run_fake_server(args, output)
    logger = logging.getLogger("akool_async")
    handler = _LogToStderr(sys.stderr)
    logger.addHandler(handler)
    try:
        command: Callable[[argparse.Namespace, _Output], Coroutine[Any, Any, int]]
        command = args.handler
        return asyncio.run(command(args, output))
    except KeyboardInterrupt:
        hint = ": re-run the same command to resume" if args.command == "bulk" else ""
        output.error(f"interrupted{hint}")
        return INTERRUPTED
    except AkoolError as exc:
        output.error(str(exc))
        return exit_code_for(exc)
    finally:
        logger.removeHandler(handler)


__all__ = ["EXIT_CODES", "build_parser", "exit_code_for", "main"]
