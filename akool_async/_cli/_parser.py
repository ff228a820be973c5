"""The ``akool-async`` argument parser: one subcommand per command, each naming its handler."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._bulk_shared import DEFAULT_LEASE
from .._constants import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    MAX_BATCH_COUNT,
)
from .._downloads import DEFAULT_DOWNLOAD_CONCURRENCY
from .._journal import DEFAULT_JOURNAL_NAME
from ._bulk import cmd_bulk
from ._exit_codes import epilog
from ._info import cmd_credits, cmd_models
from ._jobs import cmd_jobs_reopen, cmd_jobs_status
from ._output import PROG
from ._videos import cmd_create, cmd_download, cmd_wait


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
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )

    models = command("models", "List the image-to-video models and what each offers.")
    models.add_argument("--json", action="store_true", help="print the raw model list as JSON")
    models.set_defaults(handler=cmd_models)

    credits = command("credits", "Show the account's credit balance.")
    credits.add_argument("--json", action="store_true", help="print JSON")
    credits.set_defaults(handler=cmd_credits)

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
    create.add_argument(
        "--timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT, help="for --wait"
    )
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=cmd_create)

    wait = command("wait", "Wait for videos to finish and print them.")
    wait.add_argument("ids", nargs="+", metavar="ID", help="video ids")
    wait.add_argument(
        "--timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT, help="seconds"
    )
    wait.add_argument("--json", action="store_true", help="print JSON")
    wait.set_defaults(handler=cmd_wait)

    download = command("download", "Wait for videos, then save their files.")
    download.add_argument("ids", nargs="+", metavar="ID", help="video ids")
    download.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory")
    download.add_argument("--overwrite", action="store_true", help="replace existing files")
    download.add_argument(
        "--timeout", type=_positive_float, default=DEFAULT_WAIT_TIMEOUT, help="seconds"
    )
    download.add_argument("--concurrency", type=_positive_int, default=DEFAULT_DOWNLOAD_CONCURRENCY)
    download.add_argument("--json", action="store_true", help="print JSON")
    download.set_defaults(handler=cmd_download)

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
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="SECONDS",
        help="per video; a timed-out video is resumed by a re-run "
        f"(default: {DEFAULT_WAIT_TIMEOUT:g})",
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
    bulk.add_argument(
        "--retry-failed",
        type=_positive_int,
        metavar="N",
        help="create a new video for each one that failed (status 4), at most N times per "
        "video; budget-checked and recorded in the journal or store",
    )
    shared = bulk.add_argument_group("several workers, one job")
    shared.add_argument(
        "--store",
        metavar="URL",
        help="keep the job in Redis (redis://HOST:6379/0, rediss://...) so several workers "
        "share it; needs --job",
    )
    shared.add_argument(
        "--job", metavar="NAME", help="the job's name in the store (same for every worker)"
    )
    shared.add_argument(
        "--namespace", default="akool", help="the store's key prefix (default: akool)"
    )
    shared.add_argument(
        "--lease",
        type=_positive_float,
        default=DEFAULT_LEASE,
        metavar="SECONDS",
        help=f"a dead worker's claims are taken over after this long (default: {DEFAULT_LEASE:g})",
    )
    shared.add_argument(
        "--worker", metavar="ID", help="this worker's id (default: host:pid:random)"
    )
    bulk.add_argument("--json", action="store_true", help="print the summary as JSON")
    bulk.add_argument(
        "--dry-run",
        action="store_true",
        help="create nothing: print the batch calls and estimated credits per line and in "
        "total, with their sources (reads the model list, one GET, when a key is set)",
    )
    bulk.set_defaults(handler=cmd_bulk)

    jobs = command("jobs", "Inspect bulk jobs.")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    status = jobs_sub.add_parser(
        "status",
        help="where a job stands across its workers",
        description="Rows and videos per state, credits, which worker holds what, expiry "
        "warnings. Exit 0 when every video is saved, 15 while work remains.",
        parents=[common],
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("name", metavar="NAME", help="the job's name (--job of its workers)")
    where = status.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", metavar="URL", help="the job's Redis store")
    where.add_argument("--journal", type=Path, metavar="PATH", help="a bulk journal (SQLite)")
    status.add_argument("--namespace", default="akool", help="the store's key prefix")
    status.add_argument(
        "--expiry-warning",
        type=_positive_float,
        default=24.0,
        metavar="HOURS",
        help="list unsaved videos this close to AKOOL's 7-day deletion (default: 24)",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_jobs_status)

    reopen = jobs_sub.add_parser(
        "reopen",
        help="save again the files a lost worker saved",
        description="Mark the files a worker saved as lost (its machine is gone): the next "
        "worker of the job saves them again, while AKOOL still keeps the videos (7 days).",
        parents=[common],
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reopen.add_argument("name", metavar="NAME", help="the job's name")
    reopen.add_argument("--worker", required=True, metavar="ID", help="the lost worker's id")
    reopen.add_argument("--store", required=True, metavar="URL", help="the job's Redis store")
    reopen.add_argument("--namespace", default="akool", help="the store's key prefix")
    reopen.set_defaults(handler=cmd_jobs_reopen)

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
