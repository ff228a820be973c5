"""The one HTTP boundary: the aiohttp session, the envelope, error mapping and the retry policy.

aiohttp exceptions are translated here and nowhere else. The retry rules follow
akool-api.md §10: reads retry on transient failures; a create retries only when AKOOL
certainly did not act (connection never made, HTTP 429, code 1005) and otherwise raises
``CreateOutcomeUnknownError`` without resending, because every created video costs credits.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, TypeVar

import aiohttp
import attrs
import backoff

from ._auth import Auth
from ._constants import SUCCESS_CODE
from ._errors import (
    AkoolConnectionError,
    AkoolError,
    AkoolResponseError,
    AkoolTimeoutError,
    AuthenticationError,
    ClientClosedError,
    CreateOutcomeUnknownError,
    RateLimitError,
    UpstreamError,
    error_class_for_code,
    error_class_for_http_status,
)

logger = logging.getLogger("akool_async")
_T = TypeVar("_T")

TOKEN_PATH = "/api/open/v3/getToken"
_USER_AGENT = "akool-async/0.1.0"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to retry a failed request (stamina's policy, built on ``backoff``).

    Exponential backoff with full jitter, capped by attempts AND total time. A server-given
    ``Retry-After`` is honoured as a minimum wait; one longer than ``max_retry_after`` is not
    waited for: the error is raised with ``retry_after`` set.

    Attributes:
        max_attempts: attempts in total, the first included (1 disables retries).
        max_time: seconds after the first attempt past which no new attempt starts.
        initial_wait: the first backoff step in seconds; each next step doubles, up to ``max_wait``.
        max_wait: the cap on one backoff step.
        max_retry_after: the longest server-requested wait the SDK sits through.
    """

    max_attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    max_time: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    initial_wait: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_wait: float = attrs.field(default=8.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """Never retry."""
        return cls(max_attempts=1)

    @classmethod
    def fast(cls, max_attempts: int = 4) -> RetryPolicy:
        """Retry with near-zero waits: for tests against the fake server."""
        return cls(max_attempts=max_attempts, initial_wait=0.001, max_wait=0.01, max_time=30.0)

    def wrap(
        self,
        func: Callable[..., Awaitable[_T]],
        *,
        retry_on: type[Exception],
        what: str,
        retryable: Callable[[BaseException], bool] = lambda _: True,
        on_retry: Callable[[BaseException], None] | None = None,
        timed: bool = True,
    ) -> Callable[..., Awaitable[_T]]:
        """``func`` run under this policy; wrap it right before the call (the clock starts here).

        Args:
            retry_on: the exceptions that may be retried at all.
            what: names the operation in the WARNING logged before each retry.
            retryable: whether one such exception may be retried.
            on_retry: called with the cause before each retry.
            timed: cap the attempts by ``max_time`` too; off for work whose own length is
                unbounded (a large download), which ``max_attempts`` alone caps.
        """
        started = time.monotonic()
        max_time = self.max_time if timed else math.inf

        def give_up(exc: BaseException) -> bool:
            if not retryable(exc):
                return True
            # backoff cuts each sleep to what is left of max_time, which would resend before
            # the server's Retry-After: give up instead when the wait does not fit the budget.
            retry_after = getattr(exc, "retry_after", None) or 0.0
            left = max_time - (time.monotonic() - started)
            return bool(retry_after > min(self.max_retry_after, left))

        def on_backoff(details: Any) -> None:
            logger.warning(
                "retrying %s (attempt %d failed, waiting %.2fs): %s",
                what,
                details["tries"],
                details["wait"],
                details["exception"],
            )
            if on_retry is not None:
                on_retry(details["exception"])

        return backoff.on_exception(
            self._waits,  # type: ignore[arg-type]  # backoff's stubs ignore send()-driven gens
            retry_on,
            max_tries=self.max_attempts,
            max_time=max_time if timed else None,
            jitter=None,
            giveup=give_up,
            on_backoff=on_backoff,
            logger=None,
        )(func)

    def _waits(self) -> Generator[float | None, BaseException, None]:
        # backoff primes the generator with send(None), then sends each exception in.
        exc = yield None
        attempt = 0
        while True:
            step = min(self.max_wait, self.initial_wait * 2**attempt)
            attempt += 1
            wait = random.uniform(0, step)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                wait = max(wait, float(retry_after))
            exc = yield wait


class _NotSent(AkoolConnectionError):
    """The connection failed before the request was written: AKOOL cannot have acted."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf" and "nan" parse as floats but are no delay a server can mean.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_transient(exc: BaseException) -> bool:
    """Whether a read may be retried after ``exc``."""
    if isinstance(exc, AkoolConnectionError):  # includes timeouts
        return True
    if isinstance(exc, RateLimitError):
        return True
    return isinstance(exc, UpstreamError) and exc.http_status is not None and exc.http_status >= 500


def _create_may_retry(exc: BaseException) -> bool:
    """Whether a create may be resent: only when AKOOL certainly did not act."""
    return isinstance(exc, (_NotSent, RateLimitError))


class Transport:
    """Owns the ``aiohttp.ClientSession`` and turns every answer into data or a typed error."""

    def __init__(
        self,
        *,
        base_url: str,
        auth: Auth | None,
        retry: RetryPolicy,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retry = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.closed = False

    @property
    def opened(self) -> bool:
        """True once a session exists and has not been closed."""
        return self._session is not None and not self.closed

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (it must be made inside a running loop)."""
        if self.closed:
            raise ClientClosedError("the client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": _USER_AGENT}
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session. Idempotent."""
        self.closed = True
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        create: bool = False,
        authenticated: bool = True,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> dict[str, Any]:
        """Send one API request and return its success envelope (``code == 1000``).

        Args:
            create: the request creates videos (costs credits): it is retried only when AKOOL
                certainly did not act, and an ambiguous failure raises CreateOutcomeUnknownError.
            on_retry: called with the cause before each retry (the poller slows down on 429/1005).

        Raises:
            AkoolAPIError: a subclass per family for a non-1000 code or a non-2xx status.
            AkoolConnectionError, AkoolTimeoutError: the request never got an answer.
            AkoolResponseError: the answer was not a JSON envelope.
            CreateOutcomeUnknownError: a create was sent and its outcome is unknown.
        """
        send = self.retry.wrap(
            self._send_authenticated,
            retry_on=AkoolError,
            what=f"{method} {path}",
            retryable=_create_may_retry if create else _is_transient,
            on_retry=on_retry,
        )
        try:
            return await send(method, path, json, params, create, authenticated)
        except _NotSent as exc:
            # Public callers see the plain connection error.
            raise AkoolConnectionError(str(exc), method=method, path=path) from exc.__cause__

    async def _send_authenticated(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, Any] | list[tuple[str, str]] | None,
        create: bool,
        authenticated: bool,
    ) -> dict[str, Any]:
        if not authenticated or self.auth is None:
            return await self._send(method, path, json, params, {}, create)
        headers = await self.auth.headers()
        try:
            return await self._send(method, path, json, params, headers, create)
        except AuthenticationError as exc:
            # 1101 means the token was refused before AKOOL did anything: repeating is safe.
            if exc.code != 1101 or not await self.auth.refresh(headers):
                raise
        return await self._send(method, path, json, params, await self.auth.headers(), create)

    async def _send(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, Any] | list[tuple[str, str]] | None,
        headers: dict[str, str],
        create: bool,
    ) -> dict[str, Any]:
        session = self.session()
        started = time.monotonic()

        def unknown(why: str) -> CreateOutcomeUnknownError:
            return CreateOutcomeUnknownError(
                f"create outcome unknown ({why}); the request was NOT resent because AKOOL may "
                f"already have created and charged for the videos ({method} {path})",
                path=path,
                request=json or {},
            )

        try:
            # No redirects: aiohttp would carry x-api-key to another origin (it strips only
            # Authorization) and re-POST a create on 307/308, risking a second charge.
            async with session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                resp_headers = resp.headers
                raw = await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise _NotSent(
                f"could not connect: {type(exc).__name__}: {exc}", method=method, path=path
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            if create:
                raise unknown("timed out waiting for the answer") from exc
            raise AkoolTimeoutError(
                f"timed out ({method} {path})", method=method, path=path
            ) from exc
        except aiohttp.ClientError as exc:
            if create:
                raise unknown(f"connection lost: {type(exc).__name__}") from exc
            raise AkoolConnectionError(
                f"connection failed: {type(exc).__name__}: {exc} ({method} {path})",
                method=method,
                path=path,
            ) from exc

        request_id = resp_headers.get("x-request-id") or resp_headers.get("X-Request-Id")
        logger.debug(
            "%s %s -> HTTP %d in %.1f ms", method, path, status, (time.monotonic() - started) * 1e3
        )
        try:
            envelope = jsonlib.loads(raw) if raw else None
        except (ValueError, RecursionError):
            # RecursionError: JSON nested deeper than the parser goes is unreadable too; left
            # unmapped it escaped as a non-Akool error and crashed the shared poller.
            envelope = None

        if not 200 <= status < 300:
            if create and status != 429 and status >= 500:
                raise unknown(f"HTTP {status}")
            code = envelope.get("code") if isinstance(envelope, dict) else None
            msg = envelope.get("msg") if isinstance(envelope, dict) else None
            raise error_class_for_http_status(status)(
                str(msg or f"HTTP {status}"),
                code=code if isinstance(code, int) else None,
                http_status=status,
                method=method,
                path=path,
                request_id=request_id,
                retry_after=_retry_after(resp_headers),
                body=envelope,
            )

        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
            if create:
                raise unknown("the answer was not a JSON envelope")
            raise AkoolResponseError(
                f"the answer was not a JSON envelope ({method} {path})",
                method=method,
                path=path,
                http_status=status,
                body=raw[:200].decode("utf-8", "replace"),
            )
        code = envelope["code"]
        if code != SUCCESS_CODE:
            raise error_class_for_code(code)(
                str(envelope.get("msg") or "no message"),
                code=code,
                http_status=status,
                method=method,
                path=path,
                request_id=request_id,
                retry_after=_retry_after(resp_headers),
                body=envelope,
            )
        return envelope
