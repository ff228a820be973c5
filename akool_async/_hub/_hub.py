"""``RedisHub``: lifecycle, video state, the event stream and shared slow-downs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import backoff
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript

from .._errors import AkoolValueError, ClientClosedError, HubUnavailableError
from . import _scripts
from ._budget import SharedBudget
from ._connection import HubConnection, password_of, redact_url, text, url_password
from ._leader import LeaderLease
from ._pending import PendingRegistry
from ._records import HubEvent, HubStatistics, VideoState
from ._slots import CreateSlots

logger = logging.getLogger("akool_async.redis")

#: AKOOL keeps a video's files 7 days (akool-api.md); its state in Redis lives as long.
STATE_TTL: Final = 7 * 24 * 3600.0
#: Stream entries kept (approximately): far more than a tailer falls behind between reads.
STREAM_MAXLEN: Final = 10_000


def _parse_raw(value: bytes | str | None) -> dict[str, Any]:
    if value is None:
        return {}
    parsed = json.loads(text(value))
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _field(fields: Mapping[Any, Any], name: str) -> Any:
    # A caller-owned client may or may not decode responses: fields come as str or bytes.
    return fields.get(name, fields.get(name.encode()))


class RedisHub:
    """Several processes sharing one pool of videos through Redis.

    A hub made from a URL owns its connection: ``await hub.open()`` / ``await hub.aclose()``
    (or ``async with hub``) open and close it; ``AkoolClient(hub=...)`` does this for you. A
    hub made from a ``redis.asyncio.Redis`` you pass in uses that client and never closes it:
    it stays yours. ``rediss://`` URLs and passwords work; the password never appears in a
    repr, a log line or an error.

    Every key lives under ``{namespace}:``; two namespaces never see each other's ids, events
    or budget. Every method raises ``HubUnavailableError`` on Redis trouble (so the caller can
    fall back to working alone); ``events()`` instead reconnects by itself.

    Args:
        url_or_client: ``redis://[:password@]host:port/db``, ``rediss://...``,
            ``unix:///path``, or a ``redis.asyncio.Redis``.
        namespace: the prefix of every key; processes sharing videos share a namespace.
        leader_ttl: seconds a leader lease lasts unless renewed (renew every third of it).
        heartbeat_ttl: seconds a process counts as alive after its last heartbeat.
        timeout: seconds for connecting and for one command (URL hubs only).
        stream_block: seconds one blocking stream read waits for news before asking again.
        max_concurrent_creates: creates in flight at once across every process of the
            namespace (each process's own ``max_concurrent_creates`` still applies). Slots are
            leases, so a crashed process's slots come back. ``None`` (default): no
            cluster-wide limit.

    Attributes:
        leader: the leader lease (``maintain()``, ``is_leader``, ``release()``).
        pending: the pending-id registry (``register``, ``take_due``, ``reap_orphans``, ...).
        budget: the shared credit budget (``reserve``, ``settle``, ``release``, ``charged``).
        slots: cluster-wide create slots (``acquire``, ``renew``, ``release``).
        process_id: this hub's id in the namespace (host, pid and a random part).
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        namespace: str = "akool",
        leader_ttl: float = 10.0,
        heartbeat_ttl: float = 30.0,
        timeout: float = 5.0,
        stream_block: float = 1.0,
        max_concurrent_creates: int | None = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace or any(c.isspace() for c in namespace):
            raise AkoolValueError("namespace must be a non-empty string without whitespace")
        for name, value in (
            ("leader_ttl", leader_ttl),
            ("heartbeat_ttl", heartbeat_ttl),
            ("timeout", timeout),
            ("stream_block", stream_block),
        ):
            if not value > 0:
                raise AkoolValueError(f"{name} must be positive")
        if isinstance(url_or_client, str):
            self._url: str | None = url_or_client
            self._given: aioredis.Redis | None = None
            where, password = redact_url(url_or_client), url_password(url_or_client)
        elif isinstance(url_or_client, aioredis.Redis):
            self._url = None
            self._given = url_or_client
            where, password = "(caller-owned client)", password_of(url_or_client)
        else:
            raise AkoolValueError("url_or_client must be a URL or a redis.asyncio.Redis")
        self.namespace = namespace
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._timeout = timeout
        self._block_ms = max(1, round(stream_block * 1000))
        if max_concurrent_creates is not None and (
            isinstance(max_concurrent_creates, bool)
            or not isinstance(max_concurrent_creates, int)
            or max_concurrent_creates < 1
        ):
            raise AkoolValueError("max_concurrent_creates must be a positive integer or None")
        #: Creates in flight at once across the namespace (None: no cluster-wide limit).
        self.max_concurrent_creates = max_concurrent_creates
        self._conn = HubConnection(namespace, where=where, password=password)
        self.leader = LeaderLease(self._conn, self.process_id, leader_ttl)
        self.pending = PendingRegistry(self._conn, self.leader, self.process_id, heartbeat_ttl)
        self.budget = SharedBudget(self._conn)
        self.slots = CreateSlots(self._conn)
        self._events_key = self._conn.key("events")
        self._slow_key = self._conn.key("slowdown")
        self._publish: AsyncScript | None = None
        self._slow_down: AsyncScript | None = None
        self._opened = False
        self._events_stopped = False

    def __repr__(self) -> str:
        role = self.leader.role
        return (
            f"RedisHub({self._conn.where!r}, namespace={self.namespace!r}, "
            f"role={role!r}, available={self._conn.available!r})"
        )

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def owns_connection(self) -> bool:
        """True for a hub made from a URL: ``aclose()`` closes its connection."""
        return self._given is None

    @property
    def available(self) -> bool:
        """Whether the last Redis command succeeded."""
        return bool(self._conn.available)

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._conn.closed

    def watch_availability(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``callback(available)`` whenever Redis becomes unreachable or reachable again.

        Returns a function that removes the callback.
        """
        self._conn.listeners.append(callback)
        return lambda: self._conn.listeners.remove(callback)

    async def open(self) -> bool:
        """Connect (URL hubs), load the scripts and check Redis answers.

        Returns whether Redis answered. An unreachable Redis is logged (WARNING), not raised:
        the hub stays open and every later call tries again.

        Raises:
            ClientClosedError: the hub was opened or closed before.
        """
        if self._opened or self._conn.closed:
            raise ClientClosedError("a RedisHub can be opened only once")
        self._opened = True
        if self._given is not None:
            self._conn.client = self._given
        else:
            assert self._url is not None
            self._conn.client = aioredis.Redis.from_url(
                self._url,
                decode_responses=True,
                socket_timeout=self._timeout + self._block_ms / 1000,
                socket_connect_timeout=self._timeout,
                # Fail fast: the caller falls back to local polling, events() reconnects.
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 1),
            )
        with self._conn.guard("register scripts") as client:
            self._publish = client.register_script(_scripts.PUBLISH)
            self._slow_down = client.register_script(_scripts.SLOW_DOWN)
        for part in (self.leader, self.pending, self.budget, self.slots):
            part.bind()
        try:
            await self.ping()
        except HubUnavailableError:
            return False
        return True

    async def aclose(self) -> None:
        """Give up the lease, forget this process's ids, and close the connection if ours.

        Safe to call twice. A caller-owned client is left open.
        """
        if self._conn.closed:
            return
        if self._conn.client is not None:
            try:
                if self.leader.is_leader:
                    await self.leader.release()
                await self.pending.retire()
            except HubUnavailableError as exc:
                logger.warning("Redis hub %s: cleanup at close skipped (%s)", self._conn.where, exc)
        self._conn.closed = True
        if self._given is None and self._conn.client is not None:
            await self._conn.client.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            HubUnavailableError: it does not.
        """
        with self._conn.guard("ping") as client:
            await client.ping()

    # --- video state and events ----------------------------------------------------------

    async def publish(
        self,
        video_id: str,
        status: int,
        video_url: str | None,
        raw_item: Mapping[str, Any],
    ) -> bool:
        """Record a video's state and announce it on the namespace's stream, if it is news.

        The state is kept 7 days. A status never goes back: a final one (3 or 4) never changes,
        and a repeated or older one is ignored. Only what is passed here is written.

        Returns:
            True if the status moved forward (and an event was appended).
        """
        if not isinstance(video_id, str) or not video_id:
            raise AkoolValueError("video_id must be a non-empty string")
        raw = json.dumps(dict(raw_item), separators=(",", ":"), default=str)
        with self._conn.guard("publish"):
            assert self._publish is not None
            entry = await self._publish(
                keys=[self._state_key(video_id), self._events_key],
                args=[
                    video_id,
                    int(status),
                    video_url or "",
                    raw,
                    round(STATE_TTL * 1000),
                    STREAM_MAXLEN,
                ],
            )
        if entry is None:
            return False
        self._conn.counters.events_published += 1
        return True

    async def get_state(self, video_id: str) -> VideoState | None:
        """The latest recorded state of ``video_id``, or ``None`` if no process saw it."""
        with self._conn.guard("read state") as client:
            fields: Mapping[Any, Any] = await client.hgetall(self._state_key(video_id))
        status = _field(fields, "status")
        if status is None:
            return None
        return VideoState(
            video_id=video_id,
            status=int(text(status)),
            video_url=text(_field(fields, "video_url") or "") or None,
            raw=_parse_raw(_field(fields, "raw")),
        )

    async def events(self, last_id: str | None = None) -> AsyncIterator[HubEvent]:
        """Every event of the namespace after ``last_id`` (default: from the first read on).

        Blocking ``XREAD``s from the last entry seen, so nothing is missed across a
        disconnect: on Redis trouble it logs, waits (exponential backoff with jitter) and
        resumes from the last entry it yielded. It ends when the hub is closed.
        """
        cursor = last_id
        waits: Any = None
        while not self.closed and not self._events_stopped:
            try:
                if cursor is None:
                    cursor = await self.latest_event_id()
                with self._conn.guard("read events") as client:
                    reply: Any = await client.xread(
                        {self._events_key: cursor}, count=500, block=self._block_ms
                    )
            except ClientClosedError:
                return
            except HubUnavailableError:
                if waits is None:
                    waits = backoff.expo(base=2, factor=0.05, max_value=5.0)
                    next(waits)  # backoff's generators start with one empty step
                await asyncio.sleep(backoff.full_jitter(next(waits)))
                continue
            waits = None
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    cursor = text(entry_id)
                    event = self._event(cursor, fields)
                    if event is not None:
                        yield event

    def stop_events(self) -> None:
        """End every ``events()`` loop after its current read (at most ``stream_block``).

        Lets a tail finish its blocking read and hand its connection back before the hub
        closes, instead of being cancelled in the middle of it.
        """
        self._events_stopped = True

    def _event(self, entry_id: str, fields: Mapping[Any, Any]) -> HubEvent | None:
        video_id, status = _field(fields, "video_id"), _field(fields, "status")
        if video_id is None or status is None:
            return None  # not ours: someone else wrote to the stream
        counters = self._conn.counters
        counters.events_received += 1
        counters.stream_lag = max(0.0, time.time() - int(entry_id.split("-")[0]) / 1000)
        return HubEvent(
            entry_id=entry_id,
            video_id=text(video_id),
            status=int(text(status)),
            video_url=text(_field(fields, "video_url") or "") or None,
            raw=_parse_raw(_field(fields, "raw")),
        )

    async def latest_event_id(self) -> str:
        """The id of the namespace's newest event (``"0-0"`` if none): tail from here with
        ``events(last_id=...)`` to miss nothing published after this call."""
        with self._conn.guard("read events") as client:
            last: Any = await client.xrevrange(self._events_key, count=1)
        return text(last[0][0]) if last else "0-0"

    def _state_key(self, video_id: str) -> str:
        return self._conn.key("video", video_id)

    # --- shared slow-down ----------------------------------------------------------------

    async def slow_down(self, seconds: float) -> None:
        """Ask every process to hold creates and polls for ``seconds`` (a 1005 or 429 seen).

        Only ever extends a slow-down in force.
        """
        if not seconds > 0:
            return
        until = time.time() + seconds
        with self._conn.guard("slow down"):
            assert self._slow_down is not None
            await self._slow_down(
                keys=[self._slow_key], args=[repr(until), max(1, round(seconds * 1000))]
            )

    async def slowed_until(self) -> float | None:
        """Unix time until which the namespace is slowed down, or ``None``."""
        with self._conn.guard("read slow-down") as client:
            value = await client.get(self._slow_key)
        if value is None:
            return None
        until = float(text(value))
        return until if until > time.time() else None

    # --- statistics ----------------------------------------------------------------------

    def statistics(self) -> HubStatistics:
        """A snapshot of this hub's work."""
        counters = self._conn.counters
        role = self.leader.role
        return HubStatistics(
            role=role,
            available=self.available,
            events_published=counters.events_published,
            events_received=counters.events_received,
            stream_lag=counters.stream_lag,
            fallbacks=counters.fallbacks,
            leader_changes=counters.leader_changes,
        )
