"""Every error akool_async raises.

The hierarchy::

    AkoolError
    ├── AkoolValueError (also ValueError)          bad input, raised before any request is sent
    │   └── JobConflictError                       a job name already holds another jobs file
    ├── ClientClosedError (also RuntimeError)      the client was used after aclose()
    ├── AkoolConnectionError                       the request never got an answer
    │   └── AkoolTimeoutError (also TimeoutError)  a request ran out of time
    ├── WaitTimeoutError (also TimeoutError)       a wait for a video ran out: it is still rendering
    ├── CreateOutcomeUnknownError                  a create was sent, its answer lost: NOT resent
    ├── BudgetExceededError                        the next create would pass max_credits: not sent
    ├── AkoolResponseError                         the answer did not fit the documented shape
    ├── AkoolAPIError                              AKOOL answered code != 1000, or a non-2xx status
    │   ├── AuthenticationError                    1101, 1102, 1109, 1200
    │   ├── RateLimitError                         1005, HTTP 429
    │   ├── InsufficientCreditsError               1006, 1103, 1104
    │   ├── PermissionDeniedError                  1009, 1213, 1221
    │   ├── NotFoundError                          1008, 1014, or an id AKOOL stopped knowing
    │   ├── UpstreamError                          1015, 1205, HTTP 5xx
    │   └── ValidationError                        1003
    ├── VideoFailedError                           a video ended with status 4
    ├── DownloadError                              a video file could not be saved whole
    └── WebhookVerificationError                   a webhook body failed verification or decryption

Messages never contain an API key, client secret or token. Every error pickles with its message
and attributes (for multiprocessing, Celery and the like), subclasses included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Video, VideoStatus


class AkoolError(Exception):
    """Base class of every error raised by akool_async."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds an exception by calling cls(*self.args), which breaks on any
        # keyword-only or non-message __init__ argument. Rebuild without __init__ instead:
        # the args and every attribute as they are, for this class and any subclass.
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[AkoolError], args: tuple[Any, ...], state: dict[str, Any]) -> AkoolError:
    """Unpickle an AkoolError: its args and attributes, without calling ``__init__``."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class AkoolValueError(AkoolError, ValueError):
    """An argument is invalid; raised before any request is sent."""


class JobConflictError(AkoolValueError):
    """A bulk job of that name was loaded from another jobs file (its digest differs)."""


class ClientClosedError(AkoolError, RuntimeError):
    """The client was used after ``aclose()``, or closed while a handle was waiting."""


class AkoolConnectionError(AkoolError):
    """The request could not be completed at the transport level (refused, reset, DNS, ...)."""

    def __init__(self, message: str, *, method: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class AkoolTimeoutError(AkoolConnectionError, TimeoutError):
    """A request ran out of time before its answer came."""


class WaitTimeoutError(AkoolError, TimeoutError):
    """A wait for a video ran out of time; the video itself is unaffected.

    Not a connection error: the video may simply still be rendering. Its handle stays usable
    and can be awaited again.

    Attributes:
        video_id: the video waited for (None when the wait covered several videos).
        last_status: the last status seen for it (None when unknown).
    """

    def __init__(
        self,
        message: str,
        *,
        video_id: str | None = None,
        last_status: VideoStatus | None = None,
    ) -> None:
        super().__init__(message)
        self.video_id = video_id
        self.last_status = last_status


class CreateOutcomeUnknownError(AkoolError):
    """A create request may have reached AKOOL, but no usable answer came back.

    AKOOL has no idempotency key, so the SDK never resends such a request: it may already
    have created (and charged for) videos. ``request`` holds the fields that were sent
    (never the key), so the caller can look for the videos before deciding to resubmit.
    ``video_ids`` lists the ids that could be read from a partly unreadable answer: those
    videos exist (re-attach with ``image_to_video.handle(id)``).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        request: Mapping[str, Any],
        video_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.path = path
        self.request = dict(request)
        self.video_ids = video_ids


class AkoolResponseError(AkoolError):
    """AKOOL's answer could not be read: not JSON, not an envelope, or not the documented shape."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        http_status: int | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.http_status = http_status
        self.body = body


class AkoolAPIError(AkoolError):
    """AKOOL refused the request: a business ``code`` other than 1000, or a non-2xx HTTP status.

    Attributes:
        code: AKOOL's business code (``None`` for an HTTP-level error without an envelope).
        msg: AKOOL's free-text message (never branch on it).
        http_status: the HTTP status of the answer.
        method, path: the request that failed.
        request_id: AKOOL's request id header, when the answer had one.
        retry_after: seconds the server asked us to wait (HTTP ``Retry-After``), if any.
    """

    def __init__(
        self,
        msg: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: object = None,
    ) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = f"[{self.code}] " if self.code is not None else f"[HTTP {self.http_status}] "
        where = f" ({self.method} {self.path})" if self.method and self.path else ""
        rid = f" request_id={self.request_id}" if self.request_id else ""
        return f"{head}{self.msg}{where}{rid}"


class AuthenticationError(AkoolAPIError):
    """The key or token was refused (1101, 1102, 1109) or the account is banned (1200)."""


class RateLimitError(AkoolAPIError):
    """AKOOL asked us to slow down (code 1005 or HTTP 429)."""


class InsufficientCreditsError(AkoolAPIError):
    """Not enough credit, or the account is unpaid (1006, 1103, 1104)."""


class PermissionDeniedError(AkoolAPIError):
    """No permission or a subscription is required (1009, 1213, 1221)."""


class NotFoundError(AkoolAPIError):
    """The resource does not exist (1008, 1014), or AKOOL stopped reporting a video id."""


class UpstreamError(AkoolAPIError):
    """AKOOL failed on its side (1015, 1205, HTTP 5xx); usually worth trying later."""


class ValidationError(AkoolAPIError):
    """AKOOL rejected a parameter (1003)."""


class VideoFailedError(AkoolError):
    """A video ended with status 4 (failed).

    ``video`` holds what reported it: the whole results item when polling saw the failure
    (``video.raw``), or the decrypted webhook payload when a webhook did. AKOOL documents no
    failure reason.
    """

    def __init__(self, video: Video) -> None:
        super().__init__(f"video {video.id} failed (status 4)")
        self.video = video


class BudgetExceededError(AkoolError):
    """The next create would take the credits charged past the client's ``max_credits``.

    Nothing was sent. Videos created earlier are not touched (never cancelled).

    Attributes:
        max_credits: the cap.
        charged: credits charged so far by this client's creates.
        reserved: credits estimated for creates still in flight.
        estimate: the estimated cost of the refused create.
    """

    def __init__(
        self, message: str, *, max_credits: float, charged: float, reserved: float, estimate: float
    ) -> None:
        super().__init__(message)
        self.max_credits = max_credits
        self.charged = charged
        self.reserved = reserved
        self.estimate = estimate


class DownloadError(AkoolError):
    """A video file could not be downloaded whole; no partial file was left behind.

    Attributes:
        video_id: the video, when known.
        path: where the file was to be written.
        http_status: the download answer's status, when one came.
        expected, received: bytes announced by ``Content-Length`` and bytes received.
    """

    def __init__(
        self,
        message: str,
        *,
        video_id: str | None = None,
        path: str | None = None,
        http_status: int | None = None,
        expected: int | None = None,
        received: int | None = None,
    ) -> None:
        super().__init__(message)
        self.video_id = video_id
        self.path = path
        self.http_status = http_status
        self.expected = expected
        self.received = received


class WebhookVerificationError(AkoolError):
    """A webhook body failed verification, decryption or parsing.

    The message names the check that failed, never the secret or the payload.
    """


_CODE_FAMILIES: dict[int, type[AkoolAPIError]] = {
    1003: ValidationError,
    1005: RateLimitError,
    1006: InsufficientCreditsError,
    1104: InsufficientCreditsError,
    1103: InsufficientCreditsError,
    1008: NotFoundError,
    1014: NotFoundError,
    1009: PermissionDeniedError,
    1213: PermissionDeniedError,
    1221: PermissionDeniedError,
    1015: UpstreamError,
    1205: UpstreamError,
    1101: AuthenticationError,
    1102: AuthenticationError,
    1109: AuthenticationError,
    1200: AuthenticationError,
}


def error_class_for_code(code: int) -> type[AkoolAPIError]:
    """The error family of an AKOOL business code (``AkoolAPIError`` when unknown)."""
    return _CODE_FAMILIES.get(code, AkoolAPIError)


def error_class_for_http_status(status: int) -> type[AkoolAPIError]:
    """The error family of a non-2xx HTTP status."""
    if status == 429:
        return RateLimitError
    if status in (401, 403):
        return AuthenticationError if status == 401 else PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status >= 500:
        return UpstreamError
    return AkoolAPIError


class HubUnavailableError(AkoolConnectionError):
    """The Redis hub could not be reached, or refused a command (``akool_async.redis``).

    Every hub method raises this one type on Redis trouble, so a caller can fall back to
    working alone. The message never contains the Redis password.
    """
