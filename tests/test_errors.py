"""Tests of akool_async's error hierarchy and of how AKOOL's answers map onto it.

The mapping tests talk HTTP to a tiny real aiohttp app on loopback that answers whatever
envelope or status a test scripts, because the fake AKOOL server only speaks the codes it
needs for its own behaviour.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import serve_app

import akool_async
from akool_async import (
    AkoolAPIError,
    AkoolClient,
    AkoolConnectionError,
    AkoolError,
    AkoolResponseError,
    AkoolTimeoutError,
    AkoolValueError,
    AuthenticationError,
    BudgetExceededError,
    ClientClosedError,
    CreateOutcomeUnknownError,
    DownloadError,
    InsufficientCreditsError,
    JobConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    UpstreamError,
    ValidationError,
    Video,
    VideoFailedError,
    VideoStatus,
    WaitTimeoutError,
    WebhookVerificationError,
)
from akool_async._errors import error_class_for_code, error_class_for_http_status

CREDITS_PATH = "/api/open/v3/faceswap/quota/info"

#: akool-api.md §7: business code -> SDK error family.
CODE_FAMILIES: dict[int, type[AkoolAPIError]] = {
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

HTTP_FAMILIES: dict[int, type[AkoolAPIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    500: UpstreamError,
    502: UpstreamError,
    503: UpstreamError,
    418: AkoolAPIError,
}


@attrs.frozen
class Raw:
    """A body the scripted server sends byte for byte instead of as JSON."""

    data: bytes


@attrs.define
class Scripted:
    """A loopback HTTP server answering every request with ``status``, ``body``, ``headers``."""

    url: str
    status: int = 200
    body: Any = None
    headers: dict[str, str] = attrs.Factory(dict)
    paths: list[str] = attrs.Factory(list)


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    """A scripted HTTP server on 127.0.0.1."""
    state = Scripted(url="")

    async def answer(request: web.Request) -> web.Response:
        state.paths.append(request.path)
        if isinstance(state.body, Raw):
            return web.Response(
                body=state.body.data, status=state.status, content_type="application/json"
            )
        return web.json_response(state.body, status=state.status, headers=state.headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve_app(app) as state.url:
        yield state


@pytest.fixture
async def client(scripted: Scripted) -> AsyncIterator[AkoolClient]:
    """A client for the scripted server that never retries, so one answer is one error."""
    async with AkoolClient(
        "test-key", base_url=scripted.url, retry=RetryPolicy.disabled()
    ) as akool:
        yield akool


@pytest.mark.parametrize(("code", "family"), sorted(CODE_FAMILIES.items()))
def test_code_maps_to_family(code: int, family: type[AkoolAPIError]) -> None:
    """Every business code of akool-api.md §7 maps to its documented family."""
    assert family is error_class_for_code(code)


@pytest.mark.parametrize(("code", "family"), sorted(CODE_FAMILIES.items()))
async def test_business_code_answer_raises_family(
    scripted: Scripted, client: AkoolClient, code: int, family: type[AkoolAPIError]
) -> None:
    """An HTTP 200 answer with a known code raises exactly its family, with request context."""
    scripted.body = {"code": code, "msg": f"refused with {code}", "data": None}
    with pytest.raises(AkoolAPIError) as info:
        await client.account.credits()
    error = info.value
    assert family is type(error)
    assert (code, f"refused with {code}") == (error.code, error.msg)
    assert (200, "GET", CREDITS_PATH) == (error.http_status, error.method, error.path)
    assert {"code": code, "msg": f"refused with {code}", "data": None} == error.body


async def test_unknown_code_raises_plain_api_error(scripted: Scripted, client: AkoolClient) -> None:
    """An undocumented code raises AkoolAPIError naming code, msg, method, path, request id."""
    scripted.body = {"code": 4242, "msg": "something new", "data": None}
    scripted.headers = {"x-request-id": "req-77"}
    with pytest.raises(AkoolAPIError) as info:
        await client.account.credits()
    error = info.value
    assert AkoolAPIError is type(error)
    assert (4242, "something new", "req-77") == (error.code, error.msg, error.request_id)
    assert f"[4242] something new (GET {CREDITS_PATH}) request_id=req-77" == str(error)


@pytest.mark.parametrize(("status", "family"), sorted(HTTP_FAMILIES.items()))
async def test_http_status_raises_family(
    scripted: Scripted, client: AkoolClient, status: int, family: type[AkoolAPIError]
) -> None:
    """A non-2xx answer raises the HTTP status's family; its str names the status and request."""
    scripted.status = status
    scripted.body = {"error": "nope"}
    assert family is error_class_for_http_status(status)
    with pytest.raises(AkoolAPIError) as info:
        await client.account.credits()
    error = info.value
    assert family is type(error)
    assert (None, status) == (error.code, error.http_status)
    assert f"[HTTP {status}] HTTP {status} (GET {CREDITS_PATH})" == str(error)


async def test_retry_after_is_read_from_429(scripted: Scripted, client: AkoolClient) -> None:
    """A 429's Retry-After header lands in RateLimitError.retry_after."""
    scripted.status = 429
    scripted.headers = {"Retry-After": "7"}
    with pytest.raises(RateLimitError) as info:
        await client.account.credits()
    assert 7.0 == info.value.retry_after


@pytest.mark.parametrize(
    "body",
    [["not", "an", "envelope"], {"msg": "no code"}, {"code": "1000", "data": {}}],
)
async def test_non_envelope_raises_response_error(
    scripted: Scripted, client: AkoolClient, body: Any
) -> None:
    """A 2xx answer that is not a ``{"code": int, ...}`` envelope raises AkoolResponseError."""
    scripted.body = body
    with pytest.raises(AkoolResponseError) as info:
        await client.account.credits()
    error = info.value
    assert ("GET", CREDITS_PATH, 200) == (error.method, error.path, error.http_status)


async def test_deeply_nested_json_raises_response_error(
    scripted: Scripted, client: AkoolClient
) -> None:
    """JSON nested too deep for the parser is an unreadable answer, not a RecursionError."""
    # json.dumps would itself recurse too deep: send the bytes as they are.
    scripted.body = Raw(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(AkoolResponseError):
        await client.account.credits()


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (AkoolValueError, (AkoolError, ValueError)),
        (ClientClosedError, (AkoolError, RuntimeError)),
        (AkoolConnectionError, (AkoolError,)),
        (AkoolTimeoutError, (AkoolConnectionError, AkoolError, TimeoutError)),
        (WaitTimeoutError, (AkoolError, TimeoutError)),
        (CreateOutcomeUnknownError, (AkoolError,)),
        (AkoolResponseError, (AkoolError,)),
        (AkoolAPIError, (AkoolError,)),
        (VideoFailedError, (AkoolError,)),
        *((family, (AkoolAPIError, AkoolError)) for family in set(CODE_FAMILIES.values())),
    ],
)
def test_hierarchy(error: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    """Each error derives from AkoolError and mixes in the builtin callers already catch."""
    assert all(issubclass(error, base) for base in bases)


def test_api_errors_are_not_value_or_runtime_errors() -> None:
    """Only bad input is a ValueError and only use-after-close a RuntimeError."""
    assert not issubclass(AkoolAPIError, (ValueError, RuntimeError, TimeoutError))
    assert not issubclass(AkoolValueError, RuntimeError)
    assert not issubclass(ClientClosedError, ValueError)


def test_docstring_tree_matches_classes() -> None:
    """The tree drawn in _errors' docstring is the real hierarchy, every exported error in it."""
    doc = akool_async._errors.__doc__
    assert doc is not None
    drawn: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*(?:[│ ]\s*)*(?:[├└]── )?)([A-Z]\w*Error)\b", line)
        if match is None:
            continue
        depth = len(match.group(1))
        name = match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        drawn[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    exported = {
        name
        for name in akool_async.__all__
        if isinstance(getattr(akool_async, name), type)
        and issubclass(getattr(akool_async, name), AkoolError)
    }
    assert exported == set(drawn)
    for name, parent in drawn.items():
        cls = getattr(akool_async, name)
        expected_parent = AkoolError if parent is None else getattr(akool_async, parent)
        if cls is not AkoolError:
            assert expected_parent in cls.__bases__, f"{name} drawn under {parent}"


def test_video_failed_error_carries_video() -> None:
    """VideoFailedError keeps the failed Video and names its id."""
    video = Video(id="a" * 24, status=VideoStatus.FAILED, raw={"_id": "a" * 24, "status": 4})
    error = VideoFailedError(video)
    assert video is error.video
    assert "a" * 24 in str(error)


def test_wait_timeout_error_carries_wait_context() -> None:
    """WaitTimeoutError says which video and how far it got."""
    error = WaitTimeoutError("late", video_id="b" * 24, last_status=VideoStatus.PROCESSING)
    assert ("b" * 24, VideoStatus.PROCESSING) == (error.video_id, error.last_status)


def test_a_wait_timeout_is_not_a_connection_error() -> None:
    """``except AkoolConnectionError`` does not catch "the video is still rendering"."""
    error = WaitTimeoutError("late")
    assert isinstance(error, (AkoolError, TimeoutError))
    assert not isinstance(error, AkoolConnectionError)


async def test_partly_unreadable_batch_keeps_the_readable_ids(
    scripted: Scripted, client: AkoolClient
) -> None:
    """A successList with one unreadable item raises outcome-unknown carrying the readable ids."""
    good = "6b06a05adcf4bea9730c9d9d"
    scripted.body = {
        "code": 1000,
        "msg": "ok",
        "data": {"successList": [{"_id": good, "status": 1}, {"_id": None, "status": 1}]},
    }
    with pytest.raises(CreateOutcomeUnknownError) as caught:
        await client.image_to_video.create_batch(
            image_url="https://images.example/cat.png",
            prompt="the cat waves",
            resolution="720p",
            video_length=5,
            count=2,
        )
    assert (good,) == caught.value.video_ids
    assert 2 == caught.value.request["count"]


# --- pickling --------------------------------------------------------------------------------

_API_ERROR_ARGS: dict[str, Any] = {
    "code": 1003,
    "http_status": 200,
    "method": "POST",
    "path": "/api/open/v4/image2Video/createBySourcePrompt/batch",
    "request_id": "req-1",
    "retry_after": 2.5,
    "body": {"code": 1003, "msg": "Parameter error"},
}
#: One representative instance per public error class that has its own constructor.
_ERROR_EXAMPLES: dict[str, Callable[[], AkoolError]] = {
    "AkoolError": lambda: AkoolError("something"),
    "AkoolValueError": lambda: AkoolValueError("count: must be 1-10"),
    "JobConflictError": lambda: JobConflictError("job 'j' was loaded from another jobs file"),
    "ClientClosedError": lambda: ClientClosedError("the client is closed"),
    "AkoolConnectionError": lambda: AkoolConnectionError(
        "connection refused", method="GET", path="/api/open/v3/faceswap/quota/info"
    ),
    "AkoolTimeoutError": lambda: AkoolTimeoutError("timed out", method="POST", path="/x"),
    "WaitTimeoutError": lambda: WaitTimeoutError(
        "not finished after 5s",
        video_id="6b06a05adcf4bea9730c9d9d",
        last_status=VideoStatus.PROCESSING,
    ),
    "CreateOutcomeUnknownError": lambda: CreateOutcomeUnknownError(
        "answer lost",
        path="/batch",
        request={"prompt": "the cat waves", "count": 2},
        video_ids=("6b06a05adcf4bea9730c9d9d",),
    ),
    "AkoolResponseError": lambda: AkoolResponseError(
        "not JSON", method="POST", path="/x", http_status=502, body=b"<html>"
    ),
    "VideoFailedError": lambda: VideoFailedError(
        Video(
            id="6b06a05adcf4bea9730c9d9d",
            status=VideoStatus.FAILED,
            raw={"_id": "6b06a05adcf4bea9730c9d9d", "status": 4, "extra": [1]},
        )
    ),
    "BudgetExceededError": lambda: BudgetExceededError(
        "over budget", max_credits=100.0, charged=80.0, reserved=10.0, estimate=25.0
    ),
    "DownloadError": lambda: DownloadError(
        "short read",
        video_id="6b06a05adcf4bea9730c9d9d",
        path="videos/v.mp4",
        http_status=200,
        expected=100,
        received=50,
    ),
    "WebhookVerificationError": lambda: WebhookVerificationError("signature mismatch"),
}


def _example(cls: type[AkoolError]) -> AkoolError:
    if cls.__name__ in _ERROR_EXAMPLES:
        error = _ERROR_EXAMPLES[cls.__name__]()
        assert type(error) is cls
        return error
    if issubclass(cls, AkoolAPIError):
        return cls("Parameter error", **_API_ERROR_ARGS)
    raise AssertionError(f"add a representative {cls.__name__} to _ERROR_EXAMPLES")


_PUBLIC_ERRORS = sorted(
    (
        obj
        for obj in (getattr(akool_async, name) for name in akool_async.__all__)
        if isinstance(obj, type) and issubclass(obj, BaseException)
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", _PUBLIC_ERRORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_every_public_error_pickles(cls: type[AkoolError], protocol: int) -> None:
    """Each error survives pickling (multiprocessing, Celery) with message and attributes."""
    error = _example(cls)
    error.add_note("while creating line 3")
    restored = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(error) is type(restored)
    assert (error.args, str(error), repr(error)) == (restored.args, str(restored), repr(restored))
    assert vars(error) == vars(restored)
    if isinstance(error, VideoFailedError):
        assert isinstance(restored, VideoFailedError)
        assert error.video.raw == restored.video.raw


def test_pickling_covers_every_public_error() -> None:
    """The round trip above sees the whole public hierarchy, not a stale list."""
    assert AkoolError in _PUBLIC_ERRORS
    assert len(_PUBLIC_ERRORS) >= 19
