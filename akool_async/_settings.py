"""Every setting a client takes: the retry and poll policies, and the "client default" marker.

These are plain frozen values: the transport, the poller and the client read them; nothing
here does I/O. A per-call ``timeout=USE_CLIENT_DEFAULT`` means "what the client was built
with", while ``None`` means "no limit" (httpx exports its marker the same way).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias, TypedDict

import attrs

from ._constants import (
    DEFAULT_MAX_IDS_PER_POLL,
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MISSING_POLLS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_POLL_REQUESTS_PER_SECOND,
)
from ._errors import AkoolValueError


class UseClientDefault(enum.Enum):
    """The type of ``USE_CLIENT_DEFAULT``: one value, so type checkers can narrow it."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


#: Pass as ``timeout=`` to use the client's setting; ``None`` means "wait forever".
USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT

#: A per-call timeout: seconds, ``None`` for no limit, or the client's default.
TimeoutArg: TypeAlias = float | Literal[UseClientDefault.USE_CLIENT_DEFAULT] | None


def resolve_timeout(timeout: TimeoutArg, default: float | None) -> float | None:
    """``timeout``, or ``default`` when it is ``USE_CLIENT_DEFAULT``."""
    return default if timeout is USE_CLIENT_DEFAULT else timeout


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

    def backoff_step(self, attempt: int) -> float:
        """The cap of the jittered wait after failed attempt number ``attempt`` (from 0)."""
        try:
            return min(self.max_wait, self.initial_wait * 2.0**attempt)
        except OverflowError:
            return self.max_wait


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"'{attribute.name}' must be > 0 or None: {value!r}")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How the shared poller schedules ``resultsByIds`` calls.

    A results call costs the same with 1 id or 50, so the poller spends a request budget
    rather than a number of polls per id. Every ``interval`` a tick polls every pending id
    (ceil(N / ``max_ids_per_request``) calls), as long as that fits ``max_requests_per_second``;
    each call is filled up with the ids polled longest ago, due or not. An id is first polled
    ``initial_delay`` seconds after it is tracked (in the first tick after that, however many
    older ids are pending). When the budget is the limit, the oldest ids are thinned out: each
    id counts as due again after ``interval``, growing by ``multiplier`` per poll up to
    ``max_interval``, and due ids go first. Ids created with a webhook are polled only every
    ``webhook_interval`` on their own, but ride along free in any call with room.

    A rate limit (code 1005, HTTP 429) multiplies the tick interval and the budget's window by
    up to ``max_slowdown`` and honours ``Retry-After``; each clean tick halves the slowdown again.

    The earlier default (each id polled only when due, every 5 s growing x1.5 per poll up to
    30 s, no budget, no hint) is
    ``PollPolicy(fill_calls=False, max_requests_per_second=None, learn_durations=False)``.

    Attributes:
        max_ids_per_request: ids per ``resultsByIds`` call (AKOOL publishes no limit).
        max_concurrent_requests: results calls in flight at once within one tick.
        missing_polls: consecutive answers an id may be missing from before NotFoundError.
        jitter: each sleep is shortened by up to this fraction, so clients do not synchronise.
        max_requests_per_second: the budget: results calls per second for the whole client
            (2 by default; ``None`` for no budget). At most ``max(1, floor(rate * budget_window))``
            calls start within any ``budget_window`` seconds, counted from each call's answer,
            so the server never sees more, whatever the network does to the timing.
        budget_window: the window the budget is counted over, in seconds (1 s).
        fill_calls: fill every call up with pending ids that are not due (free), and poll
            every pending id each ``interval`` while the budget allows. False: only due ids.
        learn_durations: a duration hint (on by default). The poller learns how long videos
            of one shape (model, resolution, length) took, and polls a new video of a known
            shape on its own only from half the time the quickest of them took (it still
            rides along in calls with room), leaving the budget to videos that may be done.
    """

    initial_delay: float = attrs.field(
        default=DEFAULT_POLL_INTERVAL, validator=attrs.validators.ge(0)
    )
    interval: float = attrs.field(default=DEFAULT_POLL_INTERVAL, validator=attrs.validators.gt(0))
    max_interval: float = attrs.field(
        default=DEFAULT_MAX_POLL_INTERVAL, validator=attrs.validators.gt(0)
    )
    multiplier: float = attrs.field(default=1.5, validator=attrs.validators.ge(1))
    jitter: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    max_ids_per_request: int = attrs.field(
        default=DEFAULT_MAX_IDS_PER_POLL, validator=attrs.validators.ge(1)
    )
    max_concurrent_requests: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    missing_polls: int = attrs.field(
        default=DEFAULT_MISSING_POLLS, validator=attrs.validators.ge(0)
    )
    max_slowdown: float = attrs.field(default=8.0, validator=attrs.validators.ge(1))
    webhook_interval: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    max_requests_per_second: float | None = attrs.field(
        default=DEFAULT_POLL_REQUESTS_PER_SECOND, validator=_positive_or_none
    )
    budget_window: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    fill_calls: bool = True
    learn_durations: bool = True

    def budget(self) -> tuple[int, float] | None:
        """The budget as (calls, window seconds): at most that many calls per window.

        ``None`` when there is no budget. A fractional rate rounds the calls down (never
        up), and a rate below one call per window widens the window instead.
        """
        rate = self.max_requests_per_second
        if rate is None:
            return None
        calls = max(1, math.floor(rate * self.budget_window))
        return calls, max(self.budget_window, calls / rate)

    def calls_per_tick(self) -> int | None:
        """How many results calls one ``interval`` can afford (None: no budget)."""
        budget = self.budget()
        if budget is None:
            return None
        calls, window = budget
        return max(1, math.floor(calls * self.interval / window + 1e-9))

    def delay(self, polls: int, *, webhook: bool = False) -> float:
        """Seconds until the next poll of an id already polled ``polls`` times.

        Ids created with a ``webhook_url`` are polled at most every ``webhook_interval``:
        the webhook is the fast path, polling only the backstop for lost deliveries.
        """
        if polls <= 0:
            delay = self.initial_delay
        else:
            try:
                grown = self.interval * self.multiplier ** (polls - 1)
            except OverflowError:  # a very old id, or a very large multiplier
                grown = math.inf
            delay = min(self.max_interval, grown)
        return max(delay, self.webhook_interval) if webhook else delay


#: Headers that carry credentials (akool-api.md §2).
_AUTH_HEADERS: Final = frozenset({"x-api-key", "authorization"})


def _headers(value: object) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise AkoolValueError("extra_headers: must be a mapping of str to str")
    for name in value:
        if name.lower() in _AUTH_HEADERS:
            # Credentials come from the client only, never from a per-call option.
            raise AkoolValueError(f"extra_headers: {name!r} cannot be set per call")
    return dict(value)


def _mapping(name: str, value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise AkoolValueError(f"{name}: must be a mapping with str keys")
    return dict(value)


def _query(value: object) -> Mapping[str, Any] | None:
    return _mapping("extra_query", value)


def _body(value: object) -> Mapping[str, Any] | None:
    return _mapping("extra_body", value)


def _timeout(value: object) -> TimeoutArg:
    if value is None or value is USE_CLIENT_DEFAULT:
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise AkoolValueError(
            f"timeout: must be a positive number of seconds, None or USE_CLIENT_DEFAULT, "
            f"got {value!r:.40}"
        )
    return float(value)


@attrs.frozen(kw_only=True)
class RequestOptions:
    """Per-call additions to one API request (what ``extra_*`` and ``timeout=`` carry).

    Attributes:
        extra_headers: sent as well; they can never replace the authentication headers.
        extra_query: added to the query string.
        extra_body: merged into the JSON body (its keys win over the SDK's own, so a field
            AKOOL adds can be sent before the SDK knows it).
        timeout: seconds for this request, ``None`` for no limit, or the client's setting.
    """

    extra_headers: Mapping[str, str] | None = attrs.field(default=None, converter=_headers)
    extra_query: Mapping[str, Any] | None = attrs.field(default=None, converter=_query)
    extra_body: Mapping[str, Any] | None = attrs.field(default=None, converter=_body)
    timeout: TimeoutArg = attrs.field(default=USE_CLIENT_DEFAULT, converter=_timeout)

    def body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` with ``extra_body`` merged in."""
        return {**body, **(self.extra_body or {})}


#: No per-call additions.
NO_OPTIONS: Final = RequestOptions()


class CallOptions(TypedDict, total=False):
    """The per-call keyword options every request-sending method takes (all optional)."""

    #: Headers to send as well; never the credentials.
    extra_headers: Mapping[str, str] | None
    #: Query parameters to add.
    extra_query: Mapping[str, Any] | None
    #: Fields to merge into the JSON body (they win over the SDK's own).
    extra_body: Mapping[str, Any] | None
    #: Seconds for this request, ``None`` for no limit, or ``USE_CLIENT_DEFAULT``.
    timeout: TimeoutArg
