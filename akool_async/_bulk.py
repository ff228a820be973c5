"""Resumable bulk jobs: a JSONL file of requests in, every video downloaded, crash-safe.

The runner sends its batches (at most 10 videos, or the model's ``max_count``, each) through
the client's create pipeline as one ``CreateRun`` it observes: each create is journaled as
``sent`` (with its estimated cost) right before it leaves and its ids are committed the moment
it answers (see ``_journal``). Then it follows every video to the end
and saves its file with ``AkoolClient.download``. Ids read from a partly unreadable answer are
real videos: they are journaled and followed like the others, and only the rest of that create
is in doubt.

A re-run with the same journal:

* never creates a request's videos again: it creates only the shortfall (count minus the
  videos it has, minus those in doubt);
* re-attaches to every video not finished or not yet on disk;
* leaves creates whose outcome is unknown alone unless ``retry_unknown`` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from ._budget import price_key
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
from ._downloads import remove_stale_parts
from ._errors import (
    AkoolError,
    AkoolValueError,
    BudgetExceededError,
    ClientClosedError,
    CreateOutcomeUnknownError,
    DownloadError,
    VideoFailedError,
    WaitTimeoutError,
)
from ._jobstore import JobRequest
from ._journal import REFUSED, UNKNOWN, Journal, JournalVideo
from ._models import Video, VideoStatus
from ._polling import TaskHandle
from ._requests import VideoRequest

#: JSONL fields that map onto ``VideoRequest`` (``webhookurl``, the wire spelling, is accepted).
REQUEST_FIELDS: Final = (
    "image_url",
    "prompt",
    "resolution",
    "video_length",
    "model_name",
    "negative_prompt",
    "extend_prompt",
    "last_image_url",
    "generate_audio",
    "count",
    "webhook_url",
    "extra_body",
)
REQUIRED_FIELDS: Final = ("image_url", "prompt", "resolution", "video_length")
_ALIASES: Final = {"webhookurl": "webhook_url"}
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")
#: How often the live display and the status events look at the videos being followed.
DEFAULT_STATUS_TICK: Final = 0.25


# --- the job file ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class JobLine:
    """One valid line of a jobs file."""

    line: int
    key: str
    request: VideoRequest
    fingerprint: str
    stem: str

    def as_job_request(self) -> JobRequest:
        """The journal's (and the job store's) record of this line."""
        return JobRequest(
            key=self.key,
            line=self.line,
            fingerprint=self.fingerprint,
            body=attrs.asdict(self.request),
            count=self.request.count,
            stem=self.stem,
        )


@attrs.frozen(kw_only=True)
class LineError:
    """A line of the jobs file that cannot be used, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def parse_jobs(lines: Iterable[bytes | str]) -> tuple[list[JobLine], list[LineError]]:
    """Parse JSONL job lines (blank lines skipped); returns the valid lines and the errors."""
    jobs: list[JobLine] = []
    errors: list[LineError] = []
    seen_ids: dict[str, int] = {}
    occurrences: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            errors.append(LineError(line=number, message="not valid UTF-8"))
            continue
        if not text.strip():
            continue
        try:
            job = _parse_line(number, text, seen_ids, occurrences)
        except _BadLine as exc:
            errors.append(LineError(line=number, message=str(exc)))
            continue
        jobs.append(job)
    return jobs, errors


def load_jobs(path: Path) -> tuple[list[JobLine], list[LineError]]:
    """Read and parse a jobs file.

    Raises:
        AkoolValueError: the file cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AkoolValueError(f"jobs file {path}: {exc.strerror or exc}") from exc
    return parse_jobs(data.splitlines())


class _BadLine(Exception):
    pass


def _parse_line(
    number: int, text: str, seen_ids: dict[str, int], occurrences: dict[str, int]
) -> JobLine:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(item, dict):
        raise _BadLine(f"expected a JSON object, got {type(item).__name__}")
    fields: dict[str, Any] = {}
    caller_id: str | None = None
    for name, value in item.items():
        if name == "id":
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise _BadLine("id: must be a non-empty string of at most 200 characters")
            caller_id = value
            continue
        field = _ALIASES.get(name, name)
        if field not in REQUEST_FIELDS:
            raise _BadLine(f"unknown field {name!r}; expected: id, {', '.join(REQUEST_FIELDS)}")
        if field in fields:
            raise _BadLine(f"{field} given twice")
        fields[field] = value
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise _BadLine(f"missing required field(s): {', '.join(missing)}")
    try:
        request = VideoRequest(**fields)
    except AkoolValueError as exc:
        raise _BadLine(str(exc)) from None
    except TypeError as exc:  # pragma: no cover - every field name was checked above
        raise _BadLine(str(exc)) from None
    # The count is left out: raising it later must add videos, not make a new request.
    identity = {k: v for k, v in attrs.asdict(request).items() if k != "count"}
    if request.extra_body is None:
        # Lines journaled before extra_body existed must keep their fingerprint.
        del identity["extra_body"]
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    if caller_id is not None:
        if caller_id in seen_ids:
            raise _BadLine(f"id {caller_id!r} already used on line {seen_ids[caller_id]}")
        seen_ids[caller_id] = number
        key = f"id:{caller_id}"
        stem = _file_stem(caller_id)
    else:
        # Identical lines are told apart by their order, not their (editable) line number.
        occurrence = occurrences.get(fingerprint, 0) + 1
        occurrences[fingerprint] = occurrence
        key = f"auto:{fingerprint[:24]}" + (f":{occurrence}" if occurrence > 1 else "")
        stem = f"line{number}"
    return JobLine(line=number, key=key, request=request, fingerprint=fingerprint, stem=stem)


def _file_stem(caller_id: str) -> str:
    stem = _UNSAFE_NAME.sub("_", caller_id).strip("._") or "video"
    return stem[:80]


# --- running a job ---------------------------------------------------------------------------


class Reporter(Protocol):
    """Where the runner reports progress (the CLI's live display or plain lines)."""

    def event(self, kind: str, message: str) -> None:
        """One thing happened. ``kind`` is e.g. created, completed, downloaded, warning."""

    def refresh(self, stats: BulkStats) -> None:
        """The counts changed (called a few times a second at most)."""


@attrs.define(kw_only=True)
class BulkStats:
    """Where a bulk job stands; the live display and the summary read it."""

    requests: int = 0
    wanted: int = 0
    created: int = 0
    created_now: int = 0
    queueing: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    unknown: int = 0
    downloaded: int = 0
    downloaded_now: int = 0
    create_failed: int = 0
    not_created: int = 0
    pending: int = 0
    errors: int = 0
    credits: float = 0.0
    credits_now: float = 0.0
    started: float = attrs.field(factory=time.monotonic)
    finished_now: int = 0

    @property
    def remaining(self) -> int:
        """Videos still to be finished and saved in this run."""
        done = self.downloaded + self.failed + self.unknown + self.create_failed
        return max(0, self.wanted - done - self.not_created - self.errors)

    def eta(self) -> float | None:
        """Seconds left at this run's pace so far (None before anything finished)."""
        if self.finished_now == 0 or self.remaining == 0:
            return None
        elapsed = time.monotonic() - self.started
        return self.remaining * elapsed / self.finished_now

    def as_dict(self) -> dict[str, Any]:
        """The summary fields, for ``--json``."""
        return {
            "requests": self.requests,
            "wanted": self.wanted,
            "created": self.created,
            "created_this_run": self.created_now,
            "completed": self.completed,
            "failed": self.failed,
            "unknown": self.unknown,
            "downloaded": self.downloaded,
            "create_failed": self.create_failed,
            "not_created": self.not_created,
            "pending": self.pending,
            "errors": self.errors,
            "credits": round(self.credits, 6),
            "credits_this_run": round(self.credits_now, 6),
        }


@attrs.define(kw_only=True)
class BulkOutcome:
    """What a bulk run ended with; the CLI turns it into a summary and an exit code."""

    stats: BulkStats
    #: (request key, line, reason) of creates whose outcome is unknown, this run or before.
    unknown: list[tuple[str, int, str]] = attrs.Factory(list)
    budget: BudgetExceededError | None = None
    create_errors: list[AkoolError] = attrs.Factory(list)
    follow_errors: list[AkoolError] = attrs.Factory(list)
    video_failures: list[VideoFailedError] = attrs.Factory(list)
    #: Videos that had failed in earlier runs (not created again).
    failed_before: int = 0
    download_errors: list[DownloadError] = attrs.Factory(list)
    timeouts: list[WaitTimeoutError] = attrs.Factory(list)


class BulkRunner(CreateObserver[JobLine]):
    """Runs one bulk job against a client, recording everything in a journal.

    Args:
        client: an open ``AkoolClient``: its ``max_credits`` is the run's budget and its
            ``max_concurrent_creates`` the number of batch creates in flight at once.
        journal: the job's journal, already holding the job's requests.
        out_dir: where the video files go.
        reporter: progress sink.
        download_concurrency: downloads in flight at once.
        wait_timeout: seconds to wait for each video (None: forever).
        expiry_warning: warn when a video to download expires within this many seconds.
    """

    def __init__(
        self,
        client: AkoolClient,
        journal: Journal,
        out_dir: Path,
        reporter: Reporter,
        *,
        download_concurrency: int,
        wait_timeout: float | None,
        expiry_warning: float,
        status_tick: float = DEFAULT_STATUS_TICK,
    ) -> None:
        self._client = client
        self._core = client_core(client)
        self._journal = journal
        self._out = out_dir
        self._reporter = reporter
        self._run = self._core.creates.run([self])
        self._create_ids: dict[CreateTicket[JobLine], int] = {}
        self._warned_stop = False
        self._download_limit = asyncio.Semaphore(download_concurrency)
        self._wait_timeout = wait_timeout
        self._expiry_warning = expiry_warning
        self._status_tick = status_tick
        self._following: dict[str, TaskHandle] = {}
        self._last_status: dict[str, VideoStatus | None] = {}
        self._group: asyncio.TaskGroup | None = None
        self.stats = BulkStats()
        self.outcome = BulkOutcome(stats=self.stats)

    async def run(self, jobs: list[JobLine], *, spent_before: float) -> BulkOutcome:
        """Create what is missing, follow every unfinished video, save every file."""
        journal = self._journal
        stats = self.stats
        stats.requests = len(jobs)
        stats.credits = spent_before
        self._seed_prices(jobs)
        plan: list[tuple[JobLine, int]] = []
        follow: list[tuple[JobLine, JournalVideo]] = []
        for job in jobs:
            stats.wanted += job.request.count
            videos = journal.videos(job.key)
            in_doubt = journal.in_doubt(job.key)
            stats.created += len(videos)
            stats.unknown += in_doubt
            if in_doubt:
                self.outcome.unknown.extend(
                    (job.key, job.line, c.error or "create outcome unknown")
                    for c in journal.creates(job.key)
                    if c.state == UNKNOWN and c.count > c.created
                )
            for video in videos:
                self._classify_known(job, video, follow)
            shortfall = job.request.count - len(videos) - in_doubt
            plan.extend((job, size) for size in plan_batches(max(0, shortfall), self._cap(job)))
        if stats.created or stats.unknown:
            self._reporter.event(
                "resume",
                f"journal: {stats.created} video(s) known, {stats.downloaded} on disk, "
                f"{len(follow)} to follow, {stats.unknown} in doubt, "
                f"{sum(n for _, n in plan)} to create",
            )
        self._warn_expiry(follow)
        watcher = asyncio.create_task(self._watch(), name="akool-async-bulk-status")
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for job, row in follow:
                    self._start_follow(job, row, self._client.image_to_video.handle(row.id))
                group.create_task(self._create_all(plan))
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self._group = None
        self._count_statuses()
        self._reporter.refresh(stats)
        return self.outcome

    # -- planning ----------------------------------------------------------------------------

    def _seed_prices(self, jobs: list[JobLine]) -> None:
        """Teach the budget the prices earlier runs of this job were charged."""
        for job in jobs:
            for video in self._journal.videos(job.key):
                if video.credits is not None:
                    self._core.budget.observe(price_key(job.request), video.credits)

    def _cap(self, job: JobLine) -> int | None:
        """The model's ``max_count``, when the client knows the model list."""
        return self._core.catalog.max_count(job.request.model_name)

    def _classify_known(
        self, job: JobLine, video: JournalVideo, follow: list[tuple[JobLine, JournalVideo]]
    ) -> None:
        stats = self.stats
        path = self._out / video.file_name
        if video.status == VideoStatus.FAILED:
            stats.failed += 1
            self.outcome.failed_before += 1
            return
        if path.is_file():
            stats.completed += 1
            stats.downloaded += 1
            if video.downloaded_at is None:
                # Killed between the rename and its journal entry: the file is whole.
                self._journal.mark_downloaded(video.id, path.stat().st_size)
            return
        remove_stale_parts(path)
        follow.append((job, video))

    def _warn_expiry(self, follow: list[tuple[JobLine, JournalVideo]]) -> None:
        now = time.time()
        for job, video in follow:
            if video.create_time is None:
                continue
            left = video.create_time / 1000 + VIDEO_RETENTION_SECONDS - now
            if left <= 0:
                self._reporter.event(
                    "warning",
                    f"video {video.id} (line {job.line}) passed AKOOL's 7-day retention "
                    f"{_duration(-left)} ago; it is probably gone",
                )
            elif left <= self._expiry_warning:
                self._reporter.event(
                    "warning",
                    f"video {video.id} (line {job.line}) expires in {_duration(left)}: "
                    f"downloading it now",
                )

    # -- creating ----------------------------------------------------------------------------

    async def _create_all(self, plan: list[tuple[JobLine, int]]) -> None:
        # submit() waits for a create slot: only as many creates as the client sends at once
        # (its max_concurrent_creates, the one limit) are in flight.
        for job, size in plan:
            if self._run.stopped:
                self.stats.not_created += size
                continue
            await self._run.submit(job.request, size, job)
        await self._run.join()

    def create_sending(self, ticket: CreateTicket[JobLine]) -> None:
        """Journal the create before it leaves: a crash from here on is "unknown"."""
        # It counts at its estimate until an answer says what it cost.
        self._create_ids[ticket] = self._journal.start_create(
            ticket.tag.key, ticket.count, estimate=ticket.estimate
        )

    def create_finished(self, outcome: CreateOutcome[JobLine]) -> None:
        """Commit the outcome to the journal in the same step its answer arrived."""
        create_id = None if outcome.ticket is None else self._create_ids.pop(outcome.ticket)
        job, size, error = outcome.tag, outcome.count, outcome.error
        if outcome.state is CreateState.CREATED:
            assert create_id is not None
            assert outcome.batch is not None
            self._created(job, size, create_id, outcome)
        elif outcome.state is CreateState.UNKNOWN:
            assert create_id is not None
            assert isinstance(error, CreateOutcomeUnknownError)
            assert outcome.ticket is not None
            self._unknown_outcome(job, size, create_id, outcome.ticket.estimate, outcome, error)
        elif outcome.state is CreateState.NOT_SENT and not isinstance(error, ClientClosedError):
            self.stats.not_created += size
            if isinstance(error, BudgetExceededError) and self.outcome.budget is None:
                self.outcome.budget = error
                self._reporter.event("budget", f"stopped creating: {error}")
        else:
            assert error is not None
            if create_id is not None:
                self._journal.fail_create(create_id, REFUSED, str(error))
            self.stats.create_failed += size
            self.outcome.create_errors.append(error)
            self._reporter.event("create_failed", f"line {job.line}: create failed: {error}")
            if isinstance(error, STOPS_ALL) and not self._warned_stop:
                self._warned_stop = True
                self._reporter.event("warning", "no further creates will be sent in this run")

    def _created(
        self, job: JobLine, size: int, create_id: int, outcome: CreateOutcome[JobLine]
    ) -> None:
        batch = outcome.batch
        assert batch is not None
        # Same step as the answer: nothing else runs before these ids are committed.
        rows = self._journal.finish_create(create_id, batch.videos)
        stats = self.stats
        stats.created += len(rows)
        stats.created_now += len(rows)
        stats.credits += batch.deduction_credit
        stats.credits_now += batch.deduction_credit
        shortfall = size - len(rows)
        if shortfall:
            stats.create_failed += shortfall
            self._reporter.event(
                "create_failed",
                f"line {job.line}: AKOOL created {len(rows)} of {size}; the other "
                f"{shortfall} failed ({len(batch.errors)} in errorList); a re-run creates them",
            )
        self._reporter.event(
            "created",
            f"line {job.line}: created {len(rows)} video(s) "
            f"({batch.deduction_credit:g} credits): {' '.join(r.id for r in rows)}",
        )
        for row, handle in zip(rows, batch.handles, strict=True):
            self._start_follow(job, row, handle)

    def _unknown_outcome(
        self,
        job: JobLine,
        size: int,
        create_id: int,
        estimate: float,
        outcome: CreateOutcome[JobLine],
        exc: CreateOutcomeUnknownError,
    ) -> None:
        """Journal a create without a usable answer; follow the ids it certainly made."""
        stats = self.stats
        # Ids read from a partly unreadable answer are real, paid videos: journal them
        # like created ones (same step, before any await) so no re-run creates them again.
        handles = {h.id: h for h in outcome.handles}
        rows = self._journal.fail_create(
            create_id, UNKNOWN, str(exc), credits=estimate, video_ids=list(handles)
        )
        in_doubt = max(0, size - len(rows))
        stats.created += len(rows)
        stats.created_now += len(rows)
        stats.unknown += in_doubt
        stats.credits += estimate
        stats.credits_now += estimate
        if rows:
            self._reporter.event(
                "created",
                f"line {job.line}: created {len(rows)} video(s) (cost unknown): "
                f"{' '.join(r.id for r in rows)}",
            )
        if in_doubt:
            self.outcome.unknown.append((job.key, job.line, str(exc)))
            self._reporter.event(
                "unknown",
                f"line {job.line}: create of {size} video(s) has an unknown outcome for "
                f"{in_doubt} of them; not retried (see --retry-unknown): {exc}",
            )
        else:
            self._reporter.event(
                "warning",
                f"line {job.line}: the create answer was partly unreadable, but it named all "
                f"{size} video(s); following them: {exc}",
            )
        for row in rows:
            self._start_follow(job, row, handles.get(row.id) or self._core.track(row.id))

    # -- following and saving ----------------------------------------------------------------

    def _start_follow(self, job: JobLine, row: JournalVideo, handle: TaskHandle) -> None:
        assert self._group is not None  # only called while run() holds the group
        self._following[row.id] = handle
        self._last_status[row.id] = handle.status
        self._group.create_task(self._follow(job, row, handle))

    async def _follow(self, job: JobLine, row: JournalVideo, handle: TaskHandle) -> None:
        stats = self.stats
        try:
            video = await handle.wait(timeout=self._wait_timeout)
        except VideoFailedError as exc:
            self._journal.set_status(row.id, int(VideoStatus.FAILED))
            stats.failed += 1
            stats.finished_now += 1
            self.outcome.video_failures.append(exc)
            self._reporter.event("failed", f"line {job.line}: video {row.id} failed")
            return
        except WaitTimeoutError as exc:
            stats.pending += 1
            stats.errors += 1
            self.outcome.timeouts.append(exc)
            self._reporter.event(
                "warning", f"line {job.line}: video {row.id} still not finished; re-run to resume"
            )
            return
        except AkoolError as exc:
            self._journal.mark_error(row.id, str(exc))
            stats.errors += 1
            self.outcome.follow_errors.append(exc)
            self._reporter.event("error", f"line {job.line}: video {row.id}: {exc}")
            return
        finally:
            self._following.pop(row.id, None)
            self._last_status.pop(row.id, None)
        self._journal.set_status(row.id, int(VideoStatus.COMPLETED))
        stats.completed += 1
        self._reporter.event("completed", f"line {job.line}: video {row.id} completed")
        target = self._out / row.file_name
        async with self._download_limit:
            try:
                size = await save_video(self._client, video, target)
            except DownloadError as exc:
                self._journal.mark_error(row.id, str(exc))
                stats.errors += 1
                stats.finished_now += 1
                self.outcome.download_errors.append(exc)
                self._reporter.event("download_failed", f"line {job.line}: {exc}")
                return
        self._journal.mark_downloaded(row.id, size)
        stats.downloaded += 1
        stats.downloaded_now += 1
        stats.finished_now += 1
        self._reporter.event("downloaded", f"line {job.line}: {target} ({size} bytes)")

    async def _watch(self) -> None:
        """Report status changes and refresh the display a few times a second."""
        while True:
            for video_id, handle in list(self._following.items()):
                status = handle.status
                if status is not None and status != self._last_status.get(video_id):
                    self._last_status[video_id] = status
                    if status is VideoStatus.PROCESSING:
                        self._reporter.event("processing", f"video {video_id} processing")
            self._count_statuses()
            self._reporter.refresh(self.stats)
            await asyncio.sleep(self._status_tick)

    def _count_statuses(self) -> None:
        queueing = processing = 0
        for handle in self._following.values():
            if handle.status is VideoStatus.PROCESSING:
                processing += 1
            elif not handle.done():
                queueing += 1
        self.stats.queueing = queueing
        self.stats.processing = processing


async def save_video(client: AkoolClient, video: Video, target: Path) -> int:
    """Download ``video`` to ``target`` (replacing it) and return its size in bytes.

    Every failure is a ``DownloadError``: a bad target (an ``AkoolValueError``) too, so a
    runner records one kind of error per video.
    """
    try:
        await asyncio.to_thread(remove_stale_parts, target)
        await client.download(video, target, overwrite=True)
    except DownloadError:
        raise
    except AkoolValueError as exc:
        raise DownloadError(str(exc), video_id=video.id) from exc
    return (await asyncio.to_thread(target.stat)).st_size


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def describe_unknown(items: Iterable[tuple[str, int, str]]) -> list[str]:
    """One line per create whose outcome is unknown."""
    return [f"line {line} ({key}): {reason}" for key, line, reason in items]
