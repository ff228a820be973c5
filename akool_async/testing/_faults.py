"""Fault injection: what a fault does (``Fault``, ``FaultKind``), which request gets one
(``FaultPlan``), and how a faulted answer goes out on the wire."""

from __future__ import annotations

import collections
import enum
import random
import types
from collections.abc import Mapping, Sequence
from typing import Final

import attrs
from aiohttp import web

from ._state import RecordedRequest
from ._wire import Answer, check_endpoint


class FaultKind(enum.Enum):
    """What an injected fault does to one request.

    Kinds that fail WITHOUT acting (nothing created, no credit charged): ``HTTP_500``,
    ``HTTP_502``, ``HTTP_503``, ``HTTP_429`` (``Retry-After`` when the fault sets
    ``retry_after``), ``CODE_1005`` (HTTP 200, code 1005) and ``RESET_BEFORE`` (the connection
    is closed without an answer).

    Kinds that ACT first (a create really creates and charges; ``created_ids`` records it):
    ``RESET_AFTER`` (connection closed without an answer: the ambiguous case), ``SLOW`` (answers
    normally after ``delay``), ``MALFORMED_JSON`` (HTTP 200, body not JSON), ``MISSING_DATA``
    (HTTP 200 ``{"code": 1000, "msg": "ok"}`` without ``data``) and ``TRUNCATED`` (the full
    ``Content-Length`` is announced, about half the body is sent, then the connection closes;
    meant for ``"download"`` but works on any endpoint).
    """

    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_429 = "http_429"
    CODE_1005 = "code_1005"
    RESET_BEFORE = "reset_before"
    RESET_AFTER = "reset_after"
    SLOW = "slow"
    MALFORMED_JSON = "malformed_json"
    MISSING_DATA = "missing_data"
    TRUNCATED = "truncated"

    @property
    def acts(self) -> bool:
        """True when the request is carried out before the fault hits (see the class doc)."""
        return self in ACTING_KINDS


ACTING_KINDS: Final = frozenset(
    {
        FaultKind.RESET_AFTER,
        FaultKind.SLOW,
        FaultKind.MALFORMED_JSON,
        FaultKind.MISSING_DATA,
        FaultKind.TRUNCATED,
    }
)
HTTP_FAULTS: Final[Mapping[FaultKind, tuple[int, str]]] = types.MappingProxyType(
    {
        FaultKind.HTTP_500: (500, "500 Internal Server Error"),
        FaultKind.HTTP_502: (502, "502 Bad Gateway"),
        FaultKind.HTTP_503: (503, "503 Service Unavailable"),
        FaultKind.HTTP_429: (429, "429 Too Many Requests"),
    }
)


@attrs.frozen
class Fault:
    """One injected fault.

    Args:
        kind: what happens (see ``FaultKind``).
        retry_after: for ``HTTP_429``, the ``Retry-After`` header value in seconds.
        delay: seconds to wait before the fault hits (any kind; the point of ``SLOW``).
    """

    kind: FaultKind
    retry_after: float | None = None
    delay: float = 0.0


class FaultPlan:
    """The faults waiting for each endpoint: scripted ones first, then random ones."""

    def __init__(self) -> None:
        #: Every fault served, in order, as ``(endpoint, kind)``.
        self.served: list[tuple[str, FaultKind]] = []
        self._scripted: dict[str, collections.deque[Fault]] = {}
        self._random: dict[
            str, tuple[float, tuple[FaultKind | Fault, ...], random.Random, Fault]
        ] = {}

    def inject(self, endpoint: str, *faults: Fault | FaultKind) -> None:
        check_endpoint(endpoint)
        queue = self._scripted.setdefault(endpoint, collections.deque())
        queue.extend(f if isinstance(f, Fault) else Fault(f) for f in faults)

    def inject_random(
        self,
        endpoint: str,
        *,
        rate: float,
        kinds: Sequence[FaultKind | Fault],
        seed: int,
        retry_after: float | None,
        delay: float,
    ) -> None:
        check_endpoint(endpoint)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if rate == 0.0 or not kinds:
            self._random.pop(endpoint, None)
            return
        template = Fault(FaultKind.SLOW, retry_after=retry_after, delay=delay)
        self._random[endpoint] = (rate, tuple(kinds), random.Random(seed), template)

    def clear(self, endpoint: str | None = None) -> None:
        if endpoint is None:
            self._scripted.clear()
            self._random.clear()
            return
        check_endpoint(endpoint)
        self._scripted.pop(endpoint, None)
        self._random.pop(endpoint, None)

    def next_fault(self, endpoint: str) -> Fault | None:
        """The fault for the next request to ``endpoint`` (recorded in ``served``), if any."""
        fault = self._draw(endpoint)
        if fault is not None:
            self.served.append((endpoint, fault.kind))
        return fault

    def _draw(self, endpoint: str) -> Fault | None:
        queue = self._scripted.get(endpoint)
        if queue:
            return queue.popleft()
        spec = self._random.get(endpoint)
        if spec is None:
            return None
        rate, kinds, rng, template = spec
        if rng.random() >= rate:
            return None
        choice = rng.choice(kinds)
        return choice if isinstance(choice, Fault) else attrs.evolve(template, kind=choice)


def drop(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the connection without (finishing) an answer; the client sees a disconnect."""
    if request.transport is not None:
        request.transport.close()
    # aiohttp discards whatever is returned once the transport is closed.
    return response if response is not None else web.Response(status=500)


def fail_without_acting(
    request: web.Request, record: RecordedRequest, fault: Fault
) -> web.StreamResponse:
    """The answer of a fault that hits before the request is carried out."""
    if fault.kind is FaultKind.RESET_BEFORE:
        return drop(request)
    if fault.kind is FaultKind.CODE_1005:
        record.http_status, record.code = 200, 1005
        return web.json_response({"code": 1005, "msg": "requests too frequent", "data": None})
    status, text = HTTP_FAULTS[fault.kind]
    headers = {}
    if fault.kind is FaultKind.HTTP_429 and fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    record.http_status = status
    return web.Response(status=status, text=text, headers=headers)


async def truncate(
    request: web.Request, record: RecordedRequest, answer: Answer
) -> web.StreamResponse:
    """Announce the full ``Content-Length``, send about half the body, then hang up."""
    body = answer.body()
    response = web.StreamResponse(status=answer.status, headers=answer.headers)
    response.content_type = answer.content_type
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    record.http_status, record.code = answer.status, answer.code
    return drop(request, response)
