"""The bulk job journal: one SQLite file that makes ``akool-async bulk`` crash-safe.

Every create costs credits and AKOOL has no idempotency key, so the journal is written in a
fixed order: a request is recorded before anything is created for it; a create is recorded as
``sent`` before its request leaves (``before_send``); the ids it made are committed in one
transaction in the same step its answer arrives, before anything waits on them. A process that
dies at any point leaves a journal that says exactly what is known: a create still ``sent`` on
the next start was cut off mid-flight, so its outcome is unknown and it is not resent unless
the user asks (``--retry-unknown``).

Commits are synchronous (WAL, ``synchronous=FULL``): a few milliseconds per create or download,
and nothing else runs between an answer and its commit. A lock file next to the journal keeps
two processes from working on one job at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import attrs

from ._errors import AkoolValueError
from ._jobstore import JobRequest
from ._models import Video, VideoStatus

if sys.platform != "win32":  # POSIX; elsewhere the lock is not taken (documented in README).
    import fcntl

SCHEMA_VERSION: Final = 1
DEFAULT_JOURNAL_NAME: Final = "akool-journal.sqlite3"

# Create states. "sent" only lasts while the request is out; "unknown" and "abandoned" hold
# videos that may exist; "refused" and answered shortfalls (errorList) are safe to create again.
SENT: Final = "sent"
CREATED: Final = "created"
UNKNOWN: Final = "unknown"
REFUSED: Final = "refused"
ABANDONED: Final = "abandoned"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    line INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    body TEXT NOT NULL,
    count INTEGER NOT NULL,
    stem TEXT NOT NULL UNIQUE,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS creates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_key TEXT NOT NULL REFERENCES requests(key),
    count INTEGER NOT NULL,
    state TEXT NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    credits REAL,
    error TEXT,
    sent_at REAL NOT NULL,
    answered_at REAL
);
CREATE TABLE IF NOT EXISTS videos (
    id TEXT PRIMARY KEY,
    request_key TEXT NOT NULL REFERENCES requests(key),
    create_id INTEGER NOT NULL REFERENCES creates(id),
    ordinal INTEGER NOT NULL,
    status INTEGER NOT NULL,
    create_time INTEGER,
    credits REAL,
    file_name TEXT NOT NULL UNIQUE,
    downloaded_at REAL,
    size INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS creates_by_request ON creates(request_key);
CREATE INDEX IF NOT EXISTS videos_by_request ON videos(request_key);
"""


class JournalError(AkoolValueError):
    """The journal cannot be used: locked by another run, not a journal, or in conflict."""


@attrs.frozen(kw_only=True)
class JournalCreate:
    """One create attempt."""

    id: int
    request_key: str
    count: int
    state: str
    created: int
    credits: float | None
    error: str | None


@attrs.frozen(kw_only=True)
class JournalVideo:
    """One created video and what became of it."""

    id: str
    request_key: str
    ordinal: int
    status: int
    create_time: int | None
    credits: float | None
    file_name: str
    downloaded_at: float | None
    size: int | None
    error: str | None


class Journal:
    """A bulk job's journal. Use ``with Journal.open(path) as journal:``."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock: IO[bytes] | None) -> None:
        self.path = path
        self._db = connection
        self._lock = lock

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Open (or create) the journal at ``path`` and lock it for this process.

        Raises:
            JournalError: another process holds the journal, or the file is not a journal.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = _take_lock(target.with_name(target.name + ".lock"))
        try:
            db = sqlite3.connect(target, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            _release_lock(lock)
            raise JournalError(f"journal {target}: cannot open: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            # WAL: readers (a test, a second terminal) never block the writer; FULL: a commit
            # survives power loss, since the ids in it stand for credits already spent.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            with _transaction(db):
                # One statement at a time: executescript() would commit mid-transaction.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO meta(key, value) VALUES ('schema', ?), ('created_at', ?)",
                        (str(SCHEMA_VERSION), str(time.time())),
                    )
                elif row["value"] != str(SCHEMA_VERSION):
                    raise JournalError(
                        f"journal {target}: schema {row['value']}, this version reads "
                        f"{SCHEMA_VERSION}"
                    )
        except sqlite3.DatabaseError as exc:
            db.close()
            _release_lock(lock)
            raise JournalError(f"journal {target}: not a usable journal: {exc}") from exc
        except BaseException:
            db.close()
            _release_lock(lock)
            raise
        return cls(target, db, lock)

    def close(self) -> None:
        """Close the database and release the lock. Idempotent."""
        self._db.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            _release_lock(lock)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- notes -------------------------------------------------------------------------------

    def note(self, key: str) -> str | None:
        """A value kept under ``key`` in the journal's notes (used by ``SqliteJobStore``)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"note:{key}",)).fetchone()
        return None if row is None else str(row["value"])

    def notes(self, prefix: str) -> dict[str, str]:
        """Every note whose key starts with ``prefix`` (keys without the prefix)."""
        rows = self._db.execute(
            "SELECT key, value FROM meta WHERE key >= ? AND key < ?",
            (f"note:{prefix}", f"note:{prefix}\uffff"),
        ).fetchall()
        return {row["key"][len("note:") + len(prefix) :]: row["value"] for row in rows}

    def set_notes(self, values: Mapping[str, str | None]) -> None:
        """Keep (or, for None, drop) notes, in one transaction."""
        with _transaction(self._db):
            for key, value in values.items():
                if value is None:
                    self._db.execute("DELETE FROM meta WHERE key = ?", (f"note:{key}",))
                else:
                    self._db.execute(
                        "INSERT INTO meta(key, value) VALUES (?, ?)"
                        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (f"note:{key}", value),
                    )

    # -- requests ----------------------------------------------------------------------------

    def add_requests(self, requests: Iterable[JobRequest]) -> None:
        """Record every request of a job (one transaction), before anything is created.

        A request already in the journal keeps its key and file stem; its line and count are
        updated (raising the count later creates the extra videos).

        Raises:
            JournalError: a request with the same key was recorded with other fields.
        """
        now = time.time()
        with _transaction(self._db):
            for request in requests:
                row = self._db.execute(
                    "SELECT fingerprint FROM requests WHERE key = ?", (request.key,)
                ).fetchone()
                if row is not None:
                    if row["fingerprint"] != request.fingerprint:
                        raise JournalError(
                            f"line {request.line}: request {request.key!r} differs from the "
                            f"one this journal recorded under that id; give it a new id or "
                            f"use another journal"
                        )
                    self._db.execute(
                        "UPDATE requests SET line = ?, count = ? WHERE key = ?",
                        (request.line, request.count, request.key),
                    )
                    continue
                stem = request.stem
                taken = self._db.execute("SELECT 1 FROM requests WHERE stem = ?", (stem,))
                if taken.fetchone() is not None:
                    stem = f"{stem}-{request.fingerprint[:8]}"
                self._db.execute(
                    "INSERT INTO requests(key, line, fingerprint, body, count, stem, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        request.key,
                        request.line,
                        request.fingerprint,
                        json.dumps(dict(request.body), sort_keys=True),
                        request.count,
                        stem,
                        now,
                    ),
                )

    def request(self, key: str) -> JobRequest | None:
        """The recorded request ``key``, if any."""
        row = self._db.execute("SELECT * FROM requests WHERE key = ?", (key,)).fetchone()
        return None if row is None else _request(row)

    def requests(self) -> list[JobRequest]:
        """Every recorded request, in file order."""
        rows = self._db.execute("SELECT * FROM requests ORDER BY line, key").fetchall()
        return [_request(row) for row in rows]

    # -- creates -----------------------------------------------------------------------------

    def recover(self) -> list[JournalCreate]:
        """Mark creates left ``sent`` by a run that died mid-request as ``unknown``.

        Each keeps the estimate ``start_create`` recorded as its cost. Call once after
        opening, before creating anything. Returns the creates marked.
        """
        error = "the previous run stopped while this create was in flight"
        with _transaction(self._db):
            rows = self._db.execute("SELECT * FROM creates WHERE state = ?", (SENT,)).fetchall()
            self._db.execute(
                "UPDATE creates SET state = ?, error = ?, answered_at = ? WHERE state = ?",
                (UNKNOWN, error, time.time(), SENT),
            )
        return [attrs.evolve(_create(row), state=UNKNOWN, error=error) for row in rows]

    def abandon_unknown(self) -> list[JournalCreate]:
        """Mark every ``unknown`` create ``abandoned``: its videos in doubt are created again.

        Videos it is known to have made stay journaled and are not created again.
        """
        with _transaction(self._db):
            rows = self._db.execute("SELECT * FROM creates WHERE state = ?", (UNKNOWN,)).fetchall()
            self._db.execute("UPDATE creates SET state = ? WHERE state = ?", (ABANDONED, UNKNOWN))
        return [_create(row) for row in rows]

    def start_create(self, request_key: str, count: int, *, estimate: float | None = None) -> int:
        """Record that a create for ``count`` videos is about to be sent; returns its id.

        ``estimate`` is what the create may cost. It stands as the create's cost until the
        answer replaces it, so a create cut off by a crash still counts in ``credits_spent``.
        """
        with _transaction(self._db):
            cursor = self._db.execute(
                "INSERT INTO creates(request_key, count, state, credits, sent_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (request_key, count, SENT, estimate, time.time()),
            )
        create_id = cursor.lastrowid
        assert create_id is not None  # an INSERT always sets it
        return create_id

    def finish_create(self, create_id: int, videos: Sequence[Video]) -> list[JournalVideo]:
        """Record the videos a create made, in one transaction; returns their rows."""
        with _transaction(self._db):
            rows = self._add_videos(
                create_id,
                [(v.id, int(v.status), v.create_time, v.deduction_credit) for v in videos],
            )
            credits = sum(row.credits or 0.0 for row in rows)
            self._db.execute(
                "UPDATE creates SET state = ?, created = ?, credits = ?, answered_at = ?"
                " WHERE id = ?",
                (CREATED, len(rows), credits, time.time(), create_id),
            )
        return rows

    def fail_create(
        self,
        create_id: int,
        state: str,
        error: str,
        *,
        credits: float | None = None,
        video_ids: Sequence[str] = (),
    ) -> list[JournalVideo]:
        """Record a create that got no usable answer (``unknown``) or was refused.

        Args:
            credits: what the create may have cost (an ``unknown`` one counts at its estimate).
            video_ids: for an ``unknown`` create, the ids AKOOL certainly made (read from a
                partly unreadable answer). They are recorded as videos to follow and save;
                only the rest of the create stays in doubt.

        Returns:
            The rows of ``video_ids``, in order.
        """
        if state not in (UNKNOWN, REFUSED):
            raise ValueError(f"state must be {UNKNOWN!r} or {REFUSED!r}, got {state!r}")
        if video_ids and state != UNKNOWN:
            raise ValueError("only an unknown create can have made videos")
        with _transaction(self._db):
            # The status is not known yet: "queueing" until the first poll says otherwise.
            queueing = int(VideoStatus.QUEUEING)
            rows = self._add_videos(create_id, [(i, queueing, None, None) for i in video_ids])
            self._db.execute(
                "UPDATE creates SET state = ?, created = ?, error = ?, credits = ?,"
                " answered_at = ? WHERE id = ?",
                (state, len(rows), error, credits, time.time(), create_id),
            )
        return rows

    def _add_videos(
        self,
        create_id: int,
        videos: Sequence[tuple[str, int, int | None, float | None]],
    ) -> list[JournalVideo]:
        """Insert (id, status, create_time, credits) rows of one create; inside a transaction."""
        create = self._db.execute(
            "SELECT request_key FROM creates WHERE id = ?", (create_id,)
        ).fetchone()
        if create is None:
            raise JournalError(f"create {create_id} is not in the journal")
        key = create["request_key"]
        stem = self._db.execute("SELECT stem FROM requests WHERE key = ?", (key,)).fetchone()[
            "stem"
        ]
        ordinal = self._db.execute(
            "SELECT COALESCE(MAX(ordinal), 0) FROM videos WHERE request_key = ?", (key,)
        ).fetchone()[0]
        rows: list[JournalVideo] = []
        for video_id, status, create_time, credits in videos:
            ordinal += 1
            row = JournalVideo(
                id=video_id,
                request_key=key,
                ordinal=ordinal,
                status=status,
                create_time=create_time,
                credits=credits,
                file_name=f"{stem}-{ordinal}.mp4",
                downloaded_at=None,
                size=None,
                error=None,
            )
            self._db.execute(
                "INSERT INTO videos(id, request_key, create_id, ordinal, status, create_time,"
                " credits, file_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id,
                    key,
                    create_id,
                    row.ordinal,
                    row.status,
                    row.create_time,
                    row.credits,
                    row.file_name,
                ),
            )
            rows.append(row)
        return rows

    def creates(self, request_key: str | None = None) -> list[JournalCreate]:
        """Create attempts (of one request, or all), oldest first."""
        if request_key is None:
            rows = self._db.execute("SELECT * FROM creates ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM creates WHERE request_key = ? ORDER BY id", (request_key,)
            ).fetchall()
        return [_create(row) for row in rows]

    def in_doubt(self, request_key: str) -> int:
        """Videos asked for by creates of ``request_key`` whose outcome is unknown.

        Videos such a create is known to have made (``fail_create(video_ids=...)``) are not
        in doubt: they are journaled videos.
        """
        row = self._db.execute(
            "SELECT COALESCE(SUM(MAX(count - created, 0)), 0) FROM creates"
            " WHERE request_key = ? AND state IN (?, ?)",
            (request_key, UNKNOWN, SENT),
        ).fetchone()
        return int(row[0])

    def credits_spent(self) -> float:
        """Credits this job has cost: created videos, plus estimates of unknown creates."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(credits), 0) FROM creates WHERE state IN (?, ?, ?)",
            (CREATED, UNKNOWN, ABANDONED),
        ).fetchone()
        return float(row[0])

    # -- videos ------------------------------------------------------------------------------

    def videos(self, request_key: str | None = None) -> list[JournalVideo]:
        """Created videos (of one request, or all), in creation order."""
        if request_key is None:
            rows = self._db.execute("SELECT * FROM videos ORDER BY create_id, ordinal").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM videos WHERE request_key = ? ORDER BY ordinal", (request_key,)
            ).fetchall()
        return [_video(row) for row in rows]

    def set_status(self, video_id: str, status: int, *, error: str | None = None) -> None:
        """Record a video's latest status."""
        with _transaction(self._db):
            self._db.execute(
                "UPDATE videos SET status = ?, error = ? WHERE id = ?", (status, error, video_id)
            )

    def mark_downloaded(self, video_id: str, size: int) -> None:
        """Record that the video's file is on disk, whole."""
        with _transaction(self._db):
            self._db.execute(
                "UPDATE videos SET downloaded_at = ?, size = ?, error = NULL WHERE id = ?",
                (time.time(), size, video_id),
            )

    def reopen_download(self, video_id: str) -> None:
        """Forget that the video's file was saved (it was lost): it is saved again."""
        with _transaction(self._db):
            self._db.execute(
                "UPDATE videos SET downloaded_at = NULL, size = NULL WHERE id = ?", (video_id,)
            )

    def mark_error(self, video_id: str, error: str) -> None:
        """Record why a video could not be followed or saved (kept for the next run)."""
        with _transaction(self._db):
            self._db.execute("UPDATE videos SET error = ? WHERE id = ?", (error, video_id))


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction (the connection is in autocommit mode otherwise)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _take_lock(path: Path) -> IO[bytes] | None:
    handle = path.open("ab")
    if sys.platform == "win32":  # pragma: no cover
        return handle
    try:
        # Released by the OS when the process dies, even by SIGKILL.
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise JournalError(
            f"journal {path.with_suffix('')} is in use by another akool-async process"
        ) from exc
    return handle


def _release_lock(handle: IO[bytes] | None) -> None:
    if handle is not None:
        handle.close()


def _request(row: sqlite3.Row) -> JobRequest:
    return JobRequest(
        key=row["key"],
        line=row["line"],
        fingerprint=row["fingerprint"],
        body=json.loads(row["body"]),
        count=row["count"],
        stem=row["stem"],
    )


def _create(row: sqlite3.Row) -> JournalCreate:
    return JournalCreate(
        id=row["id"],
        request_key=row["request_key"],
        count=row["count"],
        state=row["state"],
        created=row["created"],
        credits=row["credits"],
        error=row["error"],
    )


def _video(row: sqlite3.Row) -> JournalVideo:
    return JournalVideo(
        id=row["id"],
        request_key=row["request_key"],
        ordinal=row["ordinal"],
        status=row["status"],
        create_time=row["create_time"],
        credits=row["credits"],
        file_name=row["file_name"],
        downloaded_at=row["downloaded_at"],
        size=row["size"],
        error=row["error"],
    )
