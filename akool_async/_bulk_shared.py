"""One bulk job, several workers: ``SharedBulkRunner`` drives a job kept in a ``JobStore``.

Each worker (a process running ``akool-async bulk --store URL --job NAME``, or this runner in
a user's service) loops until the job has nothing left for it:

* it renews its lease; creates left in flight by dead workers become *unknown* (``recover``);
* it claims rows that lack videos; for each batch it reserves the estimate in the job's
  budget, records the create as *sent* in the store (only the live holder of the row's claim
  can), sends it through the client's create pipeline (one ``CreateRun`` it observes), and
  writes the answer's ids to the store as soon as it arrives, before anything else;
* it follows the videos it created, and claims videos whose worker died, and saves each file
  into its own ``out_dir``, recording in the store which worker saved it and where.

A store that cannot be reached stops the worker (``HubUnavailableError``): what the store
already holds is safe, and ids whose answer arrived but could not be written are appended to
``out_dir/akool-unsaved-ids.jsonl`` so that nothing paid for is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import attrs

from ._budget import price_key
from ._bulk import (
    BulkOutcome,
    BulkStats,
    JobLine,
    LineError,
    Reporter,
    parse_jobs,
    save_video,
)
from ._client import AkoolClient, client_core
from ._constants import VIDEO_RETENTION_SECONDS
from ._creates import (
    STOPS_ALL,
    CreateObserver,
    CreateOutcome,
    CreateState,
    CreateTicket,
    plan_batches,
)
from ._errors import (
    AkoolError,
    AkoolValueError,
    BudgetExceededError,
    ClientClosedError,
    DownloadError,
    HubUnavailableError,
    VideoFailedError,
    WaitTimeoutError,
)
from ._jobstore import (
    REFUSED,
    UNKNOWN,
    JobRequest,
    JobStore,
    LoadResult,
    RowClaim,
    StoredVideo,
)
from ._models import VideoStatus
from ._polling import TaskHandle
from ._requests import VideoRequest

#: Seconds a worker's claims outlive its last heartbeat (``--lease``).
DEFAULT_LEASE: Final = 30.0
#: Videos one worker follows at once (claimed from the store as it goes).
DEFAULT_FOLLOW_LIMIT: Final = 500
UNSAVED_IDS_FILE: Final = "akool-unsaved-ids.jsonl"


@attrs.frozen
class _Tag:
    claim: RowClaim
    create_id: str
    answer: asyncio.Future[CreateOutcome[_Tag]]


def job_requests(jobs: Sequence[JobLine]) -> list[JobRequest]:
    """The store records of a jobs file's valid lines."""
    return [job.as_job_request() for job in jobs]


def file_digest(data: bytes) -> str:
    """The digest a job keeps of its jobs file."""
    return hashlib.sha256(data).hexdigest()


async def load_job(
    store: JobStore, path: str | os.PathLike[str], *, skip_invalid: bool = False
) -> tuple[LoadResult, list[LineError]]:
    """Read a JSONL jobs file and record its rows in ``store`` (once, whichever worker is first).

    Returns what was loaded and the lines that failed validation: those are never loaded,
    so no worker claims them.

    Raises:
        AkoolValueError: the file cannot be read, or has bad lines and not ``skip_invalid``.
        JobConflictError: the job was loaded from another file.
    """
    target = Path(path)
    try:
        data = await asyncio.to_thread(target.read_bytes)
    except OSError as exc:
        raise AkoolValueError(f"jobs file {target}: {exc.strerror or exc}") from exc
    jobs, errors = parse_jobs(data.splitlines())
    if errors and not skip_invalid:
        raise AkoolValueError(
            f"{target}: {len(errors)} bad line(s), nothing loaded: "
            + "; ".join(str(e) for e in errors)
        )
    return await store.load(file_digest(data), job_requests(jobs)), errors


class _Silent:
    def event(self, kind: str, message: str) -> None:
        """Nothing to report to."""

    def refresh(self, stats: BulkStats) -> None:
        """Nothing to refresh."""


def new_worker_id() -> str:
    """A worker id unique in any job: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SharedBulkRunner(CreateObserver[_Tag]):
    """One worker of a bulk job kept in a ``JobStore``; run as many as you like.

    Args:
        client: an open ``AkoolClient`` (its ``max_concurrent_creates`` is this worker's
            creates in flight; leave its ``max_credits`` unset: the job's budget is
            ``max_credits`` here, shared by every worker).
        store: the job's store, already loaded (``load_job``).
        out_dir: where this worker saves files.
        reporter: progress sink: ``event(kind, message)`` and ``refresh(stats)`` (default:
            none).
        worker: this worker's id (default: host, pid and a random part).
        lease: seconds this worker's claims outlive its last heartbeat.
        max_credits: the job's budget across all workers (None: no cap).
        download_concurrency: downloads in flight at once.
        wait_timeout: seconds to wait for each video (None: forever).
        expiry_warning: warn about videos this close to AKOOL's 7-day deletion (seconds).
    """

    def __init__(
        self,
        client: AkoolClient,
        store: JobStore,
        out_dir: str | os.PathLike[str],
        reporter: Reporter | None = None,
        *,
        worker: str | None = None,
        lease: float = DEFAULT_LEASE,
        max_credits: float | None = None,
        download_concurrency: int = 4,
        wait_timeout: float | None = None,
        expiry_warning: float = 24 * 3600.0,
        follow_limit: int = DEFAULT_FOLLOW_LIMIT,
    ) -> None:
        if not lease > 0:
            raise AkoolValueError("lease must be positive")
        self._client = client
        self._core = client_core(client)
        self._store = store
        self._out = Path(out_dir)
        self._reporter: Reporter = reporter or _Silent()
        self.worker = worker or new_worker_id()
        self._lease = lease
        self._tick = min(lease / 3, 1.0)
        self._max_credits = max_credits
        self._download_limit = asyncio.Semaphore(download_concurrency)
        self._wait_timeout = wait_timeout
        self._expiry_warning = expiry_warning
        self._follow_limit = follow_limit
        self._run = self._core.creates.run([self])
        self._creating: set[str] = set()
        self._following: set[str] = set()
        self._skip_rows: set[str] = set()
        self._skip_videos: set[str] = set()
        self._stop_creating = False
        self._wake = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self.outcome = BulkOutcome(stats=BulkStats())

    async def run(self) -> BulkOutcome:
        """Work on the job until nothing is left for this worker; then leave it.

        Raises:
            HubUnavailableError: the store cannot be reached (this worker stops; the others
                and a re-run go on from what the store holds).
        """
        self._out.mkdir(parents=True, exist_ok=True)
        info = {"host": socket.gethostname(), "pid": os.getpid(), "out": str(self._out)}
        await self._store.join(self.worker, self._lease, info)
        heart = asyncio.create_task(self._heartbeat(), name="akool-async-bulk-heartbeat")
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._loop())
        except BaseExceptionGroup as group_error:
            hub = group_error.subgroup(HubUnavailableError)
            if hub is not None:
                raise _first(hub) from None
            raise
        finally:
            self._group = None
            heart.cancel()
            await asyncio.gather(heart, return_exceptions=True)
        with contextlib.suppress(HubUnavailableError):
            await self._store.leave(self.worker)
        self._reporter.refresh(self.outcome.stats)
        return self.outcome

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                alive = await self._store.heartbeat(self.worker, self._lease)
            except HubUnavailableError as exc:
                self._reporter.event("warning", f"cannot renew the worker lease: {exc}")
                continue
            if not alive:
                self._reporter.event(
                    "warning",
                    f"worker {self.worker}: lease lapsed; other workers may have taken its claims",
                )

    async def _loop(self) -> None:
        store = self._store
        group = self._group
        assert group is not None
        concurrency = self._core.creates.max_concurrent_creates
        clock = asyncio.get_running_loop().time
        last_scan = float("-inf")
        while True:
            self._wake.clear()
            # Looking for dead workers' creates and videos costs a scan of the job: once a
            # tick, not on every wake-up.
            scan = clock() - last_scan >= self._tick
            if scan:
                last_scan = clock()
                for key in await store.recover():
                    self._reporter.event(
                        "unknown", f"a create of row {key} was in flight when its worker stopped"
                    )
            while not self._stop_creating and len(self._creating) < concurrency:
                claim = await store.claim_row(
                    self.worker, skip=sorted(self._skip_rows | self._creating)
                )
                if claim is None:
                    break
                self._creating.add(claim.key)
                group.create_task(self._create_row(claim))
            free = self._follow_limit - len(self._following)
            if scan and free > 0:
                for video in await store.claim_videos(
                    self.worker, free, skip=sorted(self._skip_videos)
                ):
                    self._reporter.event("takeover", f"line {video.line}: following {video.id}")
                    self._start_follow(video, self._client.image_to_video.handle(video.id))
            self.outcome.stats.queueing = len(self._following)
            self._reporter.refresh(self.outcome.stats)
            if not self._creating and not self._following:
                # Rows left when creating stopped here (budget, a refusal that stops all)
                # are not this worker's to wait for; videos and creates in flight are.
                left = await store.work_left(
                    sorted(self._skip_rows),
                    sorted(self._skip_videos),
                    rows=not self._stop_creating,
                )
                if not left:
                    return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._wake.wait()

    # -- creating ----------------------------------------------------------------------------

    async def _create_row(self, claim: RowClaim) -> None:
        try:
            request = VideoRequest(**claim.body)
            cap = self._core.catalog.max_count(request.model_name)
            for size in plan_batches(claim.missing, cap):
                if self._stop_creating or not await self._create_batch(claim, request, size):
                    break
        finally:
            self._skip_rows.add(claim.key)
            self._creating.discard(claim.key)
            self._wake.set()
        await self._store.release_row(self.worker, claim.key)

    async def _create_batch(self, claim: RowClaim, request: VideoRequest, size: int) -> bool:
        store = self._store
        stats = self.outcome.stats
        estimate = self._core.budget.estimate(price_key(request), size)
        token = None
        if self._max_credits is not None:
            token = await store.reserve(estimate, self._max_credits)
            if token is None:
                self._budget_stop(size, estimate)
                return False
        create_id = await store.start_create(self.worker, claim.key, size, estimate)
        if create_id is None:
            # The claim lapsed (another worker took the row) or the row needs fewer now.
            if token is not None:
                await store.release(token)
            return False
        answer: asyncio.Future[CreateOutcome[_Tag]] = asyncio.get_running_loop().create_future()
        await self._run.submit(request, size, _Tag(claim, create_id, answer))
        outcome = await answer
        # The answer's ids go to the store first: nothing else of this job runs before.
        state, error = outcome.state, outcome.error
        if state is CreateState.CREATED:
            batch = outcome.batch
            assert batch is not None
            rows = await self._commit(
                create_id, outcome, lambda: store.finish_create(create_id, batch.videos)
            )
            if token is not None:
                await store.settle(token, batch.deduction_credit)
            stats.created += len(rows)
            stats.created_now += len(rows)
            stats.credits += batch.deduction_credit
            stats.credits_now += batch.deduction_credit
            if len(rows) < size:
                stats.create_failed += size - len(rows)
            self._reporter.event(
                "created",
                f"line {claim.line}: created {len(rows)} video(s) "
                f"({batch.deduction_credit:g} credits): {' '.join(r.id for r in rows)}",
            )
            handles = {h.id: h for h in batch.handles}
            for row in rows:
                self._start_follow(row, handles.get(row.id) or self._core.track(row.id))
            return len(rows) == size
        if state is CreateState.UNKNOWN:
            assert error is not None
            ids = [h.id for h in outcome.handles]
            rows = await self._commit(
                create_id,
                outcome,
                lambda: store.fail_create(
                    create_id, UNKNOWN, str(error), credits=estimate, video_ids=ids
                ),
            )
            if token is not None:
                await store.settle(token, estimate)
            stats.created += len(rows)
            stats.unknown += size - len(rows)
            stats.credits += estimate
            self.outcome.unknown.append((claim.key, claim.line, str(error)))
            self._reporter.event(
                "unknown", f"line {claim.line}: create outcome unknown; not retried: {error}"
            )
            handles = {h.id: h for h in outcome.handles}
            for row in rows:
                self._start_follow(row, handles.get(row.id) or self._core.track(row.id))
            return False
        reason = "not sent" if state is CreateState.NOT_SENT else "refused"
        await store.fail_create(create_id, REFUSED, f"{reason}: {error}")
        if token is not None:
            await store.release(token)
        if state is CreateState.NOT_SENT:
            self._stop_creating = True
            if isinstance(error, BudgetExceededError) and self.outcome.budget is None:
                self.outcome.budget = error
            if not isinstance(error, ClientClosedError):
                stats.not_created += size
            return False
        assert error is not None
        stats.create_failed += size
        self.outcome.create_errors.append(error)
        self._reporter.event("create_failed", f"line {claim.line}: create failed: {error}")
        if isinstance(error, STOPS_ALL):
            self._stop_creating = True
            self._reporter.event("warning", "no further creates will be sent by this worker")
        return False

    async def _commit(
        self,
        create_id: str,
        outcome: CreateOutcome[_Tag],
        write: Callable[[], Awaitable[list[StoredVideo]]],
    ) -> Sequence[StoredVideo]:
        try:
            return await write()
        except HubUnavailableError:
            # The ids are paid for: keep them on this disk for the user before stopping.
            record = {
                "create": create_id,
                "row": outcome.tag.claim.key,
                "line": outcome.tag.claim.line,
                "ids": [h.id for h in outcome.handles],
                "at": time.time(),
            }
            with (self._out / UNSAVED_IDS_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            raise

    def _budget_stop(self, size: int, estimate: float) -> None:
        self._stop_creating = True
        self.outcome.stats.not_created += size
        if self.outcome.budget is None:
            cap = self._max_credits or 0.0
            self.outcome.budget = BudgetExceededError(
                f"budget: {size} more video(s) (about {estimate:g} credits) would pass the "
                f"job's max_credits={cap:g} across its workers; not sent",
                max_credits=cap,
                charged=0.0,
                reserved=0.0,
                estimate=estimate,
            )
            self._reporter.event("budget", f"stopped creating: {self.outcome.budget}")

    def create_sending(self, ticket: CreateTicket[_Tag]) -> None:
        """Already recorded as sent in the store before it was submitted."""

    def create_finished(self, outcome: CreateOutcome[_Tag]) -> None:
        """Hand the answer to the task that sent it, which commits it to the store at once."""
        if not outcome.tag.answer.done():
            outcome.tag.answer.set_result(outcome)

    # -- following and saving ----------------------------------------------------------------

    def _start_follow(self, video: StoredVideo, handle: TaskHandle) -> None:
        assert self._group is not None
        self._following.add(video.id)
        if video.create_time is not None:
            left = video.create_time / 1000 + VIDEO_RETENTION_SECONDS - time.time()
            if left <= self._expiry_warning:
                self._reporter.event(
                    "warning",
                    f"video {video.id} (line {video.line}) expires in {left / 3600:.1f} h",
                )
        self._group.create_task(self._follow(video, handle))

    async def _follow(self, video: StoredVideo, handle: TaskHandle) -> None:
        try:
            await self._follow_one(video, handle)
        finally:
            self._following.discard(video.id)
            if not self._following:
                self._wake.set()

    async def _follow_one(self, row: StoredVideo, handle: TaskHandle) -> None:
        stats = self.outcome.stats
        store = self._store
        try:
            video = await handle.wait(timeout=self._wait_timeout)
        except VideoFailedError as exc:
            await store.set_status(row.id, int(VideoStatus.FAILED))
            stats.failed += 1
            self.outcome.video_failures.append(exc)
            self._reporter.event("failed", f"line {row.line}: video {row.id} failed")
            return
        except WaitTimeoutError as exc:
            self._skip_videos.add(row.id)
            stats.pending += 1
            self.outcome.timeouts.append(exc)
            self._reporter.event("warning", f"line {row.line}: video {row.id} still not finished")
            return
        except AkoolError as exc:
            self._skip_videos.add(row.id)
            stats.errors += 1
            self.outcome.follow_errors.append(exc)
            self._reporter.event("error", f"line {row.line}: video {row.id}: {exc}")
            return
        stats.completed += 1
        target = self._out / row.file_name
        async with self._download_limit:
            try:
                size = await save_video(self._client, video, target)
            except DownloadError as exc:
                self._skip_videos.add(row.id)
                stats.errors += 1
                self.outcome.download_errors.append(exc)
                self._reporter.event("download_failed", f"line {row.line}: {exc}")
                return
        await store.mark_downloaded(row.id, self.worker, str(target.resolve()), size)
        stats.downloaded += 1
        stats.downloaded_now += 1
        stats.finished_now += 1
        self._reporter.event("downloaded", f"line {row.line}: {target} ({size} bytes)")


def _first(group: BaseExceptionGroup[HubUnavailableError]) -> HubUnavailableError:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        return exc
    raise AssertionError("empty exception group")  # pragma: no cover
