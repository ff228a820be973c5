"""The one HTTP boundary: the aiohttp session, the envelope, error mapping and the retry policy.

aiohttp exceptions are translated here and nowhere else. The retry rules follow
akool-api.md §10: reads retry on transient failures; a create retries only when AKOOL
certainly did not act (connection never made, HTTP 429, code 1005) and otherwise raises
``CreateOutcomeUnknownError`` without resending, because every created video costs credits.
"""

from __future__ import annotations

import contextlib
import email.utils
import json as jsonlib
import logging
import math
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, TypeVar

import aiohttp
import attrs
import backoff
import yarl

from ._auth import Auth
from ._constants import DEFAULT_TIMEOUT, SUCCESS_CODE
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
from ._settings import (
    NO_OPTIONS,
    USE_CLIENT_DEFAULT,
    RequestOptions,
    RetryPolicy,
    TimeoutArg,
    resolve_timeout,
)

logger = logging.getLogger("akool_async")
_T = TypeVar("_T")

TOKEN_PATH = "/api/open/v3/getToken"
_USER_AGENT = "akool-async/0.1.0"


@attrs.frozen(kw_only=True)
class RetryDetails:
    """One retry about to happen, as observers of the transport see it (stamina's record).

    Attributes:
        what: the operation, e.g. ``"POST /api/open/v4/image2Video/resultsByIds"``.
        path: the API path (None for a download).
        attempt: the attempt that failed, from 1.
        wait: seconds until the next attempt.
        error: why the attempt failed.
    """

    what: str
    path: str | None
    attempt: int
    wait: float
    error: BaseException


RetryObserver = Callable[[RetryDetails], None]


def _waits(policy: RetryPolicy) -> Generator[float | None, BaseException, None]:
    # backoff primes the generator with send(None), then sends each exception in.
    exc = yield None
    attempt = 0
    while True:
        wait = random.uniform(0, policy.backoff_step(attempt))
        attempt += 1
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, float(retry_after))
        exc = yield wait


def _with_retries(
    policy: RetryPolicy,
    func: Callable[..., Awaitable[_T]],
    *,
    retry_on: type[Exception],
    what: str,
    path: str | None,
    retryable: Callable[[BaseException], bool],
    observers: list[RetryObserver],
    timed: bool,
) -> Callable[..., Awaitable[_T]]:
    """``func`` run under ``policy``; wrap it right before the call (the clock starts here)."""
    started = time.monotonic()
    max_time = policy.max_time if timed else math.inf

    def give_up(exc: BaseException) -> bool:
        if not retryable(exc):
            return True
        # backoff cuts each sleep to what is left of max_time, which would resend before
        # the server's Retry-After: give up instead when the wait does not fit the budget.
        retry_after = getattr(exc, "retry_after", None) or 0.0
        left = max_time - (time.monotonic() - started)
        return bool(retry_after > min(policy.max_retry_after, left))

    def on_backoff(details: Any) -> None:
        logger.warning(
            "retrying %s (attempt %d failed, waiting %.2fs): %s",
            what,
            details["tries"],
            details["wait"],
            details["exception"],
        )
        event = RetryDetails(
            what=what,
            path=path,
            attempt=details["tries"],
            wait=details["wait"],
            error=details["exception"],
        )
        for observer in list(observers):
            try:
                observer(event)
            except Exception:
                # An observer's bug must not turn a retry into a failed request.
                logger.exception("a retry observer raised")

    def waits() -> Any:
        # backoff drives the generator with send(); its stubs only know plain generators.
        return _waits(policy)

    return backoff.on_exception(
        waits,
        retry_on,
        max_tries=policy.max_attempts,
        max_time=max_time if timed else None,
        jitter=None,
        giveup=give_up,
        on_backoff=on_backoff,
        logger=None,
    )(func)


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


class BodyCutShortError(AkoolConnectionError):
    """A streamed body ended before the length its ``Content-Length`` announced."""


@contextlib.contextmanager
def _mapped_errors(method: str, path: str | None) -> Iterator[None]:
    """Turn aiohttp's failures while streaming into ours (connection errors only)."""
    where = f" ({method} {path})" if path else ""
    try:
        yield
    except aiohttp.ClientPayloadError as exc:
        raise BodyCutShortError(
            f"the body was cut short: {type(exc).__name__}{where}", method=method, path=path
        ) from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise AkoolTimeoutError(f"timed out{where}", method=method, path=path) from exc
    except aiohttp.ClientError as exc:
        raise AkoolConnectionError(
            f"connection failed: {type(exc).__name__}{where}", method=method, path=path
        ) from exc


class StreamedResponse:
    """An answer whose body is read piece by piece (see ``Transport.stream``)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        #: The HTTP status code.
        self.status = response.status
        #: The announced body length, when given.
        self.content_length = response.content_length
        #: Seconds the server asked to wait (``Retry-After``), if any.
        self.retry_after = _retry_after(response.headers)

    async def iter_chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body in chunks of at most ``size`` bytes; errors mapped as ``stream`` says."""
        chunks = self._response.content.iter_chunked(size)
        while True:
            with _mapped_errors("GET", None):
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
            yield chunk


@attrs.frozen(kw_only=True)
class _Call:
    """One API request, ready to send (and to resend)."""

    method: str
    path: str
    url: yarl.URL
    json: Mapping[str, Any] | None
    extra_headers: Mapping[str, str]
    timeout: aiohttp.ClientTimeout
    create: bool


def _url(
    base: str,
    params: Mapping[str, Any] | list[tuple[str, str]] | None,
    extra: Mapping[str, Any] | None,
) -> yarl.URL:
    """``base`` with its query string; brackets stay literal (AKOOL writes ``types[]=1501``)."""
    items = list(params.items() if isinstance(params, Mapping) else params or [])
    items += list((extra or {}).items())
    if not items:
        return yarl.URL(base, encoded=True)
    query = urllib.parse.urlencode([(k, str(v)) for k, v in items], safe="[]")
    return yarl.URL(f"{base}?{query}", encoded=True)


class _Session:
    """The one ``aiohttp.ClientSession``, shared by a transport and those derived from it."""

    def __init__(self, connect_timeout: float, default_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self._timeout = aiohttp.ClientTimeout(total=default_timeout, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.closed = False

    @property
    def opened(self) -> bool:
        return self._session is not None and not self.closed

    def get(self) -> aiohttp.ClientSession:
        if self.closed:
            raise ClientClosedError("the client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": _USER_AGENT}
            )
        return self._session

    async def aclose(self) -> None:
        self.closed = True
        if self._session is not None:
            await self._session.close()


class Transport:
    """Owns the ``aiohttp.ClientSession`` and turns every answer into data or a typed error."""

    def __init__(
        self,
        *,
        base_url: str,
        auth: Auth | None,
        retry: RetryPolicy,
        timeout: float | None,
        connect_timeout: float,
        _shared: tuple[_Session, list[RetryObserver]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retry = retry
        #: Seconds for one request, answer included (None: no limit).
        self.timeout = timeout
        if _shared is None:
            _shared = (_Session(connect_timeout, timeout or DEFAULT_TIMEOUT), [])
        self._session, self._retry_observers = _shared

    def with_settings(
        self, *, retry: RetryPolicy | None = None, timeout: TimeoutArg = USE_CLIENT_DEFAULT
    ) -> Transport:
        """A transport sharing this one's session, credentials and observers, other settings."""
        return Transport(
            base_url=self.base_url,
            auth=self.auth,
            retry=retry or self.retry,
            timeout=resolve_timeout(timeout, self.timeout),
            connect_timeout=self._session.connect_timeout,
            _shared=(self._session, self._retry_observers),
        )

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self._session.closed

    @property
    def opened(self) -> bool:
        """True once a session exists and has not been closed."""
        return self._session.opened

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (it must be made inside a running loop)."""
        return self._session.get()

    def open(self) -> None:
        """Create the session now; ClientClosedError after ``aclose()``."""
        self._session.get()

    async def aclose(self) -> None:
        """Close the session (shared with derived transports). Idempotent."""
        await self._session.aclose()

    def subscribe_retries(self, observer: RetryObserver) -> Callable[[], None]:
        """Call ``observer`` with a ``RetryDetails`` before every retry; returns an unsubscribe."""
        self._retry_observers.append(observer)
        return lambda: self._retry_observers.remove(observer)

    async def with_retries(
        self,
        func: Callable[[], Awaitable[_T]],
        *,
        retry_on: type[Exception],
        what: str,
        timed: bool = True,
    ) -> _T:
        """Run ``func`` under the retry policy, retrying ``retry_on`` failures.

        Args:
            what: names the operation in the WARNING logged before each retry.
            timed: cap the attempts by ``max_time`` too; off for work whose own length is
                unbounded (a large download), which ``max_attempts`` alone caps.
        """
        send = _with_retries(
            self.retry,
            func,
            retry_on=retry_on,
            what=what,
            path=None,
            retryable=lambda _: True,
            observers=self._retry_observers,
            timed=timed,
        )
        return await send()

    @contextlib.asynccontextmanager
    async def stream(self, url: str, *, read_timeout: float) -> AsyncIterator[StreamedResponse]:
        """GET ``url`` (any host, no API credentials) and stream its body.

        No total time limit (files can be big); the connect timeouts of the client and a
        ``read_timeout`` between bytes apply.

        Raises:
            AkoolConnectionError: no answer, or the connection broke while reading.
            AkoolTimeoutError: the connection or a read timed out.
            BodyCutShortError: the body ended before its ``Content-Length``.
        """
        session = self.session()
        base = session.timeout
        timeout = aiohttp.ClientTimeout(
            total=None, connect=base.connect, sock_connect=base.sock_connect, sock_read=read_timeout
        )
        with _mapped_errors("GET", None):
            async with session.get(url, timeout=timeout) as resp:
                yield StreamedResponse(resp)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        create: bool = False,
        authenticated: bool = True,
        options: RequestOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        """Send one API request and return its success envelope (``code == 1000``).

        Args:
            create: the request creates videos (costs credits): it is retried only when AKOOL
                certainly did not act, and an ambiguous failure raises CreateOutcomeUnknownError.
            options: the caller's extra headers, query and body fields, and timeout.

        Raises:
            AkoolAPIError: a subclass per family for a non-1000 code or a non-2xx status.
            AkoolConnectionError, AkoolTimeoutError: the request never got an answer.
            AkoolResponseError: the answer was not a JSON envelope.
            CreateOutcomeUnknownError: a create was sent and its outcome is unknown.
        """
        send = _with_retries(
            self.retry,
            self._send_authenticated,
            retry_on=AkoolError,
            what=f"{method} {path}",
            path=path,
            retryable=_create_may_retry if create else _is_transient,
            observers=self._retry_observers,
            timed=True,
        )
        if json is not None or options.extra_body:
            json = options.body(json or {})
        call = _Call(
            method=method,
            path=path,
            url=_url(self.base_url + path, params, options.extra_query),
            json=json,
            extra_headers=options.extra_headers or {},
            timeout=aiohttp.ClientTimeout(
                total=resolve_timeout(options.timeout, self.timeout),
                connect=self._session.connect_timeout,
            ),
            create=create,
        )
        try:
            return await send(call, authenticated)
        except _NotSent as exc:
            # Public callers see the plain connection error.
            raise AkoolConnectionError(str(exc), method=method, path=path) from exc.__cause__

    async def _send_authenticated(self, call: _Call, authenticated: bool) -> dict[str, Any]:
        if not authenticated or self.auth is None:
            return await self._send(call, {})
        headers = await self.auth.headers()
        try:
            return await self._send(call, headers)
        except AuthenticationError as exc:
            # 1101 means the token was refused before AKOOL did anything: repeating is safe.
            if exc.code != 1101 or not await self.auth.refresh(headers):
                raise
        return await self._send(call, await self.auth.headers())

    async def _send(self, call: _Call, auth_headers: dict[str, str]) -> dict[str, Any]:
        method, path, json, create = call.method, call.path, call.json, call.create
        # The caller's extra headers first, credentials last: they can never be replaced.
        headers = {**call.extra_headers, **auth_headers}
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
                call.url,
                json=json,
                headers=headers,
                timeout=call.timeout,
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
