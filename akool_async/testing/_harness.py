"""Serving an application on a local port: start, the base URL, close (kept apart from the app,
as aiohttp's test_utils keeps its test server apart from the application it serves)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

# How long close() lets in-flight handlers finish before aiohttp cancels them.
SHUTDOWN_TIMEOUT: Final = 0.5


class Harness:
    """Runs one ``web.Application`` at a time on ``host:port``; port 0 picks a free port."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._closed = False

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._url is None:
            raise RuntimeError("FakeAkoolServer is not started: call start() or use async with")
        return self._url

    async def start(self, app: web.Application, host: str, port: int) -> None:
        """Listen on ``host:port``.

        Raises:
            RuntimeError: already started, or closed.
        """
        if self._closed:
            raise RuntimeError("FakeAkoolServer is closed and cannot be restarted")
        if self._runner is not None:
            raise RuntimeError("FakeAkoolServer is already started")
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0][1]
        # A wildcard bind is still reached over loopback.
        url_host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self._url = f"http://{url_host}:{bound}"

    def mark_closed(self) -> None:
        """Refuse any later ``start()``."""
        self._closed = True

    async def close(self) -> None:
        """Stop listening (idempotent); in-flight requests get ``SHUTDOWN_TIMEOUT`` to finish."""
        self._closed = True
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
