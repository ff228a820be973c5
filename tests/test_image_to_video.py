"""Tests of client.image_to_video, client.models and client.account against FakeAkoolServer.

Each endpoint's wire format is asserted on what the fake received, not on what the SDK
meant to send.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import (
    AkoolClient,
    AkoolValueError,
    Batch,
    ClientClosedError,
    DeleteResult,
    PollPolicy,
    RetryPolicy,
    TaskHandle,
    ValidationError,
    Video,
    VideoFailedError,
    VideoRequest,
    VideoStatus,
)
from akool_async.testing import FakeAkoolServer

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
UNKNOWN_ID = "0123456789abcdef01234567"
BATCH_PATH = "/api/open/v4/image2Video/createBySourcePrompt/batch"
SINGLE: dict[str, Any] = {
    "image_url": "https://images.example/dog.jpg",
    "prompt": "the dog runs",
    "negative_prompt": "",
    "audio_type": 3,
    "resolution": "720p",
    "video_length": 5,
}


def make_client(server: FakeAkoolServer, **kwargs: Any) -> AkoolClient:
    """A fast client for ``server``."""
    kwargs.setdefault("poll", FAST_POLL)
    return AkoolClient(
        server.api_key, base_url=server.url, retry=RetryPolicy.fast(), wait_timeout=30, **kwargs
    )


def assert_authenticated(server: FakeAkoolServer) -> None:
    """Every request the fake saw carried the API key as ``x-api-key``."""
    assert server.requests
    assert {server.api_key} == {r.headers.get("x-api-key") for r in server.requests}


# --- models and credits -----------------------------------------------------------------------


async def test_models_list_sends_types_array_query(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """``models.list()`` is a GET with ``types[]=1501`` and no body."""
    models = await client.models.list()
    (call,) = server.calls("models")
    assert ("GET", "/api/open/v4/aigModel/list") == (call.method, call.path)
    assert {"types[]": ["1501"]} == call.query
    assert None is call.body
    by_sort = sorted(server.models, key=lambda m: -m["sort"])
    assert [m["value"] for m in by_sort] == [m.value for m in models]
    assert_authenticated(server)


async def test_models_list_several_types(client: AkoolClient, server: FakeAkoolServer) -> None:
    """Several types repeat the ``types[]`` key, one value each."""
    await client.models.list(types=(1501, 1502))
    assert {"types[]": ["1501", "1502"]} == server.calls("models")[0].query


@pytest.mark.parametrize("types", [(), ("1501",), (True,), (1501.0,)])
async def test_models_list_bad_types(
    client: AkoolClient, server: FakeAkoolServer, types: tuple[Any, ...]
) -> None:
    """Types must be a non-empty sequence of ints; nothing is sent otherwise."""
    with pytest.raises(AkoolValueError, match=r"^types: "):
        await client.models.list(types=types)
    assert [] == server.requests


async def test_credits(client: AkoolClient, server: FakeAkoolServer) -> None:
    """``account.credits()`` GETs quota/info and returns ``data.credit`` as a float."""
    server.credit = 1234.5
    assert 1234.5 == await client.account.credits()
    (call,) = server.calls("credits")
    assert ("GET", "/api/open/v3/faceswap/quota/info", None) == (call.method, call.path, call.body)
    assert_authenticated(server)


async def test_credits_drop_by_what_a_batch_charged(client: AkoolClient) -> None:
    """The balance drops by exactly the batch's ``deduction_credit``."""
    before = await client.account.credits()
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    assert before - batch.deduction_credit == await client.account.credits()


# --- batch create -----------------------------------------------------------------------------


async def test_create_batch_wire_format(client: AkoolClient, server: FakeAkoolServer) -> None:
    """The batch body uses AKOOL's field names, ``webhookurl`` lowercase, unset fields left out."""
    hook = f"{server.url}/hooks/akool"
    await client.image_to_video.create_batch(
        image_url="https://images.example/cat.png",
        prompt="the cat waves",
        model_name="AkoolImage2VideoHDV1",
        negative_prompt="blurry",
        extend_prompt=True,
        resolution="1080p",
        video_length=10,
        last_image_url="https://images.example/last.png",
        count=2,
        webhook_url=hook,
    )
    (call,) = server.calls("create_batch")
    assert ("POST", BATCH_PATH) == (call.method, call.path)
    assert {
        "image_url": "https://images.example/cat.png",
        "prompt": "the cat waves",
        "model_name": "AkoolImage2VideoHDV1",
        "negative_prompt": "blurry",
        "extend_prompt": True,
        "resolution": "1080p",
        "video_length": 10,
        "last_image_url": "https://images.example/last.png",
        "count": 2,
        "webhookurl": hook,
    } == call.body
    assert_authenticated(server)


async def test_create_batch_minimal_body(client: AkoolClient, server: FakeAkoolServer) -> None:
    """Only the required fields and ``count`` are sent when nothing else is given."""
    await client.image_to_video.create_batch(**CREATE_ARGS)
    assert {**CREATE_ARGS, "count": 1} == server.calls("create_batch")[0].body


async def test_create_batch_returns_batch(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A Batch has one handle per created video, the batch id and the summed credits."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
    (call,) = server.calls("create_batch")
    created = [server.videos[i] for i in call.created_ids]
    assert isinstance(batch, Batch)
    assert tuple(call.created_ids) == batch.ids == tuple(h.id for h in batch.handles)
    assert all(OBJECT_ID.match(i) for i in batch.ids)
    assert created[0].batch_id == batch.batch_id
    assert sum(v.deduction_credit for v in created) == batch.deduction_credit
    assert () == batch.errors
    assert [VideoStatus.QUEUEING] * 3 == [v.status for v in batch.videos]
    assert [VideoStatus.QUEUEING] * 3 == [h.status for h in batch.handles]


async def test_create_batch_reads_webhook_url_back(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """The answer's camelCase ``webhookUrl`` lands in ``Video.webhook_url``."""
    hook = f"{server.url}/hooks/akool"
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, webhook_url=hook)
    assert hook == batch.videos[0].webhook_url
    assert hook == batch.videos[0].raw["webhookUrl"]


async def test_batch_videos_complete(client: AkoolClient, server: FakeAkoolServer) -> None:
    """Awaiting each handle gives the completed Video with the URL the fake serves."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    videos = await asyncio.gather(*batch.handles)
    assert [VideoStatus.COMPLETED] * 2 == [v.status for v in videos]
    assert [server.video_url(i) for i in batch.ids] == [v.video_url for v in videos]
    assert all(h.done() and h.status is VideoStatus.COMPLETED for h in batch.handles)
    assert_authenticated(server)


async def test_partial_batch_keeps_errors_raw(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A partly failed batch gives handles for the created videos and the errorList items raw."""
    server.next_batch_errors = 2
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
    (call,) = server.calls("create_batch")
    assert 1 == len(call.created_ids) == len(batch.handles)
    assert (
        {"index": 1, "code": 1015, "msg": "create video error, please try again later"},
        {"index": 2, "code": 1015, "msg": "create video error, please try again later"},
    ) == batch.errors
    assert server.videos[call.created_ids[0]].deduction_credit == batch.deduction_credit
    (video,) = await asyncio.gather(*batch.handles)
    assert VideoStatus.COMPLETED is video.status


async def test_failed_video_raises_with_the_video(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """A video ending in status 4 raises VideoFailedError carrying that Video, raw item included."""
    server.fail_when = lambda body: True
    batch = await client.image_to_video.create_batch(**CREATE_ARGS)
    (handle,) = batch.handles
    with pytest.raises(VideoFailedError) as info:
        await handle
    video = info.value.video
    assert (handle.id, VideoStatus.FAILED) == (video.id, video.status)
    assert (handle.id, 4) == (video.raw["_id"], video.raw["status"])
    assert None is video.video_url
    assert handle.done()
    assert VideoStatus.FAILED is handle.status
    with pytest.raises(VideoFailedError):
        await handle


async def test_one_failed_video_leaves_the_others(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """In one batch, a failed video fails only its own handle."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
    server.fail(batch.ids[1])
    outcomes = await asyncio.gather(*batch.handles, return_exceptions=True)
    assert [Video, VideoFailedError, Video] == [type(o) for o in outcomes]


# --- validation before any request -------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"count": 0},
        {"count": 11},
        {"count": True},
        {"image_url": ""},
        {"image_url": "not-a-url"},
        {"prompt": ""},
        {"prompt": "  "},
        {"video_length": 0},
        {"video_length": -5},
        {"video_length": True},
        {"resolution": ""},
        {"extend_prompt": "yes"},
        {"generate_audio": 1},
        {"webhook_url": "hooks"},
        {"last_image_url": "last.png"},
    ],
)
async def test_bad_batch_input_sends_nothing(
    client: AkoolClient, server: FakeAkoolServer, changes: dict[str, Any]
) -> None:
    """Bad batch input raises AkoolValueError (a ValueError) and the fake sees no request."""
    with pytest.raises(AkoolValueError) as info:
        await client.image_to_video.create_batch(**{**CREATE_ARGS, **changes})
    assert isinstance(info.value, ValueError)
    assert [] == server.requests


@pytest.mark.parametrize(
    "changes",
    [
        {"audio_type": 0},
        {"audio_type": True},
        {"audio_type": 2},  # an upload needs audio_url
        {"audio_type": 1.0},
        {"negative_prompt": None},
        {"image_url": "dog.jpg"},
        {"prompt": ""},
        {"webhook_url": "hooks"},
        {"video_length": 0},
        {"video_length": True},
        {"resolution": ""},
    ],
)
async def test_bad_single_input_sends_nothing(
    client: AkoolClient, server: FakeAkoolServer, changes: dict[str, Any]
) -> None:
    """Bad single-create input raises AkoolValueError and the fake sees no request."""
    with pytest.raises(AkoolValueError):
        await client.image_to_video.create(**{**SINGLE, **changes})
    assert [] == server.requests


@pytest.mark.parametrize(
    "changes",
    [
        {"video_id": ""},
        {"video_id": "a,b"},
        {"audio_url": "song.mp3"},
        {"audio_type": 3},
        {"audio_type": 2.0},
    ],
)
async def test_bad_replace_audio_input_sends_nothing(
    client: AkoolClient, server: FakeAkoolServer, changes: dict[str, Any]
) -> None:
    """Bad replace_audio input raises AkoolValueError and the fake sees no request."""
    args = {"video_id": UNKNOWN_ID, "audio_url": "https://audio.example/a.mp3", **changes}
    with pytest.raises(AkoolValueError):
        await client.image_to_video.replace_audio(**args)
    assert [] == server.requests


@pytest.mark.parametrize(
    "ids", [[], [""], ["a,b"], ["has space"], [UNKNOWN_ID, None], [UNKNOWN_ID, 5]]
)
async def test_bad_ids_send_nothing(
    client: AkoolClient, server: FakeAkoolServer, ids: list[Any]
) -> None:
    """results/delete/handle reject empty or comma-carrying ids before any request."""
    with pytest.raises(AkoolValueError):
        await client.image_to_video.results(ids)
    with pytest.raises(AkoolValueError):
        await client.image_to_video.delete(ids)
    if len(ids) == 1:
        with pytest.raises(AkoolValueError):
            client.image_to_video.handle(ids[0])
    assert [] == server.requests


async def test_known_models_reject_unoffered_values(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """After models.list(), values the model does not offer are refused naming the allowed ones."""
    await client.models.list()
    server.reset_log()
    create = client.image_to_video.create_batch
    fast = {**CREATE_ARGS, "model_name": "AkoolImage2VideoFastV1"}
    with pytest.raises(AkoolValueError, match=r"resolution: '1080p' .*\('480p', '720p'\)"):
        await create(**{**fast, "resolution": "1080p"})
    with pytest.raises(AkoolValueError, match=r"video_length: 7 .*\(5, 10\)"):
        await create(**{**fast, "video_length": 7})
    with pytest.raises(AkoolValueError, match="last_image_url: "):
        await create(**fast, last_image_url="https://images.example/last.png")
    with pytest.raises(AkoolValueError, match="generate_audio: "):
        await create(**fast, generate_audio=True)
    with pytest.raises(
        AkoolValueError,
        match=r"model_name: 'nope' .*\['AkoolImage2VideoFastV1', 'AkoolImage2VideoHDV1', ",
    ):
        await create(**{**CREATE_ARGS, "model_name": "nope"})
    assert [] == server.requests


async def test_known_model_caps_count(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A count above the known model's ``maxCount`` is refused before sending."""
    server.models[0]["maxCount"] = 2
    await client.models.list()
    server.reset_log()
    with pytest.raises(AkoolValueError, match=r"^count: AkoolImage2VideoFastV1 makes at most 2"):
        await client.image_to_video.create_batch(
            **CREATE_ARGS, model_name="AkoolImage2VideoFastV1", count=3
        )
    assert [] == server.requests


async def test_unknown_models_leave_the_check_to_akool(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """Before models.list(), an unoffered value is sent and AKOOL's 1003 comes back."""
    with pytest.raises(ValidationError) as info:
        await client.image_to_video.create_batch(
            **{**CREATE_ARGS, "model_name": "AkoolImage2VideoFastV1", "resolution": "1080p"}
        )
    assert (1003, "POST", BATCH_PATH) == (info.value.code, info.value.method, info.value.path)
    assert 1 == server.call_count("create_batch")


# --- single create, audio, effects, delete ---------------------------------------------------


async def test_single_create_wire_format(client: AkoolClient, server: FakeAkoolServer) -> None:
    """The single create sends its own field set, ``webhookurl`` lowercase; its handle completes."""
    hook = f"{server.url}/hooks/akool"
    handle = await client.image_to_video.create(
        **SINGLE, extend_prompt=False, is_premium_model=True, webhook_url=hook
    )
    (call,) = server.calls("create")
    assert ("POST", "/api/open/v4/image2Video/createBySourcePrompt") == (call.method, call.path)
    assert {**SINGLE, "extend_prompt": False, "is_premium_model": True, "webhookurl": hook} == (
        call.body
    )
    assert isinstance(handle, TaskHandle)
    assert call.created_ids == [handle.id]
    assert_authenticated(server)


async def test_single_create_completes(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A single create's handle completes like a batch handle."""
    handle = await client.image_to_video.create(**SINGLE, effect_code="squish_89244231312")
    assert "squish_89244231312" == server.calls("create")[0].body["effect_code"]
    video = await handle
    assert (handle.id, server.video_url(handle.id)) == (video.id, video.video_url)


async def test_replace_audio_is_a_new_task(client: AkoolClient, server: FakeAkoolServer) -> None:
    """replace_audio sends pre_video_id/audio_url/audio_type and returns a handle for a NEW id."""
    (first,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    original = await first
    handle = await client.image_to_video.replace_audio(
        video_id=original.id, audio_url="https://audio.example/a.mp3"
    )
    (call,) = server.calls("update_audio")
    assert ("POST", "/api/open/v4/image2Video/updateVideoAudio") == (call.method, call.path)
    assert {
        "pre_video_id": original.id,
        "audio_url": "https://audio.example/a.mp3",
        "audio_type": 2,
    } == call.body
    assert [handle.id] == call.created_ids
    assert original.id != handle.id
    video = await handle
    assert (True, VideoStatus.COMPLETED) == (video.only_add_audio, video.status)
    assert_authenticated(server)


async def test_effects(client: AkoolClient, server: FakeAkoolServer) -> None:
    """effects() is a bodiless GET; each effect has a code and a name."""
    effects = await client.image_to_video.effects()
    (call,) = server.calls("effects")
    assert ("GET", "/api/open/v4/image2Video/effects", None) == (call.method, call.path, call.body)
    assert ["squish_89244231312", "inflate_35567128890", "hug_10993847561"] == [
        e.code for e in effects
    ]
    assert ["Squish", "Inflate", "Hug"] == [e.name for e in effects]


async def test_delete_sends_one_id_string_and_reports_refusals(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """delete sends ``_ids`` as one comma-separated string; busy or unknown ids are refused."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    done, busy = batch.ids
    server.complete(done)
    server.set_status(busy, VideoStatus.PROCESSING)
    result = await client.image_to_video.delete([done, busy, UNKNOWN_ID])
    (call,) = server.calls("delete")
    assert ("POST", "/api/open/v4/image2Video/delbyids") == (call.method, call.path)
    assert {"_ids": f"{done},{busy},{UNKNOWN_ID}"} == call.body
    assert (
        DeleteResult(
            deleted=(done,),
            refused=(
                {"_id": busy, "msg": "video is processing"},
                {"_id": UNKNOWN_ID, "msg": "video not found"},
            ),
        )
        == result
    )
    assert server.videos[done].deleted
    assert not server.videos[busy].deleted


# --- results ----------------------------------------------------------------------------------


async def test_results_wire_format_and_order(client: AkoolClient, server: FakeAkoolServer) -> None:
    """results sends ``_ids`` as ONE comma-separated string and answers in the order asked."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=5)
    asked = [*reversed(batch.ids), UNKNOWN_ID, batch.ids[0]]
    videos = await client.image_to_video.results(asked)
    (call,) = server.calls("results")
    assert ("POST", "/api/open/v4/image2Video/resultsByIds") == (call.method, call.path)
    assert {"_ids": ",".join([*reversed(batch.ids), UNKNOWN_ID])} == call.body
    # The fake shuffles data.result: the order here comes from matching on _id.
    assert list(reversed(batch.ids)) == [v.id for v in videos]
    assert_authenticated(server)


async def test_results_accepts_one_id_string(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A single id may be passed as a plain string."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS)
    (video,) = await client.image_to_video.results(batch.ids[0])
    assert batch.ids[0] == video.id


async def test_results_chunks_by_max_ids(server: FakeAkoolServer) -> None:
    """More ids than ``max_ids_per_request`` are split into several results calls."""
    async with make_client(
        server, poll=PollPolicy(max_ids_per_request=2, initial_delay=60)
    ) as client:
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=5)
        videos = await client.image_to_video.results(batch.ids)
    assert list(batch.ids) == [v.id for v in videos]
    sent = [call.body["_ids"] for call in server.calls("results")]
    ids = list(batch.ids)
    assert [",".join(ids[0:2]), ",".join(ids[2:4]), ids[4]] == sent


async def test_chunk_above_server_limit_surfaces(server: FakeAkoolServer) -> None:
    """A max_ids_per_request above what AKOOL takes surfaces as its 1003, not as silence."""
    server.max_ids_per_results = 3
    async with make_client(server, poll=PollPolicy(max_ids_per_request=4, initial_delay=60)) as c:
        batch = await c.image_to_video.create_batch(**CREATE_ARGS, count=4)
        with pytest.raises(ValidationError) as info:
            await c.image_to_video.results(batch.ids)
    assert 1003 == info.value.code
    assert "at most 3 ids" in info.value.msg


async def test_polled_chunk_refused_by_akool_is_split_not_failed(
    server: FakeAkoolServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A results call AKOOL refuses (1003: too many ids) is split; every video still finishes."""
    server.max_ids_per_results = 3
    poll = PollPolicy(max_ids_per_request=4, initial_delay=0.01, interval=0.02, jitter=0)
    async with make_client(server, poll=poll) as client:
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=4)
        videos = await asyncio.gather(*batch.handles)
    assert [VideoStatus.COMPLETED] * 4 == [v.status for v in videos]
    assert all(len(r.body["_ids"].split(",")) <= 4 for r in server.calls("results"))
    assert any(r.code == 1003 for r in server.calls("results"))
    assert "results call for 4 ids refused" in caplog.text


# --- re-attach --------------------------------------------------------------------------------


@pytest.fixture
async def saved_ids(server: FakeAkoolServer) -> list[str]:
    """Ids of two videos created by a client that was then closed (a "previous run")."""
    async with make_client(server, poll=PollPolicy(initial_delay=60)) as first_run:
        batch = await first_run.image_to_video.create_batch(**CREATE_ARGS, count=2)
    for handle in batch.handles:
        with pytest.raises(ClientClosedError):
            await handle
    return list(batch.ids)


async def test_reattach_by_id(saved_ids: list[str], server: FakeAkoolServer) -> None:
    """A new client re-attaches to saved ids with handle(id) and gets the finished videos."""
    async with make_client(server) as client:
        handles = [client.image_to_video.handle(i) for i in saved_ids]
        assert [None, None] == [h.status for h in handles]
        videos = await asyncio.gather(*handles)
    assert saved_ids == [v.id for v in videos]
    assert [server.video_url(i) for i in saved_ids] == [v.video_url for v in videos]


async def test_reattach_shares_one_poll(saved_ids: list[str], server: FakeAkoolServer) -> None:
    """Two handles for one id share its polling: every results call carries the id once."""
    async with make_client(server) as client:
        one = client.image_to_video.handle(saved_ids[0])
        two = client.image_to_video.handle(saved_ids[0])
        assert [saved_ids[0]] == client.poller.pending_ids()
        assert await one == await two
    assert all(call.body == {"_ids": saved_ids[0]} for call in server.calls("results"))


async def test_a_systemic_refusal_costs_at_most_three_requests_per_chunk(
    server: FakeAkoolServer,
) -> None:
    """When AKOOL refuses every results call, the search stops at two halves, then fails all."""
    server.max_ids_per_results = 0  # every resultsByIds answers 1003
    poll = PollPolicy(initial_delay=0.01, interval=0.02, jitter=0)
    async with make_client(server, poll=poll) as client:
        handles = await client.image_to_video.generate_many(
            [VideoRequest(**CREATE_ARGS, count=10) for _ in range(20)]
        )
        outcomes = await asyncio.gather(*handles, return_exceptions=True)
        stats = client.poller.statistics()
    assert 200 == len(outcomes)
    assert all(isinstance(o, ValidationError) and o.code == 1003 for o in outcomes)
    # Counted per chunk, not in total: how the 200 ids fall into ticks and chunks depends on
    # how fast the creates are answered, which a busy machine decides.
    asked = [tuple(call.body["_ids"].split(",")) for call in server.calls("results")]
    halves = {
        part
        for ids in asked
        if len(ids) > 1
        for part in (ids[: len(ids) // 2], ids[len(ids) // 2 :])
    }
    chunks = [ids for ids in asked if ids not in halves]
    # Each chunk was asked once, then each of its two halves once, and nothing smaller.
    expected = [part for c in chunks for part in (c, c[: len(c) // 2], c[len(c) // 2 :])]
    assert sorted(expected) == sorted(asked)
    # Every id was in exactly one chunk of at most 50 ids: its refusal was final.
    assert sorted(h.id for h in handles) == sorted(i for chunk in chunks for i in chunk)
    assert all(len(chunk) <= 50 for chunk in chunks)
    assert 3 * len(chunks) == len(asked) == stats.requests
    # A tick's chunks finish within it, so a tick costs 3 requests per chunk too.
    assert 0 == stats.max_requests_per_tick % 3
