"""The leader lease: one process of a namespace at a time runs the cluster poller."""

from __future__ import annotations

import time
from typing import Final

from redis.commands.core import AsyncScript

from . import _scripts
from ._connection import HubConnection, text
from ._records import HubRole

# A lease is trusted locally for this share of its ttl, counted from before the command was
# sent: the server's copy may run out a little early if clocks drift or the answer was slow.
_SAFETY: Final = 0.9


class LeaderLease:
    """``SET {ns}:leader <token> NX PX ttl``, renewed while ours, released only if ours.

    The lease is trusted until ``0.9 * ttl`` after the last successful acquire or renewal was
    sent; a renewal that fails (refused, or Redis unreachable) makes this process a follower
    at once. Call ``maintain()`` about every ``ttl / 3`` seconds.
    """

    def __init__(self, connection: HubConnection, token: str, ttl: float) -> None:
        self.connection = connection
        self.token = token
        self.ttl = ttl
        self.key = connection.key("leader")
        self._valid_until = 0.0
        self._tried = False
        self._was_leader = False
        self._renew: AsyncScript | None = None
        self._release: AsyncScript | None = None

    def bind(self) -> None:
        """Register the scripts on the (now open) client."""
        with self.connection.guard("register scripts") as client:
            self._renew = client.register_script(_scripts.RENEW_LEASE)
            self._release = client.register_script(_scripts.RELEASE_LEASE)

    @property
    def is_leader(self) -> bool:
        """Whether this process holds the lease now (by the local clock)."""
        leader = time.monotonic() < self._valid_until
        if leader != self._was_leader:
            self._was_leader = leader
            self.connection.counters.leader_changes += 1
        return leader

    @property
    def role(self) -> HubRole | None:
        """``"leader"``, ``"follower"``, or ``None`` before the first attempt."""
        if self.is_leader:
            return "leader"
        return "follower" if self._tried else None

    def mark_lost(self) -> None:
        """Stop acting as leader at once (a check in Redis found the lease not ours)."""
        self._valid_until = 0.0
        _ = self.is_leader

    async def maintain(self) -> bool:
        """Renew the lease if held, else try to take it; return whether this process leads.

        Raises:
            HubUnavailableError: Redis is unreachable (this process is then a follower).
        """
        self._tried = True
        sent = time.monotonic()
        ttl_ms = max(1, round(self.ttl * 1000))
        try:
            with self.connection.guard("leader lease") as client:
                if self.is_leader:
                    assert self._renew is not None
                    ok = bool(await self._renew(keys=[self.key], args=[self.token, ttl_ms]))
                else:
                    ok = bool(await client.set(self.key, self.token, nx=True, px=ttl_ms))
        except BaseException:
            self.mark_lost()
            raise
        if ok:
            self._valid_until = sent + self.ttl * _SAFETY
        else:
            self.mark_lost()
        return self.is_leader

    async def holder(self) -> str | None:
        """The token of the process holding the lease now, if any."""
        with self.connection.guard("leader lease") as client:
            value = await client.get(self.key)
        return None if value is None else text(value)

    async def release(self) -> None:
        """Give the lease up if it is still ours (so a successor need not wait for the ttl)."""
        self.mark_lost()
        with self.connection.guard("leader lease"):
            assert self._release is not None
            await self._release(keys=[self.key], args=[self.token])
