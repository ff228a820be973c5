"""``jobs status NAME``: where a bulk job stands across its workers."""

from __future__ import annotations

import argparse

from .._journal import DEFAULT_JOURNAL_NAME
from ._exit_codes import OK, WORK_REMAINS
from ._output import Output
from ._shared import open_store


async def cmd_jobs_status(args: argparse.Namespace, output: Output) -> int:
    """Print a job's rows, videos, credits, workers and expiry warnings."""
    journal = args.journal
    if journal is not None and journal.is_dir():
        journal = journal / DEFAULT_JOURNAL_NAME
    store = await open_store(args.store, job=args.name, namespace=args.namespace, journal=journal)
    try:
        status = await store.status()
    finally:
        await store.aclose()
    warn_within = args.expiry_warning * 3600
    expiring = [e for e in status.expiring if e["seconds_left"] <= warn_within]
    if args.json:
        output.json({**status.as_dict(), "expiring": expiring})
    else:
        output.line(f"job {status.job}: {'done' if status.done else 'work left'}")
        output.line("  rows:   " + ", ".join(f"{k} {v}" for k, v in status.rows.items()))
        output.line("  videos: " + ", ".join(f"{k} {v}" for k, v in status.videos.items()))
        output.line(f"  credits charged: {status.credits:g}")
        for worker, info in sorted(status.workers.items()):
            state = "alive" if info.get("alive") else "gone"
            output.line(
                f"  worker {worker} ({state}): holds {info['rows']} row(s), "
                f"{info['videos']} video(s); {info['in_flight']} in flight; "
                f"saved {info['downloaded']} in {info.get('out', '?')}"
            )
        for item in status.unknown:
            output.line(f"  unknown: {item['videos']} video(s) of {item['row']} ({item['reason']})")
        for item in expiring:
            left = item["seconds_left"]
            when = f"in {left / 3600:.1f} h" if left > 0 else f"{-left / 3600:.1f} h ago"
            output.line(f"  expiry: video {item['video']} (line {item['line']}) expires {when}")
    return OK if status.done else WORK_REMAINS


async def cmd_jobs_reopen(args: argparse.Namespace, output: Output) -> int:
    """Mark a lost worker's files for saving again."""
    store = await open_store(args.store, job=args.name, namespace=args.namespace, journal=None)
    try:
        count = await store.reopen_downloads(args.worker)
    finally:
        await store.aclose()
    output.line(f"job {args.name}: {count} file(s) of worker {args.worker} will be saved again")
    return OK
