"""``SqliteJobStore``: the ``JobStore`` contract on the bulk journal (one process at a time).

Rows, creates and videos are the journal's own tables, so a job run through this store is a
journal ``akool-async bulk`` reads and vice versa. The journal's lock keeps other processes
out, so claims and worker leases live in this object: several workers of one process (tasks
sharing the store) claim and take over as with Redis. The job's digest, where each file went
and the ``retry_failed`` bookkeeping are kept in the journal's notes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ._errors import JobConflictError
from ._jobstore import (
    ABANDONED,
    CREATED,
    REFUSED,
    SENT,
    UNKNOWN,
    JobRequest,
    JobStatus,
    LoadResult,
    RowClaim,
    StoredVideo,
    build_status,
)
from ._journal import Journal, JournalVideo
from ._models import Video, VideoStatus


class SqliteJobStore:
    """A bulk job in a journal file (``JobStore``); opening it locks the file.

    ``with``/``async with SqliteJobStore.open(path, job="nightly") as store:``.
    """

    def __init__(self, journal: Journal, *, job: str) -> None:
        self.job = job
        self._journal = journal
        self._leases: dict[str, float] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._row_claims: dict[str, str] = {}
        self._video_claims: dict[str, str] = {}
        self._create_workers: dict[str, str] = {}
        self._reservations: dict[str, float] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, job: str = "default") -> SqliteJobStore:
        """Open (or create) the journal at ``path``; creates a previous process left in
        flight become unknown.

        Raises:
            JournalError: another process holds the journal, or it is not a journal.
        """
        journal = Journal.open(Path(path))
        journal.recover()
        return cls(journal, job=job)

    async def aclose(self) -> None:
        """Close the journal and release its lock."""
        self._journal.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _alive(self, worker: str | None) -> bool:
        return worker is not None and self._leases.get(worker, float("-inf")) >= time.monotonic()

    def _want(self, key: str, count: int) -> int:
        return count + int(self._journal.note(f"extra:{key}") or 0)

    def _missing(self, key: str, count: int) -> int:
        journal = self._journal
        return self._want(key, count) - len(journal.videos(key)) - journal.in_doubt(key)

    # -- loading -----------------------------------------------------------------------------

    async def load(self, digest: str, requests: Sequence[JobRequest]) -> LoadResult:
        """Record the job's rows once (see ``JobStore.load``)."""
        known = self._journal.note(f"job:{self.job}:digest")
        if known is not None and known != digest:
            raise JobConflictError(
                f"job {self.job!r} was loaded from another jobs file (digest {known[:12]}, "
                f"this file {digest[:12]}); use another job name"
            )
        if known is not None:
            return LoadResult(added=0, existing=len(self._journal.requests()))
        before = {r.key for r in self._journal.requests()}
        self._journal.add_requests(requests)
        self._journal.set_notes({f"job:{self.job}:digest": digest})
        added = sum(1 for r in requests if r.key not in before)
        return LoadResult(added=added, existing=len(requests) - added)

    # -- workers -----------------------------------------------------------------------------

    async def join(self, worker: str, lease: float, info: Mapping[str, Any]) -> None:
        """Register ``worker`` as alive for ``lease`` seconds."""
        self._leases[worker] = time.monotonic() + lease
        self._info[worker] = {**info, "joined_at": time.time()}

    async def heartbeat(self, worker: str, lease: float) -> bool:
        """Renew ``worker``'s lease; False if it had lapsed."""
        was = self._alive(worker)
        self._leases[worker] = time.monotonic() + lease
        return was

    async def leave(self, worker: str) -> None:
        """Drop ``worker``'s lease and claims."""
        self._leases.pop(worker, None)
        for claims in (self._row_claims, self._video_claims):
            for key in [k for k, w in claims.items() if w == worker]:
                del claims[key]

    async def recover(self) -> list[str]:
        """Mark the sent creates of dead workers unknown."""
        rows: list[str] = []
        for create in self._journal.creates():
            if create.state != SENT or self._alive(self._create_workers.get(str(create.id))):
                continue
            worker = self._create_workers.pop(str(create.id), "?")
            self._journal.fail_create(
                create.id,
                UNKNOWN,
                f"worker {worker} stopped while this create was in flight",
                credits=create.credits,
            )
            rows.append(create.request_key)
        return rows

    # -- creating ----------------------------------------------------------------------------

    async def claim_row(self, worker: str, skip: Sequence[str] = ()) -> RowClaim | None:
        """Claim a row that still lacks videos."""
        if not self._alive(worker):
            return None
        for request in self._journal.requests():
            if request.key in skip:
                continue
            owner = self._row_claims.get(request.key)
            if owner is not None and self._alive(owner):
                continue
            missing = self._missing(request.key, request.count)
            if missing > 0:
                self._row_claims[request.key] = worker
                return RowClaim(
                    key=request.key, line=request.line, body=request.body, missing=missing
                )
        return None

    async def release_row(self, worker: str, key: str) -> None:
        """Give a row claim back."""
        if self._row_claims.get(key) == worker:
            del self._row_claims[key]

    async def start_create(self, worker: str, key: str, count: int, estimate: float) -> str | None:
        """Record a create as sent, if ``worker`` still holds the row and it still lacks them."""
        if self._row_claims.get(key) != worker or not self._alive(worker):
            return None
        request = self._journal.request(key)
        if request is None or self._missing(key, request.count) < count:
            return None
        create_id = str(self._journal.start_create(key, count, estimate=estimate))
        self._create_workers[create_id] = worker
        return create_id

    def _stored(self, rows: Sequence[JournalVideo], worker: str | None) -> list[StoredVideo]:
        notes: dict[str, str | None] = {}
        out: list[StoredVideo] = []
        for row in rows:
            request = self._journal.request(row.request_key)
            assert request is not None
            pending = self._journal.note(f"gens:{row.request_key}") or ""
            queue = [g for g in pending.split(",") if g]
            generation = 0
            if queue:
                generation = int(queue.pop(0))
                rest = ",".join(queue)
                self._journal.set_notes({f"gens:{row.request_key}": rest or None})
                notes[f"gen:{row.id}"] = str(generation)
            if worker is not None and row.status != VideoStatus.FAILED:
                self._video_claims[row.id] = worker
            out.append(self._video(row, request.line, generation))
        if notes:
            self._journal.set_notes(notes)
        return out

    def _video(self, row: JournalVideo, line: int, generation: int | None = None) -> StoredVideo:
        where = json.loads(self._journal.note(f"file:{row.id}") or "{}")
        if generation is None:
            generation = int(self._journal.note(f"gen:{row.id}") or 0)
        return StoredVideo(
            id=row.id,
            row=row.request_key,
            line=line,
            file_name=row.file_name,
            status=row.status,
            create_time=row.create_time,
            credits=row.credits,
            worker=where.get("worker") if row.downloaded_at is not None else None,
            path=where.get("path") if row.downloaded_at is not None else None,
            size=row.size,
            generation=generation,
        )

    async def finish_create(self, create_id: str, videos: Sequence[Video]) -> list[StoredVideo]:
        """Record the videos a create made."""
        worker = self._create_workers.pop(create_id, None)
        return self._stored(self._journal.finish_create(int(create_id), videos), worker)

    async def fail_create(
        self,
        create_id: str,
        state: str,
        error: str,
        *,
        credits: float | None = None,
        video_ids: Sequence[str] = (),
    ) -> list[StoredVideo]:
        """Record a refused or unanswered create."""
        worker = self._create_workers.pop(create_id, None)
        rows = self._journal.fail_create(
            int(create_id), state, error, credits=credits, video_ids=video_ids
        )
        return self._stored(rows, worker)

    # -- following and saving ----------------------------------------------------------------

    async def claim_videos(
        self, worker: str, limit: int, skip: Sequence[str] = ()
    ) -> list[StoredVideo]:
        """Claim up to ``limit`` videos to follow and save."""
        if not self._alive(worker):
            return []
        lines = {r.key: r.line for r in self._journal.requests()}
        out: list[StoredVideo] = []
        for row in self._journal.videos():
            if len(out) >= limit:
                break
            if row.id in skip or row.status == VideoStatus.FAILED or row.downloaded_at:
                continue
            owner = self._video_claims.get(row.id)
            if owner is not None and self._alive(owner):
                continue
            self._video_claims[row.id] = worker
            out.append(self._video(row, lines[row.request_key]))
        return out

    async def work_left(
        self, skip_rows: Sequence[str], skip_videos: Sequence[str], *, rows: bool = True
    ) -> bool:
        """Whether work remains for someone (see ``JobStore.work_left``)."""
        journal = self._journal
        if any(c.state == SENT for c in journal.creates()):
            return True
        for request in journal.requests() if rows else []:
            if request.key not in skip_rows and self._missing(request.key, request.count) > 0:
                return True
        return any(
            v.id not in skip_videos and v.status != VideoStatus.FAILED and not v.downloaded_at
            for v in journal.videos()
        )

    async def set_status(self, video_id: str, status: int) -> None:
        """Record a video's status."""
        self._journal.set_status(video_id, status)
        if status == VideoStatus.FAILED:
            self._video_claims.pop(video_id, None)

    async def mark_downloaded(self, video_id: str, worker: str, path: str, size: int) -> None:
        """Record where the file went."""
        self._journal.set_notes({f"file:{video_id}": json.dumps({"worker": worker, "path": path})})
        self._journal.set_status(video_id, int(VideoStatus.COMPLETED))
        self._journal.mark_downloaded(video_id, size)
        self._video_claims.pop(video_id, None)

    async def reopen_downloads(self, worker: str) -> int:
        """Save again the files ``worker`` saved."""
        lost = [
            video_id
            for video_id, raw in self._journal.notes("file:").items()
            if json.loads(raw).get("worker") == worker
        ]
        for video_id in lost:
            self._journal.reopen_download(video_id)
        self._journal.set_notes({f"file:{video_id}": None for video_id in lost})
        return len(lost)

    async def retry_unknown(self) -> int:
        """Let the videos of unknown creates be created again."""
        return sum(max(0, c.count - c.created) for c in self._journal.abandon_unknown())

    async def retry_failed(self, max_times: int) -> list[str]:
        """Ask for a new video for each failed one retried fewer than ``max_times``."""
        notes: dict[str, str | None] = {}
        extra: dict[str, int] = {}
        gens: dict[str, list[str]] = {}
        retried: list[str] = []
        for row in self._journal.videos():
            if row.status != VideoStatus.FAILED or self._journal.note(f"retried:{row.id}"):
                continue
            generation = int(self._journal.note(f"gen:{row.id}") or 0)
            if generation >= max_times:
                continue
            notes[f"retried:{row.id}"] = "1"
            key = row.request_key
            extra[key] = extra.get(key, int(self._journal.note(f"extra:{key}") or 0)) + 1
            queue = gens.setdefault(
                key, [g for g in (self._journal.note(f"gens:{key}") or "").split(",") if g]
            )
            queue.append(str(generation + 1))
            retried.append(row.id)
        notes.update({f"extra:{k}": str(v) for k, v in extra.items()})
        notes.update({f"gens:{k}": ",".join(v) for k, v in gens.items()})
        self._journal.set_notes(notes)
        return retried

    # -- the job's budget --------------------------------------------------------------------

    async def reserve(self, amount: float, cap: float) -> str | None:
        """Hold ``amount`` credits if the job's credits stay within ``cap``."""
        committed = self._journal.credits_spent() + sum(self._reservations.values())
        if committed + amount > cap + 1e-9:
            return None
        token = uuid.uuid4().hex
        self._reservations[token] = amount
        return token

    async def settle(self, token: str, actual: float) -> None:
        """The create's cost is in the journal now: drop the reservation."""
        self._reservations.pop(token, None)

    async def release(self, token: str) -> None:
        """Give a reservation back."""
        self._reservations.pop(token, None)

    # -- status ------------------------------------------------------------------------------

    async def status(self) -> JobStatus:
        """The job as this journal knows it."""
        journal = self._journal
        requests = journal.requests()
        creates = journal.creates()
        videos = journal.videos()
        rows: dict[str, dict[str, Any]] = {}
        for request in requests:
            flight = sum(
                c.count for c in creates if c.request_key == request.key and c.state == SENT
            )
            doubt = journal.in_doubt(request.key) - flight
            rows[request.key] = {
                "line": request.line,
                "want": self._want(request.key, request.count),
                "made": sum(1 for v in videos if v.request_key == request.key),
                "doubt": doubt,
                "flight": flight,
            }
        files = {k: json.loads(v) for k, v in journal.notes("file:").items()}
        lines = {r.key: r.line for r in requests}
        raw_videos: dict[str, dict[str, Any]] = {}
        for v in videos:
            where = files.get(v.id, {}) if v.downloaded_at is not None else {}
            raw_videos[v.id] = {
                "row": v.request_key,
                "line": lines[v.request_key],
                "status": v.status,
                "create_time": v.create_time,
                "worker": where.get("worker"),
                # A journal written by plain ``bulk`` records the file, not where it went.
                "path": where.get("path") or (v.file_name if v.downloaded_at else None),
            }
        raw_creates = {
            str(c.id): {
                "row": c.request_key,
                "count": c.count,
                "created": c.created,
                "state": c.state,
                "credits": c.credits,
                "error": c.error,
                "worker": self._create_workers.get(str(c.id)),
            }
            for c in creates
            if c.state in (SENT, CREATED, UNKNOWN, ABANDONED, REFUSED)
        }
        now = time.monotonic()
        return build_status(
            self.job,
            now=time.time(),
            rows=rows,
            creates=raw_creates,
            videos=raw_videos,
            rowclaim=self._row_claims,
            vclaim=self._video_claims,
            leases={w: time.time() + (d - now) for w, d in self._leases.items()},
            info=self._info,
        )
