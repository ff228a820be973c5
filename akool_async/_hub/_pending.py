"""The registry of pending video ids shared by every process of a namespace.

* ``{ns}:pending``: a sorted set of ids scored by their next due time (unix seconds).
* ``{ns}:fresh``: ids never polled yet, scored by their first due time: the leader takes
  these first. An id leaves it when rescheduled (it was polled) or dropped.
* ``{ns}:waiters``: per id, how many live processes wait for it.
* ``{ns}:procs``: a sorted set of process ids scored by their heartbeat deadline (server time).
* ``{ns}:proc:{process id}:ids``: the ids one process waits for.

An id leaves the pending set when it is final (``drop_final``), or when no live process waits
for it any more: its last waiter unregistered it, or died (``reap_orphans``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Final

from redis.commands.core import AsyncScript

from .._errors import AkoolValueError
from . import _scripts
from ._connection import HubConnection, text
from ._leader import LeaderLease

#: Per-process keys outlive a crash by at most this long even if nobody reaps them.
_KEY_TTL_MS: Final = 7 * 24 * 3600 * 1000


def _ids(ids: Iterable[str]) -> list[str]:
    out = list(dict.fromkeys(ids))
    if not all(isinstance(i, str) and i for i in out):
        raise AkoolValueError("video ids must be non-empty strings")
    return out


class PendingRegistry:
    """Pending ids of the namespace, who waits for them, and when each is next due."""

    def __init__(
        self, connection: HubConnection, leader: LeaderLease, process_id: str, heartbeat_ttl: float
    ) -> None:
        self.connection = connection
        self.leader = leader
        self.process_id = process_id
        self.heartbeat_ttl = heartbeat_ttl
        self.pending_key = connection.key("pending")
        self.waiters_key = connection.key("waiters")
        self.procs_key = connection.key("procs")
        self.cadence_key = connection.key("cadence")
        self.fresh_key = connection.key("fresh")
        self.own_key = self.ids_key(process_id)
        self._scripts: dict[str, AsyncScript] = {}

    def ids_key(self, process_id: str) -> str:
        """The key of the set of ids ``process_id`` waits for."""
        return self.connection.key("proc", process_id, "ids")

    def bind(self) -> None:
        """Register the scripts on the (now open) client."""
        with self.connection.guard("register scripts") as client:
            for name in ("REGISTER", "UNREGISTER", "REAP", "DEAD_PROCESSES", "HEARTBEAT"):
                self._scripts[name] = client.register_script(getattr(_scripts, name))
            self._scripts["TAKE_DUE"] = client.register_script(_scripts.TAKE_DUE)

    async def register(self, ids: Iterable[str], due: float) -> int:
        """Record that this process waits for ``ids``, first due at ``due`` (unix seconds).

        An id already pending keeps the earlier of its due times. Registering again is harmless
        (do it after ``heartbeat()`` returns False). Returns how many ids were new to this
        process.
        """
        batch = _ids(ids)
        if not batch:
            return 0
        with self.connection.guard("register pending ids"):
            added = await self._scripts["REGISTER"](
                keys=[
                    self.pending_key,
                    self.waiters_key,
                    self.own_key,
                    self.procs_key,
                    self.fresh_key,
                ],
                args=[self.process_id, self.heartbeat_ttl, _KEY_TTL_MS, due, *batch],
            )
        return int(added)

    async def unregister(self, ids: Iterable[str]) -> int:
        """This process no longer waits for ``ids``; return how many left the pending set."""
        batch = _ids(ids)
        if not batch:
            return 0
        with self.connection.guard("unregister pending ids"):
            dropped = await self._scripts["UNREGISTER"](
                keys=[self.pending_key, self.waiters_key, self.own_key, self.fresh_key],
                args=batch,
            )
        return int(dropped)

    async def heartbeat(self) -> bool:
        """Tell the namespace this process is alive; call it every ``heartbeat_ttl / 3``.

        Returns False when this process's registrations were lost (it was reaped after
        missing its heartbeats, or Redis restarted without its data): register the pending ids
        again.
        """
        with self.connection.guard("heartbeat"):
            known = await self._scripts["HEARTBEAT"](
                keys=[self.procs_key, self.own_key],
                args=[self.process_id, self.heartbeat_ttl, _KEY_TTL_MS],
            )
        return bool(known)

    async def take_due(
        self, now: float | None = None, limit: int = 50, claim: float = 30.0
    ) -> list[str]:
        """For the leader: ids due by ``now`` (unix seconds), at most ``limit``.

        Ids never polled yet come first, then the earliest due: however many old ids are
        overdue, a new one is not kept waiting behind them. The ids taken are pushed
        ``claim`` seconds ahead so that nobody takes them again before ``reschedule()`` or
        ``drop_final()`` (unless a process registers one again with an earlier due time); if
        the leader dies mid-tick they come due again after ``claim``.
        Returns ``[]`` and makes this process a follower at once if the lease in Redis is not
        ours.
        """
        due, _ = await self._take(now, limit, claim, fill=False)
        return due

    async def take_call(
        self, now: float | None = None, limit: int = 50, claim: float = 30.0
    ) -> tuple[list[str], list[str]]:
        """``take_due``, with the room left filled: ``(due ids, riders)``.

        Riders are the ids due soonest after ``now``: they ride along in a results call that
        has room (it costs the same with 1 id or 50), and are claimed as the due ones are.
        With no id due there are no riders either.
        """
        return await self._take(now, limit, claim, fill=True)

    async def _take(
        self, now: float | None, limit: int, claim: float, *, fill: bool
    ) -> tuple[list[str], list[str]]:
        if limit < 1:
            raise AkoolValueError("limit must be at least 1")
        at = time.time() if now is None else now
        # Claimed past `at` too: ids claimed now must not count as due by a later horizon.
        until = max(time.time(), at) + claim
        with self.connection.guard("take due ids"):
            taken = await self._scripts["TAKE_DUE"](
                keys=[self.pending_key, self.leader.key, self.fresh_key],
                args=[self.leader.token, at, limit, until, "1" if fill else "0"],
            )
        if taken is None:
            self.leader.mark_lost()
            return [], []
        due = int(taken[0])
        ids = [text(i) for i in taken[1:]]
        return ids[:due], ids[due:]

    async def reschedule(self, ids: Iterable[str], due: float, *, polled: bool = True) -> None:
        """Set the next due time of ids still pending (ids dropped meanwhile stay dropped).

        ``polled``: AKOOL answered for them, so they are no longer fresh. False (their call
        failed): a fresh id keeps its place ahead of old ones, due at ``due``.
        """
        batch = _ids(ids)
        if not batch:
            return
        with self.connection.guard("reschedule pending ids") as client:
            await client.zadd(self.pending_key, dict.fromkeys(batch, due), xx=True)
            if polled:
                await client.zrem(self.fresh_key, *batch)
            else:
                await client.zadd(self.fresh_key, dict.fromkeys(batch, due), xx=True)

    async def drop_final(self, ids: Iterable[str]) -> None:
        """Stop polling ``ids`` (they are final); their waiters still unregister as usual."""
        batch = _ids(ids)
        if not batch:
            return
        with self.connection.guard("drop final ids") as client:
            await client.zrem(self.pending_key, *batch)
            await client.zrem(self.fresh_key, *batch)
            await client.hdel(self.cadence_key, *batch)

    async def set_cadence(self, ids: Iterable[str], seconds: float) -> None:
        """Poll ``ids`` at most every ``seconds`` (ids a webhook reports: polling is their
        backstop only)."""
        batch = _ids(ids)
        if not batch:
            return
        with self.connection.guard("set cadence") as client:
            await client.hset(self.cadence_key, mapping=dict.fromkeys(batch, repr(seconds)))
            await client.pexpire(self.cadence_key, _KEY_TTL_MS)

    async def cadences(self, ids: Sequence[str]) -> list[float | None]:
        """The cadence set for each id (``None``: the leader's own interval)."""
        if not ids:
            return []
        with self.connection.guard("read cadence") as client:
            values = await client.hmget(self.cadence_key, list(ids))
        return [None if v is None else float(text(v)) for v in values]

    async def reap_orphans(self) -> int:
        """Forget processes whose heartbeat ran out, and ids only they waited for.

        Returns the number of ids that left the pending set.
        """
        with self.connection.guard("reap orphans"):
            dead: Sequence[bytes | str] = await self._scripts["DEAD_PROCESSES"](
                keys=[self.procs_key]
            )
        dropped = 0
        for raw in dead:
            dropped += max(0, await self._reap(text(raw), force=False))
        return dropped

    async def retire(self) -> int:
        """Forget this process and every id it waits for (on close); return ids dropped."""
        return max(0, await self._reap(self.process_id, force=True))

    async def _reap(self, process_id: str, *, force: bool) -> int:
        with self.connection.guard("reap orphans"):
            dropped = await self._scripts["REAP"](
                keys=[
                    self.pending_key,
                    self.waiters_key,
                    self.ids_key(process_id),
                    self.procs_key,
                    self.fresh_key,
                ],
                args=[process_id, "1" if force else "0"],
            )
        return int(dropped)

    async def due_times(self, ids: Sequence[str]) -> list[float | None]:
        """The next due time of each id (``None`` if not pending)."""
        if not ids:
            return []
        with self.connection.guard("read pending ids") as client:
            scores = await client.zmscore(self.pending_key, list(ids))
        return [None if s is None else float(s) for s in scores]

    async def count(self) -> int:
        """How many ids of the namespace are pending."""
        with self.connection.guard("read pending ids") as client:
            return int(await client.zcard(self.pending_key))
