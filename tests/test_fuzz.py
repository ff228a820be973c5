"""Hypothesis: arbitrary create arguments and server answers never escape as untyped errors.

Create arguments go to the fake server: the SDK answers a ``Batch`` or rejects them with
``AkoolValueError`` before sending anything. Server answers come from a tiny aiohttp app on
loopback that replies whatever hypothesis draws: every outcome is data or a typed ``AkoolError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import attrs
import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from akool_async import (
    AkoolClient,
    AkoolError,
    AkoolValueError,
    Batch,
    PollPolicy,
    RetryPolicy,
    ValidationError,
    Video,
    VideoStatus,
)
from akool_async.testing import DEFAULT_MODELS, FakeAkoolServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Never wait long for a server-given Retry-After while fuzzing.
RETRY = RetryPolicy(
    max_attempts=2, initial_wait=0.0, max_wait=0.0, max_time=1, max_retry_after=0.01
)
POLL = PollPolicy(
    initial_delay=0.0,
    interval=0.001,
    max_interval=0.002,
    jitter=0.0,
    missing_polls=1,
    max_requests_per_second=None,
)
VIDEO_ID = "65f0c0ffee0123456789abcd"
T = TypeVar("T")

# -- strategies ------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
junk = st.one_of(
    json_values, st.binary(max_size=8), st.tuples(st.integers()), st.sets(st.integers())
)


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` four times in five, so that whole argument sets are often valid."""
    return st.integers(0, 4).flatmap(lambda n: other if n == 0 else valid)


good_urls = st.one_of(
    st.sampled_from(
        ["https://images.example/cat.png", "http://images.example/a.jpg", "https://x.example"]
    ),
    st.from_regex(r"\Ahttps?://[a-z]{1,10}(\.[a-z]{2,5})?(/[\w.%-]{0,12})*\Z"),
)
urls = mostly(good_urls, st.one_of(st.text(max_size=30), junk))
create_args = st.fixed_dictionaries(
    {
        "image_url": urls,
        "prompt": mostly(st.text(max_size=40), junk),
        "resolution": mostly(st.sampled_from(["480p", "720p", "1080p", "4k"]), st.text() | junk),
        "video_length": mostly(st.sampled_from([5, 10]), st.integers(-3, 30) | junk),
    },
    optional={
        "model_name": mostly(
            st.none() | st.sampled_from([m["value"] for m in DEFAULT_MODELS]), st.text() | junk
        ),
        "negative_prompt": mostly(st.none() | st.text(max_size=20), junk),
        "extend_prompt": mostly(st.none() | st.booleans(), junk),
        "last_image_url": mostly(st.none(), urls),
        "generate_audio": mostly(st.none() | st.booleans(), junk),
        "count": mostly(st.integers(1, 10), st.integers(-2, 14) | junk),
        "webhook_url": mostly(st.none(), urls),
    },
)

ids = mostly(st.just(VIDEO_ID), st.text(max_size=30) | json_values)
video_items = st.one_of(
    st.fixed_dictionaries(
        {"_id": ids, "status": mostly(st.integers(1, 4), json_values)},
        optional={
            "video_url": mostly(good_urls, json_values),
            "video_duration": mostly(st.floats(0, 60), json_values),
            "deduction_credit": mostly(st.integers(0, 100) | st.floats(0, 100), json_values),
            "create_time": mostly(st.integers(0, 2**45), json_values),
            "update_time": mostly(st.integers(0, 2**45), json_values),
            "webhookUrl": mostly(st.just(""), json_values),
            "only_add_audio": mostly(st.booleans(), json_values),
            "batch_id": json_values,
            "sub_type": json_values,
        },
    ),
    json_values,
)
results_data = st.one_of(
    st.fixed_dictionaries({"result": st.one_of(st.lists(video_items, max_size=3), json_values)}),
    json_values,
)
create_data = st.one_of(
    st.fixed_dictionaries(
        {"successList": st.lists(video_items, max_size=3)}, optional={"errorList": json_values}
    ),
    st.fixed_dictionaries({}, optional={"successList": json_values, "errorList": json_values}),
    video_items,
    json_values,
)
plausible_results = st.fixed_dictionaries({"result": st.lists(video_items, max_size=3)})
plausible_create = st.fixed_dictionaries(
    {"successList": st.lists(video_items, min_size=1, max_size=3)},
    optional={"errorList": json_values},
)
codes = st.one_of(st.just(1000), st.sampled_from([1003, 1005, 1006, 1008, 1101, 1200]), json_values)


def envelopes(data: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """AKOOL-shaped envelopes with any code, message and data, or any JSON at all."""
    return st.one_of(
        st.fixed_dictionaries({"code": codes, "data": data}, optional={"msg": json_values}),
        st.fixed_dictionaries({"code": codes}, optional={"msg": json_values}),
        json_values,
    )


@attrs.frozen
class Answer:
    """One HTTP answer the fuzz server sends."""

    status: int
    body: bytes
    retry_after: str | None


def answers(
    data: st.SearchStrategy[Any], plausible: st.SearchStrategy[Any]
) -> st.SearchStrategy[Answer]:
    """Half the time a success envelope around ``plausible`` data, else anything at all."""
    anything = st.builds(
        Answer,
        status=st.one_of(
            st.just(200), st.sampled_from([201, 307, 400, 401, 403, 404, 429, 500, 503])
        ),
        body=st.one_of(
            envelopes(data).map(lambda v: json.dumps(v).encode()),
            st.one_of(st.binary(max_size=40), st.just(b"")),
        ),
        retry_after=st.one_of(st.none(), st.sampled_from(["0", "0.001", "abc", "-1", "9999"])),
    )
    success = plausible.map(
        lambda d: Answer(200, json.dumps({"code": 1000, "msg": "OK", "data": d}).encode(), None)
    )
    return st.one_of(success, anything)


# -- the fuzz server -------------------------------------------------------------------------


class FuzzServer:
    """A loopback aiohttp app answering every request with ``answer``."""

    def __init__(self) -> None:
        self.answer = Answer(200, b"{}", None)
        self.served = 0
        #: Called after each request is counted in ``served``.
        self.on_served: Callable[[], object] | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.served += 1
        if self.on_served is not None:
            self.on_served()
        answer = self.answer
        headers = {} if answer.retry_after is None else {"Retry-After": answer.retry_after}
        return web.Response(status=answer.status, body=answer.body, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzz_server() -> AsyncIterator[FuzzServer]:
    server = FuzzServer()
    await server.start()
    try:
        yield server
    finally:
        assert server.runner is not None
        await server.runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fake() -> AsyncIterator[FakeAkoolServer]:
    async with FakeAkoolServer(queue_seconds=0.01, process_seconds=0.01, credit=1e15) as server:
        yield server


def fuzz_client(url: str) -> AkoolClient:
    return AkoolClient("k" * 32, base_url=url, timeout=2.0, retry=RETRY, poll=POLL)


# -- properties ------------------------------------------------------------------------------


async def outcome_of(call: Awaitable[T]) -> T | AkoolError:
    """The call's result, or the AkoolError it raised (any other exception propagates)."""
    try:
        return await call
    except AkoolError as exc:
        event(f"raised {type(exc).__name__}")
        return exc


@FUZZ
@given(kwargs=create_args, know_models=st.booleans())
async def test_any_create_arguments_give_batch_or_value_error(
    fake: FakeAkoolServer, kwargs: dict[str, Any], know_models: bool
) -> None:
    """Arbitrary create arguments give a Batch or AkoolValueError (nothing sent for the latter)."""
    async with AkoolClient(
        fake.api_key, base_url=fake.url, retry=RETRY, poll=POLL, wait_timeout=5
    ) as client:
        if know_models:
            await client.models.list()
        fake.reset_log()
        outcome = await outcome_of(client.image_to_video.create_batch(**kwargs))
    sent = fake.calls("create_batch")
    if isinstance(outcome, AkoolValueError):
        assert isinstance(outcome, ValueError)
        assert [] == sent, "bad input must be refused before anything is sent"
    elif isinstance(outcome, ValidationError):
        # Without the model list, or without a model name, the SDK cannot know which
        # resolutions and lengths AKOOL's default model takes: only then may AKOOL say 1003.
        assert not know_models or kwargs.get("model_name") is None, outcome
        assert (1003, 1) == (outcome.code, len(sent))
    else:
        assert isinstance(outcome, Batch), outcome
        event("created a batch")
        assert list(outcome.ids) == sent[0].created_ids


@FUZZ
@given(answer=answers(results_data, plausible_results))
async def test_any_results_answer_gives_videos_or_typed_error(
    fuzz_server: FuzzServer, answer: Answer
) -> None:
    """Whatever resultsByIds answers, results() returns Videos or raises an AkoolError."""
    fuzz_server.answer = answer
    async with fuzz_client(fuzz_server.url) as client:
        outcome = await outcome_of(client.image_to_video.results([VIDEO_ID]))
    if not isinstance(outcome, AkoolError):
        event(f"{len(outcome)} videos")
        assert all(isinstance(v, Video) and v.id == VIDEO_ID for v in outcome)


@FUZZ
@given(answer=answers(results_data, plausible_results))
async def test_any_results_answer_keeps_the_poller_typed(
    fuzz_server: FuzzServer, answer: Answer
) -> None:
    """Whatever resultsByIds answers, a polled handle ends with a Video or an AkoolError."""
    fuzz_server.answer = answer
    fuzz_server.served = 0
    news = asyncio.Event()  # set by every request served and every poller tick
    fuzz_server.on_served = news.set
    async with fuzz_client(fuzz_server.url) as client:
        unsubscribe = client.poller.subscribe(news.set)
        handle = client.image_to_video.handle(VIDEO_ID)
        try:
            async with asyncio.timeout(5):
                # Enough polls for the missing-id and retry paths; the handle may stay pending.
                while fuzz_server.served < 6 and not handle.done():
                    news.clear()
                    await news.wait()
        finally:
            unsubscribe()
            fuzz_server.on_served = None
        if not handle.done():
            event("handle still pending")
            return
        outcome = await outcome_of(handle.wait())
    if not isinstance(outcome, AkoolError):
        event("handle completed")
        assert (VIDEO_ID, VideoStatus.COMPLETED) == (outcome.id, outcome.status)


@FUZZ
@given(answer=answers(create_data, plausible_create))
async def test_any_create_answer_gives_batch_or_typed_error(
    fuzz_server: FuzzServer, answer: Answer
) -> None:
    """Whatever a batch create answers, the SDK hands out real ids or raises an AkoolError."""
    fuzz_server.answer = answer
    async with fuzz_client(fuzz_server.url) as client:
        outcome = await outcome_of(
            client.image_to_video.create_batch(
                image_url="https://images.example/cat.png",
                prompt="wave",
                resolution="720p",
                video_length=5,
            )
        )
    if isinstance(outcome, AkoolError):
        assert "k" * 32 not in str(outcome)
        return
    event("created a batch")
    # Every handed-out id is exactly an _id string the server sent in successList.
    sent = json.loads(answer.body)["data"]["successList"]
    assert [item["_id"] for item in sent] == list(outcome.ids)
    assert all(isinstance(i, str) and i for i in outcome.ids)
    assert len(outcome.handles) == len(outcome.videos)
