"""``AkoolClient``: owns the session, the create limit and the shared poller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload

from ._auth import REDACTED, ApiKeyAuth, Auth, TokenAuth
from ._budget import CreditBudget
from ._constants import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_CREATES,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
)
from ._downloads import DEFAULT_DOWNLOAD_CONCURRENCY, download_video, download_videos
from ._errors import AkoolError, AkoolResponseError, AkoolValueError, ClientClosedError
from ._generate import as_completed, wait_all
from ._models import Video, check_seconds
from ._polling import DEFAULT, Poller, PollPolicy, TaskHandle, _Default
from ._resources.account import Account
from ._resources.ai_models import AIModels
from ._resources.image_to_video import ImageToVideo
from ._resources.webhooks import Webhooks
from ._transport import TOKEN_PATH, RetryPolicy, Transport

logger = logging.getLogger("akool_async")


class AkoolClient:
    """An asyncio client for AKOOL's Image-to-Video API.

    Use it with ``async with AkoolClient(...) as client:`` or call ``await client.aclose()``.
    One ``aiohttp`` session and one poller per client; share the client across tasks.

    Args:
        api_key: the console API key (sent as ``x-api-key``); defaults to ``$AKOOL_API_KEY``.
        client_id: needed for webhook verification, or with ``client_secret`` alone for the
            legacy token flow (a token is fetched once and refreshed on code 1101).
        client_secret: the legacy secret (the same value as the API key); defaults to
            ``api_key`` for webhook decryption.
        base_url: the API root (point it at ``FakeAkoolServer.url`` in tests).
        timeout: seconds for one HTTP request, answer included.
        connect_timeout: seconds to establish a connection.
        retry: when to retry failed requests (creates only when AKOOL surely did not act).
        poll: how the shared poller schedules results calls.
        wait_timeout: how long ``await handle`` waits by default (``None``: forever).
        max_concurrent_creates: create requests in flight at once, across all tasks.
        max_credits: stop creating once the credits charged by this client's creates would
            pass this cap: each create is estimated first (from earlier answers for the same
            model, resolution, length and audio; before any, 60 credits per 5 s of video)
            and refused with BudgetExceededError when it does not fit. Videos already
            created are never cancelled. ``None`` (default): no cap.

    Raises:
        AkoolValueError: no credentials were given or found, or a setting is invalid.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        max_concurrent_creates: int = DEFAULT_MAX_CONCURRENT_CREATES,
        max_credits: float | None = None,
    ) -> None:
        if api_key is None and not (client_id and client_secret):
            api_key = os.environ.get(API_KEY_ENV) or None
        for name, value in (
            ("api_key", api_key),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ):
            if value is not None and (not isinstance(value, str) or not value):
                raise AkoolValueError(f"{name}: must be a non-empty string")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise AkoolValueError(f"base_url: must be an http(s) URL, got {base_url!r}")
        if isinstance(max_concurrent_creates, bool) or not (
            isinstance(max_concurrent_creates, int) and max_concurrent_creates >= 1
        ):
            raise AkoolValueError("max_concurrent_creates: must be a positive integer")
        check_seconds("timeout", timeout)
        check_seconds("connect_timeout", connect_timeout)
        if wait_timeout is not None:
            check_seconds("wait_timeout", wait_timeout)

        self.client_id = client_id
        # The console API key IS the legacy clientSecret (akool-api.md §2): webhooks use it.
        self._client_secret = client_secret or api_key
        self._transport = Transport(
            base_url=base_url,
            auth=None,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        auth: Auth
        if api_key is not None:
            auth = ApiKeyAuth(api_key)
        elif client_id and client_secret:
            auth = TokenAuth(client_id, client_secret, self._fetch_token)
        else:
            raise AkoolValueError(
                f"no credentials: pass api_key=..., set ${API_KEY_ENV}, "
                "or pass client_id and client_secret"
            )
        self._transport.auth = auth
        self._poller = Poller(self._transport, poll or PollPolicy(), wait_timeout)
        self._create_slots = asyncio.Semaphore(max_concurrent_creates)
        self._closing = False
        self._creates_in_flight = 0
        self._creates_idle = asyncio.Event()
        self._request_timeout = timeout
        self.max_concurrent_creates = max_concurrent_creates
        self._budget = CreditBudget(max_credits)
        self.models = AIModels(self)
        self.image_to_video = ImageToVideo(self)
        self.account = Account(self)
        self.webhooks = Webhooks(self)

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._transport.base_url

    @property
    def poller(self) -> Poller:
        """The shared poller (``client.poller.statistics()`` tells what it did)."""
        return self._poller

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self._transport.closed

    @property
    def max_credits(self) -> float | None:
        """The credit cap on this client's creates (``None``: no cap)."""
        return self._budget.max_credits

    @property
    def credits_charged(self) -> float:
        """Credits charged by this client's creates so far.

        The ``deduction_credit`` of every created video, plus the estimate of each create
        whose outcome is unknown (it may have been billed).
        """
        return self._budget.charged

    async def download(
        self, video: Video, path: str | os.PathLike[str], *, overwrite: bool = True
    ) -> Path:
        """Save a completed video's file.

        The file is streamed to a temporary file beside the target, checked against
        ``Content-Length``, fsynced and renamed into place: ``path`` never holds a partial
        file. Transient failures are retried with the client's retry policy.

        Args:
            video: a completed ``Video`` (``video_url`` set), e.g. what ``await handle`` gave.
            path: the file to write; an existing directory gets ``<video id>.mp4`` inside.
            overwrite: replace an existing file; when False an existing file is kept as is.

        Returns:
            The path written (or kept).

        Raises:
            AkoolValueError: the video has no file yet (not completed).
            DownloadError: the file could not be saved whole; nothing was left behind.
        """
        return await download_video(
            self._transport.session(),
            video,
            Path(path),
            retry=self._transport.retry,
            overwrite=overwrite,
        )

    @overload
    async def download_many(
        self,
        videos: Iterable[Video],
        directory: str | os.PathLike[str],
        *,
        concurrency: int = ...,
        overwrite: bool = ...,
        return_exceptions: Literal[False] = ...,
    ) -> list[Path]: ...
    @overload
    async def download_many(
        self,
        videos: Iterable[Video],
        directory: str | os.PathLike[str],
        *,
        concurrency: int = ...,
        overwrite: bool = ...,
        return_exceptions: Literal[True],
    ) -> list[Path | BaseException]: ...
    async def download_many(
        self,
        videos: Iterable[Video],
        directory: str | os.PathLike[str],
        *,
        concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY,
        overwrite: bool = False,
        return_exceptions: bool = False,
    ) -> list[Path] | list[Path | BaseException]:
        """Save many completed videos as ``<directory>/<video id>.mp4``, a few at a time.

        Each file is written like ``download`` does (atomic, size-checked). Files already
        present are kept (they are whole: files only appear by atomic rename), so a re-run
        fetches only what is missing.

        Args:
            concurrency: downloads in flight at once.
            overwrite: fetch again even when the file exists.
            return_exceptions: put each failure in its video's place instead of raising the
                first one (which cancels the rest, leaving no partial files).

        Returns:
            The paths, in the order of ``videos``.

        Raises:
            AkoolValueError: a video has no file yet (checked before anything is fetched).
            DownloadError: a file could not be saved whole.
        """
        results = await download_videos(
            self._transport.session(),
            videos,
            Path(directory),
            retry=self._transport.retry,
            concurrency=concurrency,
            overwrite=overwrite,
            return_exceptions=return_exceptions,
        )
        if return_exceptions:
            return results
        return [r for r in results if isinstance(r, Path)]

    def as_completed(
        self, handles: Iterable[TaskHandle], *, timeout: float | _Default | None = DEFAULT
    ) -> AsyncIterator[TaskHandle]:
        """Yield each handle as it finishes, in completion order (see ``wait_all``).

        Args:
            timeout: seconds for the whole iteration; ``None`` waits forever; by default
                ``wait_timeout``. On timeout AkoolTimeoutError is raised; handles stay usable.
        """
        return as_completed(handles, timeout=timeout)

    @overload
    async def wait_all(
        self,
        handles: Sequence[TaskHandle],
        *,
        timeout: float | _Default | None = ...,
        return_exceptions: Literal[False] = ...,
    ) -> list[Video]: ...
    @overload
    async def wait_all(
        self,
        handles: Sequence[TaskHandle],
        *,
        timeout: float | _Default | None = ...,
        return_exceptions: Literal[True],
    ) -> list[Video | AkoolError]: ...
    async def wait_all(
        self,
        handles: Sequence[TaskHandle],
        *,
        timeout: float | _Default | None = DEFAULT,
        return_exceptions: bool = False,
    ) -> list[Video] | list[Video | AkoolError]:
        """Wait for every handle and return the videos in the order given.

        Args:
            timeout: seconds for all of them together; ``None`` waits forever.
            return_exceptions: return each handle's error in its place instead of raising
                the first one (in completion order).

        Raises:
            AkoolTimeoutError: the timeout passed first; every handle stays usable.
        """
        if return_exceptions:
            return await wait_all(handles, timeout=timeout, return_exceptions=True)
        return await wait_all(handles, timeout=timeout)

    async def _fetch_token(self, client_id: str, client_secret: str) -> str:
        envelope = await self._transport.request(
            "POST",
            TOKEN_PATH,
            json={"clientId": client_id, "clientSecret": client_secret},
            authenticated=False,
        )
        token = envelope.get("token")
        if not isinstance(token, str) or not token:
            raise AkoolResponseError(
                "getToken answered without a token", method="POST", path=TOKEN_PATH
            )
        return token

    async def __aenter__(self) -> AkoolClient:
        self._transport.session()  # raises ClientClosedError when closed
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.aclose()
            return
        try:
            await self.aclose()
        except Exception as crash:
            # The block's own exception is the one to see; every waiter already got the crash.
            logger.error("the poller had crashed: %r", crash)

    async def aclose(self) -> None:
        """Stop the poller, fail pending handles with ClientClosedError, close the session.

        Idempotent. If the poller crashed, its exception is re-raised here.
        """
        self._closing = True
        try:
            if self._creates_in_flight:
                # A create already sent may have charged credits: wait for its answer (at most
                # one request timeout) so its ids reach the caller instead of an abort.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._request_timeout):
                        await self._creates_idle.wait()
            await self._poller.aclose()
        finally:
            await self._transport.aclose()

    async def _send_create(
        self,
        path: str,
        body: dict[str, Any],
        before_send: Callable[[Mapping[str, Any]], object] | None,
    ) -> dict[str, Any]:
        """Send one create under the create cap; aclose() waits for it to answer."""
        async with self._create_slots:
            if self._closing:
                raise ClientClosedError("the client is closing: the create was not sent")
            if before_send is not None:
                before_send(body)
            self._creates_in_flight += 1
            self._creates_idle.clear()
            try:
                return await self._transport.request("POST", path, json=body, create=True)
            finally:
                self._creates_in_flight -= 1
                if not self._creates_in_flight:
                    self._creates_idle.set()

    def __repr__(self) -> str:
        auth = "api_key" if isinstance(self._transport.auth, ApiKeyAuth) else "token"
        state = "closed" if self.closed else "open"
        return f"<AkoolClient base_url={self.base_url!r} auth={auth} {REDACTED} {state}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None and transport.opened:
            _warn(
                f"unclosed {self!r}: use 'async with AkoolClient()' or 'await client.aclose()'",
                ResourceWarning,
                source=self,
            )
