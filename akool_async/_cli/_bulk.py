"""``bulk``: a JSONL job run through ``BulkRunner``, resumable from its journal."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .._bulk import BulkOutcome, BulkRunner, describe_unknown, load_jobs
from .._journal import DEFAULT_JOURNAL_NAME, Journal
from ._connection import api_key, make_client
from ._dry_run import cmd_bulk_dry_run
from ._exit_codes import (
    BAD_INPUT,
    BUDGET,
    CONNECTION,
    DOWNLOAD_FAILED,
    OUTCOME_UNKNOWN,
    VIDEO_FAILED,
    exit_code_for,
    worst,
)
from ._output import Output
from ._reporters import make_reporter
from ._shared import SharedRun, run_shared


async def cmd_bulk(args: argparse.Namespace, output: Output) -> int:
    """Create, follow and download every video of a jobs file; a re-run resumes."""
    if args.dry_run:
        return await cmd_bulk_dry_run(args, output)
    api_key(args)  # fail on a missing key before touching any file
    if args.store is not None and args.job is None:
        output.error("--store needs --job NAME (the same for every worker of the job)")
        return BAD_INPUT
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
    if args.store is not None or args.job is not None or args.retry_failed is not None:
        shared = await run_shared(args, output, jobs, journal_path)
        _print_shared(args, output, shared)
        codes = [bulk_exit_code(shared.outcome)]
        if shared.status.unknown:
            codes.append(OUTCOME_UNKNOWN)
        if bad_lines:
            codes.append(BAD_INPUT)
        return worst(codes)
    with Journal.open(journal_path) as journal:
        # Every request is on record before anything is created.
        journal.add_requests(job.as_job_request() for job in jobs)
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
        async with make_client(
            args, max_credits=budget, max_concurrent_creates=args.concurrency
        ) as client:
            with make_reporter(args, output) as reporter:
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
    code = bulk_exit_code(outcome)
    return worst([code, BAD_INPUT]) if bad_lines else code


def bulk_exit_code(outcome: BulkOutcome) -> int:
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
    args: argparse.Namespace, output: Output, outcome: BulkOutcome, journal_path: Path
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


def _print_shared(args: argparse.Namespace, output: Output, shared: SharedRun) -> None:
    stats, status = shared.outcome.stats, shared.status
    if args.json:
        output.json(
            {
                "worker": shared.worker,
                "this_worker": stats.as_dict(),
                "job": status.as_dict(),
                "out": str(args.out),
                "budget": str(shared.outcome.budget) if shared.outcome.budget else None,
            }
        )
        return
    elapsed = time.monotonic() - stats.started
    output.line(f"worker {shared.worker}: {elapsed:.1f}s")
    output.line(f"  created     {stats.created_now} video(s) ({stats.credits_now:g} credits)")
    output.line(f"  downloaded  {stats.downloaded_now} in {args.out}")
    output.line(f"job {status.job} ({'done' if status.done else 'work left'}):")
    for name, count in status.videos.items():
        output.line(f"  {name:<11} {count}")
    output.line(f"  credits     {status.credits:g}")
    for item in status.unknown:
        output.note(
            f"unknown: {item['videos']} video(s) of {item['row']}: {item['reason']} "
            "(--retry-unknown resends them)"
        )
    if shared.outcome.budget is not None:
        output.note(f"budget: {shared.outcome.budget}")
