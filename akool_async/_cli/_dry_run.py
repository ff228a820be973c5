"""``bulk --dry-run``: what a job would send and cost, without creating anything.

It plans the job the way ``bulk`` does (the shortfall of each line, split into batch calls of at
most 10 or the model's ``max_count``) and prices each line with the SDK's one set of pricing
rules (``_pricing``): what earlier runs were charged (from the journal, when one exists), else
AKOOL's published table, else the conservative fallback. With an API key it reads the model
list (one GET) for each model's ``max_count`` and ``generate_audio`` multiplier. It never sends
a create and never writes a journal.
"""

from __future__ import annotations

import argparse
import collections
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._budget import price_key
from .._bulk import JobLine, load_jobs
from .._constants import API_KEY_ENV
from .._creates import plan_batches
from .._errors import AkoolError
from .._journal import DEFAULT_JOURNAL_NAME, Journal
from .._models import AIModel
from .._pricing import PriceBook
from ._connection import make_client
from ._exit_codes import BAD_INPUT, OK
from ._output import Output


async def cmd_bulk_dry_run(args: argparse.Namespace, output: Output) -> int:
    """Print the batch calls and estimated credits of a jobs file; create nothing."""
    jobs, bad_lines = load_jobs(args.jobs)
    for bad in bad_lines:
        output.note(f"{args.jobs}: {bad}")
    if bad_lines and not args.skip_invalid:
        output.error(f"{len(bad_lines)} bad line(s) in {args.jobs} (bulk would create nothing)")
        return BAD_INPUT
    if not jobs:
        output.error(f"{args.jobs} holds no requests")
        return BAD_INPUT
    models = await _read_models(args, output)
    book = PriceBook(models.get)
    journal_path: Path = args.journal or args.out / DEFAULT_JOURNAL_NAME
    made, spent = _read_journal(journal_path, jobs, book, output)

    lines: list[dict[str, Any]] = []
    for job in jobs:
        request = job.request
        have = made.get(job.key, 0)
        videos = max(0, request.count - have)
        model = models.get(request.model_name or "")
        calls = len(plan_batches(videos, None if model is None else model.max_count))
        estimate = book.quote(price_key(request), videos)
        lines.append(
            {
                "line": job.line,
                "request": job.key,
                "videos": videos,
                "in_journal": have,
                "batch_calls": calls,
                "credits": estimate.credits,
                "per_video": estimate.per_video,
                "source": str(estimate.source),
            }
        )
    by_source: collections.Counter[str] = collections.Counter()
    for line in lines:
        by_source[line["source"]] += line["credits"]
    total = sum(line["credits"] for line in lines)
    summary = {
        "dry_run": True,
        "batch_calls": sum(line["batch_calls"] for line in lines),
        "videos": sum(line["videos"] for line in lines),
        "credits": total,
        "credits_by_source": dict(by_source),
        "credits_spent_before": spent,
        "model_list_read": bool(models),
        "lines": lines,
    }
    if args.json:
        output.json(summary)
    else:
        _print_text(output, lines, summary)
    if args.max_credits is not None and spent + total > args.max_credits:
        output.note(
            f"budget: --max-credits {args.max_credits:g} is below the estimate "
            f"({spent:g} spent before + about {total:g}): the run would stop early"
        )
    return OK


async def _read_models(args: argparse.Namespace, output: Output) -> Mapping[str, AIModel]:
    """The model list by name (one GET), or {} without a key or when it cannot be read."""
    if not (args.api_key or os.environ.get(API_KEY_ENV)):
        output.note("no API key: estimating without the model list")
        return {}
    try:
        async with make_client(args) as client:
            return {m.value: m for m in await client.models.list()}
    except AkoolError as exc:
        output.note(f"model list not read ({exc}); estimating without it")
        return {}


def _read_journal(
    path: Path, jobs: list[JobLine], book: PriceBook, output: Output
) -> tuple[dict[str, int], float]:
    """Videos each line already has (made or in doubt) and credits spent, from an existing
    journal; what its videos were charged teaches ``book``. Nothing is written."""
    if not path.is_file():
        return {}, 0.0
    made: dict[str, int] = {}
    try:
        with Journal.open(path) as journal:
            for job in jobs:
                videos = journal.videos(job.key)
                made[job.key] = len(videos) + journal.in_doubt(job.key)
                for video in videos:
                    if video.credits is not None:
                        book.observe(price_key(job.request), video.credits)
            spent = journal.credits_spent()
    except AkoolError as exc:
        output.note(f"journal {path} not read ({exc}); planning the whole file")
        return {}, 0.0
    return made, spent


def _print_text(output: Output, lines: list[dict[str, Any]], summary: Mapping[str, Any]) -> None:
    output.line("dry run: nothing was created")
    for line in lines:
        where = f"line {line['line']} ({line['request']})"
        if not line["videos"]:
            output.line(f"{where}: nothing to create ({line['in_journal']} in the journal)")
            continue
        output.line(
            f"{where}: {line['videos']} video(s) in {line['batch_calls']} batch call(s), "
            f"about {line['credits']:g} credits ({line['per_video']:g} per video, "
            f"{line['source']})"
        )
    sources = ", ".join(f"{k} {v:g}" for k, v in sorted(summary["credits_by_source"].items()))
    output.line(
        f"total: {summary['videos']} video(s) in {summary['batch_calls']} batch call(s), "
        f"about {summary['credits']:g} credits ({sources or 'nothing to create'})"
    )
