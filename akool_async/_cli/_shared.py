"""``bulk --store URL --job NAME``: one worker of a job shared through a job store."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import attrs

from .._bulk import BulkOutcome, JobLine
from .._bulk_shared import SharedBulkRunner, file_digest, job_requests
from .._errors import AkoolValueError
from .._jobstore import JobStatus, JobStore
from .._jobstore_sqlite import SqliteJobStore
from ._connection import make_client
from ._output import Output
from ._reporters import make_reporter


@attrs.frozen
class SharedRun:
    """What one worker did, and where the whole job stands after it."""

    outcome: BulkOutcome
    status: JobStatus
    store: str
    worker: str


async def open_store(
    url: str | None, *, job: str, namespace: str, journal: Path | None
) -> JobStore:
    """The Redis store at ``url``, or (no URL) the SQLite journal at ``journal``.

    Raises:
        HubUnavailableError: Redis cannot be reached.
        AkoolValueError: the URL is not a Redis URL, or redis is not installed.
    """
    if url is None:
        if journal is None:
            raise AkoolValueError("give --store URL or --journal PATH")
        return SqliteJobStore.open(journal, job=job)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise AkoolValueError("--store: expected a redis://, rediss:// or unix:// URL")
    try:
        from .._hub._jobs import RedisJobStore
    except ImportError as exc:  # pragma: no cover - redis is a dev dependency
        raise AkoolValueError(
            "--store needs the redis package: pip install 'akool-async[redis]'"
        ) from exc
    store = RedisJobStore(url, job=job, namespace=namespace)
    try:
        await store.open()
    except BaseException:
        await store.aclose()
        raise
    return store


async def run_shared(
    args: argparse.Namespace, output: Output, jobs: Sequence[JobLine], journal: Path
) -> SharedRun:
    """Load the job (once across workers), then work on it until nothing is left."""
    digest = file_digest(args.jobs.read_bytes())
    job = args.job or "default"
    store = await open_store(args.store, job=job, namespace=args.namespace, journal=journal)
    try:
        loaded = await store.load(digest, job_requests(jobs))
        if loaded.added:
            output.note(f"job {job}: loaded {loaded.added} row(s)")
        if args.retry_unknown:
            retried = await store.retry_unknown()
            if retried:
                output.note(
                    f"retrying: {retried} video(s) whose create outcome was unknown "
                    "(may duplicate videos already made)"
                )
        if args.retry_failed is not None:
            failed = await store.retry_failed(args.retry_failed)
            if failed:
                output.note(f"retrying {len(failed)} failed video(s): {' '.join(failed)}")
        # The job's budget lives in the store (one cap for every worker), not in the client.
        async with make_client(args, max_concurrent_creates=args.concurrency) as client:
            with make_reporter(args, output) as reporter:
                runner = SharedBulkRunner(
                    client,
                    store,
                    args.out,
                    reporter,
                    worker=args.worker,
                    lease=args.lease,
                    max_credits=args.max_credits,
                    download_concurrency=args.download_concurrency,
                    wait_timeout=args.wait_timeout,
                    expiry_warning=args.expiry_warning * 3600,
                )
                outcome = await runner.run()
        status = await store.status()
    finally:
        await store.aclose()
    return SharedRun(
        outcome=outcome,
        status=status,
        store=args.store or str(journal),
        worker=runner.worker,
    )
