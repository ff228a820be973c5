"""``AkoolClient``: owns the session, the create limit and the shared poller."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from ._auth import REDACTED
from ._cluster import check_hub
from ._constants import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_CREATES,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
)
from ._core import ClientCore, check_credentials
from ._downloads import DEFAULT_DOWNLOAD_CONCURRENCY
from ._errors import AkoolError, AkoolValueError
from ._models import Video
from ._polling import Poller, TaskHandle
from ._requests import check_seconds
from ._resources.account import Account
from ._resources.ai_models import AIModels
from ._resources.image_to_video import ImageToVideo
from ._resources.incoming_webhooks import Webhooks
from ._settings import USE_CLIENT_DEFAULT, PollPolicy, RetryPolicy, TimeoutArg, resolve_timeout
from ._waiting import as_completed, wait_all

if TYPE_CHECKING:
    from ._hub._hub import RedisHub

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
            pass this cap: each create is estimated first (``estimate_credits``: the highest
            price AKOOL charged for the same shape, else AKOOL's price table, else 60 credits
            per 5 s) and refused with BudgetExceededError when it does not fit. Videos
            already created are never cancelled. With a ``hub`` the cap holds for every
            process of its namespace. ``None`` (default): no cap.
        hub: a ``akool_async.redis.RedisHub`` shared by several processes (workers,
            replicas): webhooks reach every process's handles, one process polls for all,
            and ``max_credits`` and rate-limit slow-downs hold for all of them. The client
            opens the hub and closes it when it closes (a hub made from your own Redis client
            leaves that client open). ``None`` (default): this process works alone.

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
        hub: RedisHub | None = None,
    ) -> None:
        api_key = check_credentials(api_key, client_id, client_secret, API_KEY_ENV)
        check_hub(hub)
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
        self._core = ClientCore.build(
            api_key=api_key,
            client_id=client_id,
            client_secret=client_secret,
            base_url=base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry or RetryPolicy(),
            poll=poll or PollPolicy(),
            wait_timeout=wait_timeout,
            max_concurrent_creates=max_concurrent_creates,
            max_credits=max_credits,
            hub=hub,
        )
        self._attach(self._core)

    def _attach(self, core: ClientCore) -> None:
        self._core = core
        self.client_id = core.client_id
        self.max_concurrent_creates = core.creates.max_concurrent_creates
        self.models = AIModels(core)
        self.image_to_video = ImageToVideo(core)
        self.account = Account(core)
        self.webhooks = Webhooks(core)

    def with_options(
        self,
        *,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        wait_timeout: TimeoutArg = USE_CLIENT_DEFAULT,
    ) -> AkoolClient:
        """A client with other settings that shares this one's session, budget and poller.

        Creates through either client count against one ``max_credits`` and one
        ``max_concurrent_creates``. With ``poll=`` the new client polls its own videos with
        its own poller (still on the shared session). Closing the original client closes
        what they share; closing the derived one is a no-op.

        Args:
            timeout: seconds for one request (``None``: no limit).
            retry: when to retry failed requests.
            poll: how this client's videos are polled.
            wait_timeout: how long ``await handle`` waits for this client's handles.
        """
        if timeout is not USE_CLIENT_DEFAULT and timeout is not None:
            check_seconds("timeout", timeout)
        if wait_timeout is not USE_CLIENT_DEFAULT and wait_timeout is not None:
            check_seconds("wait_timeout", wait_timeout)
        derived = object.__new__(AkoolClient)
        derived._attach(
            self._core.derive(timeout=timeout, retry=retry, poll=poll, wait_timeout=wait_timeout)
        )
        return derived

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._core.transport.base_url

    @property
    def hub(self) -> RedisHub | None:
        """The Redis hub this client shares its videos through (None: it works alone)."""
        return None if self._core.cluster is None else self._core.cluster.hub

    @property
    def poller(self) -> Poller:
        """The shared poller (``client.poller.statistics()`` tells what it did)."""
        return self._core.poller

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self._core.closed

    @property
    def max_credits(self) -> float | None:
        """The credit cap on this client's creates (``None``: no cap)."""
        return self._core.budget.max_credits

    @property
    def credits_charged(self) -> float:
        """Credits charged by this client's creates so far.

        The ``deduction_credit`` of every created video, plus the estimate of each create
        whose outcome is unknown (it may have been billed).
        """
        return self._core.budget.charged

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
        return await self._core.download(video, Path(path), overwrite=overwrite)

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
        results = await self._core.download_many(
            videos,
            Path(directory),
            concurrency=concurrency,
            overwrite=overwrite,
            return_exceptions=return_exceptions,
        )
        if return_exceptions:
            return results
        return [r for r in results if isinstance(r, Path)]

    def as_completed(
        self, handles: Iterable[TaskHandle], *, timeout: TimeoutArg = USE_CLIENT_DEFAULT
    ) -> AsyncIterator[TaskHandle]:
        """Yield each handle as it finishes, in completion order (see ``wait_all``).

        Args:
            timeout: seconds for the whole iteration; ``None`` waits forever; by default
                ``wait_timeout``. On timeout WaitTimeoutError is raised; handles stay usable.
        """
        return as_completed(handles, timeout=resolve_timeout(timeout, self._core.wait_timeout))

    @overload
    async def wait_all(
        self,
        handles: Sequence[TaskHandle],
        *,
        timeout: TimeoutArg = ...,
        return_exceptions: Literal[False] = ...,
    ) -> list[Video]: ...
    @overload
    async def wait_all(
        self,
        handles: Sequence[TaskHandle],
        *,
        timeout: TimeoutArg = ...,
        return_exceptions: Literal[True],
    ) -> list[Video | AkoolError]: ...
    async def wait_all(
        self,
        handles: Sequence[TaskHandle],
        *,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        return_exceptions: bool = False,
    ) -> list[Video] | list[Video | AkoolError]:
        """Wait for every handle and return the videos in the order given.

        Args:
            timeout: seconds for all of them together; ``None`` waits forever.
            return_exceptions: return each handle's error in its place instead of raising
                the first one (in completion order).

        Raises:
            WaitTimeoutError: the timeout passed first; every handle stays usable.
        """
        seconds = resolve_timeout(timeout, self._core.wait_timeout)
        if return_exceptions:
            return await wait_all(handles, timeout=seconds, return_exceptions=True)
        return await wait_all(handles, timeout=seconds)

    async def __aenter__(self) -> AkoolClient:
        await self._core.open()  # raises ClientClosedError when closed
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
        if self._core.is_root:
            await self._core.aclose()

    def __repr__(self) -> str:
        auth = "api_key" if self._core.uses_api_key else "token"
        state = "closed" if self.closed else "open"
        return f"<AkoolClient base_url={self.base_url!r} auth={auth} {REDACTED} {state}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        core = getattr(self, "_core", None)
        if core is not None and core.is_root and core.opened:
            _warn(
                f"unclosed {self!r}: use 'async with AkoolClient()' or 'await client.aclose()'",
                ResourceWarning,
                source=self,
            )


def client_core(client: AkoolClient) -> ClientCore:
    """The core of ``client``: how the bulk runner and the CLI reach its budget and pipeline."""
    return client._core
