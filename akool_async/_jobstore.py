"""The job store: where a bulk job shared by several workers keeps its rows, creates and videos.

Two implementations pass one contract suite (tests/test_jobstore.py): ``SqliteJobStore`` (the
embedded journal; one process at a time) and ``akool_async.redis.RedisJobStore`` (several
processes, on one host or many). The runner (``SharedBulkRunner``) speaks only this protocol.

The contract, in the order a video lives through it:

* ``load`` records each line of the jobs file once; the job keeps the file's digest, and a
  different file under the same job name is refused (``JobConflictError``).
* A worker ``join``s with a lease and renews it (``heartbeat``). Every claim it holds (rows
  to create, videos to follow and save) is valid while its lease lives; when it dies, its
  claims lapse after the lease and other workers take them over.
* ``claim_row`` hands a row with videos still to create to one live worker. ``start_create``
  records a create as *sent* before it leaves, only if the caller still holds the row's claim
  and the row still lacks that many videos: two workers never create one row's videos twice.
* ``finish_create`` writes the ids in the step the answer arrives. ``recover`` turns the *sent*
  creates of dead workers into *unknown* ones: they may have been billed, so they are not sent
  again until ``retry_unknown``.
* ``claim_videos`` hands videos to follow and save to one live worker; ``mark_downloaded``
  records which worker saved the file and where.
* ``retry_failed`` adds a new video for each failed one, at most ``max_times`` per video.
* ``reserve`` / ``settle`` / ``release`` hold the job's one credit budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import attrs

from ._constants import VIDEO_RETENTION_SECONDS
from ._models import Video

# Create states kept by every store (the journal's names).
SENT: Final = "sent"
CREATED: Final = "created"
UNKNOWN: Final = "unknown"
REFUSED: Final = "refused"
ABANDONED: Final = "abandoned"


@attrs.frozen(kw_only=True)
class JobRequest:
    """One line of the jobs file, as the store records it."""

    key: str
    line: int
    fingerprint: str
    body: Mapping[str, Any]
    count: int
    stem: str


@attrs.frozen(kw_only=True)
class LoadResult:
    """What ``load`` did: rows added now, and rows the job already had."""

    added: int
    existing: int


@attrs.frozen(kw_only=True)
class RowClaim:
    """A row this worker may create videos for, and how many it still lacks."""

    key: str
    line: int
    body: Mapping[str, Any]
    missing: int


@attrs.frozen(kw_only=True)
class StoredVideo:
    """A created video and what became of it."""

    id: str
    row: str
    line: int
    file_name: str
    status: int
    create_time: int | None = None
    credits: float | None = None
    #: The worker that saved the file, and where (None until saved).
    worker: str | None = None
    path: str | None = None
    size: int | None = None
    #: 0 for a video the jobs file asked for, n for its n-th ``retry_failed`` replacement.
    generation: int = 0


@attrs.frozen(kw_only=True)
class JobStatus:
    """Where a job stands across its workers (``akool-async jobs status``)."""

    job: str
    rows: Mapping[str, int]
    videos: Mapping[str, int]
    credits: float
    workers: Mapping[str, Mapping[str, Any]]
    unknown: Sequence[Mapping[str, Any]]
    #: Videos not saved yet, and seconds until AKOOL deletes them (oldest first).
    expiring: Sequence[Mapping[str, Any]]

    @property
    def done(self) -> bool:
        """Every video is saved (or failed) and nothing is left to create or in doubt."""
        return (
            self.rows.get("to_create", 0) == 0
            and self.videos.get("open", 0) == 0
            and self.videos.get("unknown", 0) == 0
        )

    def as_dict(self) -> dict[str, Any]:
        """The status as JSON-ready data."""
        return {
            "job": self.job,
            "done": self.done,
            "rows": dict(self.rows),
            "videos": dict(self.videos),
            "credits": round(self.credits, 6),
            "workers": {k: dict(v) for k, v in self.workers.items()},
            "unknown": [dict(u) for u in self.unknown],
            "expiring": [dict(e) for e in self.expiring],
        }


class JobStore(Protocol):
    """Where a shared bulk job lives (see the module docstring for the contract)."""

    job: str

    async def load(self, digest: str, requests: Sequence[JobRequest]) -> LoadResult:
        """Record the job's rows once.

        Raises:
            JobConflictError: the job was loaded from a file with another digest.
        """

    async def join(self, worker: str, lease: float, info: Mapping[str, Any]) -> None:
        """Register ``worker`` as alive for ``lease`` seconds (``info``: host, out dir)."""

    async def heartbeat(self, worker: str, lease: float) -> bool:
        """Renew ``worker``'s lease; False if it had already lapsed (its claims are gone)."""

    async def leave(self, worker: str) -> None:
        """Give up ``worker``'s claims and lease (a clean exit)."""

    async def recover(self) -> list[str]:
        """Mark the in-flight creates of dead workers ``unknown``; returns their rows' keys."""

    async def claim_row(self, worker: str, skip: Sequence[str] = ()) -> RowClaim | None:
        """Claim a row that still lacks videos (not one in ``skip``), or None."""

    async def release_row(self, worker: str, key: str) -> None:
        """Give a row claim back."""

    async def start_create(self, worker: str, key: str, count: int, estimate: float) -> str | None:
        """Record a create of ``count`` videos as sent; None if the claim or the need is gone."""

    async def finish_create(self, create_id: str, videos: Sequence[Video]) -> list[StoredVideo]:
        """Record the videos a create made (claimed by its worker to follow and save)."""

    async def fail_create(
        self,
        create_id: str,
        state: str,
        error: str,
        *,
        credits: float | None = None,
        video_ids: Sequence[str] = (),
    ) -> list[StoredVideo]:
        """Record a refused (``REFUSED``) or unanswered (``UNKNOWN``) create."""

    async def work_left(
        self, skip_rows: Sequence[str], skip_videos: Sequence[str], *, rows: bool = True
    ) -> bool:
        """Whether creates are in flight, videos wait to be saved or (with ``rows``) rows
        still lack videos; rows in ``skip_rows`` and videos in ``skip_videos`` not counted."""

    async def claim_videos(
        self, worker: str, limit: int, skip: Sequence[str] = ()
    ) -> list[StoredVideo]:
        """Claim up to ``limit`` videos to follow and save, not one in ``skip``."""

    async def set_status(self, video_id: str, status: int) -> None:
        """Record a video's latest status (4 closes it)."""

    async def mark_downloaded(self, video_id: str, worker: str, path: str, size: int) -> None:
        """Record that ``worker`` saved the video's file whole at ``path``."""

    async def reopen_downloads(self, worker: str) -> int:
        """Mark the files ``worker`` saved as lost (its machine is gone): they are saved again."""

    async def retry_unknown(self) -> int:
        """Let the videos of unknown creates be created again; returns how many."""

    async def retry_failed(self, max_times: int) -> list[str]:
        """Add a new video for each failed one retried fewer than ``max_times``; their ids."""

    async def reserve(self, amount: float, cap: float) -> str | None:
        """Hold ``amount`` credits of the job's budget if it stays within ``cap``; a token."""

    async def settle(self, token: str, actual: float) -> None:
        """Replace a reservation by what the create cost."""

    async def release(self, token: str) -> None:
        """Give a reservation back (nothing was created or billed)."""

    async def status(self) -> JobStatus:
        """The job across its workers."""

    async def aclose(self) -> None:
        """Close the store (a store given a caller's connection leaves it open)."""


def build_status(
    job: str,
    *,
    now: float,
    rows: Mapping[str, Mapping[str, Any]],
    creates: Mapping[str, Mapping[str, Any]],
    videos: Mapping[str, Mapping[str, Any]],
    rowclaim: Mapping[str, str],
    vclaim: Mapping[str, str],
    leases: Mapping[str, float],
    info: Mapping[str, Mapping[str, Any]],
) -> JobStatus:
    """A ``JobStatus`` from the job's raw records."""
    row_states = {"done": 0, "to_create": 0, "creating": 0, "in_doubt": 0}
    for row in rows.values():
        missing = row["want"] - row["made"] - row["doubt"] - row["flight"]
        if row["flight"] > 0:
            row_states["creating"] += 1
        elif missing > 0:
            row_states["to_create"] += 1
        elif row["doubt"] > 0:
            row_states["in_doubt"] += 1
        else:
            row_states["done"] += 1
    video_states = {
        "wanted": sum(int(r["want"]) for r in rows.values()),
        "created": len(videos),
        "queueing": 0,
        "processing": 0,
        "completed": 0,
        "downloaded": 0,
        "failed": 0,
        "open": 0,
        "unknown": 0,
    }
    expiring: list[dict[str, Any]] = []
    credits = 0.0
    unknown: list[dict[str, Any]] = []
    for create_id, c in creates.items():
        if c["state"] in ("created", "unknown", "abandoned") and c.get("credits") is not None:
            credits += float(c["credits"])
        if c["state"] == "unknown":
            doubt = max(0, int(c["count"]) - int(c.get("created", 0)))
            video_states["unknown"] += doubt
            unknown.append(
                {
                    "create": create_id,
                    "row": c["row"],
                    "videos": doubt,
                    "worker": c.get("worker"),
                    "reason": c.get("error"),
                }
            )
    for video_id, v in videos.items():
        status = int(v["status"])
        if v.get("path"):
            video_states["downloaded"] += 1
        elif status == 4:
            video_states["failed"] += 1
        else:
            video_states["open"] += 1
            name = {1: "queueing", 2: "processing", 3: "completed"}.get(status, "queueing")
            video_states[name] += 1
            if v.get("create_time") is not None:
                left = v["create_time"] / 1000 + VIDEO_RETENTION_SECONDS - now
                expiring.append({"video": video_id, "line": v["line"], "seconds_left": left})
    expiring.sort(key=lambda e: e["seconds_left"])
    workers: dict[str, dict[str, Any]] = {}
    for worker in {*leases, *info, *rowclaim.values(), *vclaim.values()}:
        workers[worker] = {
            **info.get(worker, {}),
            "alive": leases.get(worker, float("-inf")) >= now,
            "rows": sum(1 for w in rowclaim.values() if w == worker),
            "videos": sum(1 for w in vclaim.values() if w == worker),
            "downloaded": sum(1 for v in videos.values() if v.get("worker") == worker),
            "in_flight": sum(
                int(c["count"])
                for c in creates.values()
                if c["state"] == "sent" and c.get("worker") == worker
            ),
        }
    return JobStatus(
        job=job,
        rows=row_states,
        videos=video_states,
        credits=credits,
        workers=workers,
        unknown=unknown,
        expiring=expiring,
    )
