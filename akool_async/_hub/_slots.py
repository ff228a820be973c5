"""Cluster-wide create slots: leases in a sorted set, so a crashed process's slots come back."""

from __future__ import annotations

import uuid

from redis.commands.core import AsyncScript

from .._errors import AkoolValueError
from . import _scripts
from ._connection import HubConnection
from ._records import SlotLease


class CreateSlots:
    """At most ``limit`` creates in flight across the namespace (``{ns}:slots``).

    Each slot is a lease that runs out after ``ttl`` seconds (server time) unless renewed, so
    the slots of a process that died come back by themselves.
    """

    def __init__(self, connection: HubConnection) -> None:
        self.connection = connection
        self.key = connection.key("slots")
        self._scripts: dict[str, AsyncScript] = {}

    def bind(self) -> None:
        """Register the scripts on the (now open) client."""
        with self.connection.guard("register scripts") as client:
            for name in ("ACQUIRE_SLOT", "RENEW_SLOT"):
                self._scripts[name] = client.register_script(getattr(_scripts, name))

    async def acquire(self, limit: int, ttl: float) -> SlotLease | None:
        """Take a slot if fewer than ``limit`` are held; ``None`` if all are taken."""
        if limit < 1 or ttl <= 0:
            raise AkoolValueError("limit must be at least 1 and ttl positive")
        lease = SlotLease(token=uuid.uuid4().hex)
        with self.connection.guard("acquire create slot"):
            ok = await self._scripts["ACQUIRE_SLOT"](
                keys=[self.key], args=[lease.token, limit, ttl]
            )
        return lease if int(ok) else None

    async def renew(self, lease: SlotLease, ttl: float) -> bool:
        """Extend a slot's lease; False if it had already run out (the slot is lost)."""
        with self.connection.guard("renew create slot"):
            ok = await self._scripts["RENEW_SLOT"](keys=[self.key], args=[lease.token, ttl])
        return bool(int(ok))

    async def release(self, lease: SlotLease) -> None:
        """Give a slot back."""
        with self.connection.guard("release create slot") as client:
            await client.zrem(self.key, lease.token)

    async def held(self) -> int:
        """Slots held now, leases that ran out included until the next acquire frees them."""
        with self.connection.guard("read create slots") as client:
            return int(await client.zcard(self.key))
