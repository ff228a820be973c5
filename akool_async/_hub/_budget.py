"""One credit budget for every process of a namespace.

``{ns}:budget:committed`` holds charged + reserved credits, ``{ns}:budget:charged`` the settled
ones, ``{ns}:budget:open`` each open reservation. A reservation is checked against the cap
and added in one Lua script, so the committed total never passes the cap whatever the number
of processes. A crashed process's open reservations stay committed: its creates may have been
billed, and the budget must not hand that money out twice.

A reservation whose answer was lost (a timeout after Redis ran it, perhaps twice when the
client sent it again) was never used: it is held once, and given back by the next budget
command that reaches Redis.
"""

from __future__ import annotations

import asyncio
import math
import uuid

from redis.commands.core import AsyncScript

from .._errors import AkoolValueError, HubUnavailableError
from . import _scripts
from ._connection import HubConnection
from ._records import BudgetSnapshot, Reservation


def _amount(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise AkoolValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class SharedBudget:
    """Atomic reservations against one cap, shared by the namespace."""

    def __init__(self, connection: HubConnection) -> None:
        self.connection = connection
        self.committed_key = connection.key("budget", "committed")
        self.charged_key = connection.key("budget", "charged")
        self.open_key = connection.key("budget", "open")
        self._scripts: dict[str, AsyncScript] = {}
        #: Reservations whose answer was lost: maybe held, never used; given back next time.
        self._lost: list[Reservation] = []

    def bind(self) -> None:
        """Register the scripts on the (now open) client."""
        with self.connection.guard("register scripts") as client:
            for name in ("RESERVE", "SETTLE", "RELEASE_RESERVATION"):
                self._scripts[name] = client.register_script(getattr(_scripts, name))

    async def reserve(self, amount: float, cap: float) -> Reservation | None:
        """Hold ``amount`` credits if charged + reserved + ``amount`` stays within ``cap``.

        Returns the reservation, or ``None`` when it does not fit (nothing is held then).
        """
        held = _amount(amount, "amount")
        limit = _amount(cap, "cap")
        await self._give_back_lost()
        reservation = Reservation(id=uuid.uuid4().hex, amount=held)
        try:
            with self.connection.guard("reserve credits"):
                ok = await self._scripts["RESERVE"](
                    keys=[self.committed_key, self.open_key],
                    args=[reservation.id, repr(held), repr(limit)],
                )
        except (HubUnavailableError, asyncio.CancelledError):
            # Redis may have run it (or still may): never used, so given back next time.
            self._lost.append(reservation)
            raise
        return reservation if int(ok) else None

    async def settle(self, reservation: Reservation, actual: float) -> bool:
        """Replace a reservation by what the create really cost; False if already settled."""
        cost = _amount(actual, "actual")
        await self._give_back_lost()
        with self.connection.guard("settle credits"):
            done = await self._scripts["SETTLE"](
                keys=[self.committed_key, self.charged_key, self.open_key],
                args=[reservation.id, repr(cost)],
            )
        return bool(int(done))

    async def release(self, reservation: Reservation) -> bool:
        """Give a reservation back (the create was refused); False if already settled."""
        await self._give_back_lost()
        return await self._release(reservation)

    async def _release(self, reservation: Reservation) -> bool:
        with self.connection.guard("release credits"):
            done = await self._scripts["RELEASE_RESERVATION"](
                keys=[self.committed_key, self.open_key], args=[reservation.id]
            )
        return bool(int(done))

    async def _give_back_lost(self) -> None:
        """Give back the reservations whose answer was lost (raises if Redis is still away)."""
        while self._lost:
            # Off the list while in flight: another budget command may be giving back too.
            reservation = self._lost.pop(0)
            try:
                await self._release(reservation)
            except BaseException:
                self._lost.insert(0, reservation)
                raise

    async def charged(self) -> float:
        """Credits settled by every process of the namespace."""
        return (await self.snapshot()).charged

    async def snapshot(self) -> BudgetSnapshot:
        """Charged and reserved credits of the namespace, read together."""
        with self.connection.guard("read budget") as client:
            committed, charged = await client.mget([self.committed_key, self.charged_key])
        total = float(committed or 0)
        settled = float(charged or 0)
        return BudgetSnapshot(charged=settled, reserved=max(0.0, total - settled))
