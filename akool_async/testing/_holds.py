"""Holding answers: requests to a held endpoint wait until the test releases them."""

from __future__ import annotations

import asyncio

from ._wire import check_endpoint


class Holds:
    """One gate per held endpoint; a request waits at its endpoint's gate until it opens."""

    def __init__(self) -> None:
        self._gates: dict[str, asyncio.Event] = {}

    def hold(self, endpoint: str) -> None:
        check_endpoint(endpoint)
        self._gates.setdefault(endpoint, asyncio.Event())

    def release(self, endpoint: str | None = None) -> None:
        if endpoint is None:
            endpoints = list(self._gates)
        else:
            check_endpoint(endpoint)
            endpoints = [endpoint]
        for name in endpoints:
            gate = self._gates.pop(name, None)
            if gate is not None:
                gate.set()

    async def pass_gate(self, endpoint: str) -> None:
        """Return at once, or when the hold on ``endpoint`` is released."""
        gate = self._gates.get(endpoint)
        if gate is not None:
            await gate.wait()
