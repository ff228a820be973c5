"""Tests of akool_async.testing.FakeAkoolServer, driven by a plain aiohttp client on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from conftest import serve_app

from akool_async._models import VideoStatus
from akool_async._webhook_crypto import verify_webhook
from akool_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    ENDPOINT_PATHS,
    FakeAkoolServer,
    FakeVideo,
    Fault,
    FaultKind,
    serve_forever,
    sign_webhook,
    video_bytes,
)

KEY = {"x-api-key": DEFAULT_API_KEY}
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
BATCH: dict[str, Any] = {
    "image_url": "https://img.example/cat.png",
    "prompt": "wave",
    "resolution": "720p",
    "video_length": 5,
}
SINGLE: dict[str, Any] = {
    "image_url": "https://img.example/dog.jpg",
    "prompt": "run",
    "negative_prompt": "",
    "resolution": "720p",
    "audio_type": 3,
    "video_length": 5,
}


@pytest.fixture
async def server() -> AsyncIterator[FakeAkoolServer]:
    async with FakeAkoolServer(queue_seconds=0.05, process_seconds=0.1) as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    server: FakeAkoolServer,
    endpoint: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    params: Any = None,
) -> tuple[int, Any]:
    """Send one request to ``endpoint``; return the HTTP status and the parsed JSON."""
    method, path = ENDPOINT_PATHS[endpoint]
    async with http.request(
        method,
        server.url + path,
        json=body,
        params=params,
        headers=KEY if headers is None else headers,
    ) as response:
        return response.status, await response.json()


async def create(
    http: aiohttp.ClientSession, server: FakeAkoolServer, **fields: Any
) -> list[dict[str, Any]]:
    status, answer = await call(http, server, "create_batch", {**BATCH, **fields})
    assert (200, 1000) == (status, answer["code"]), answer
    items: list[dict[str, Any]] = answer["data"]["successList"]
    return items


async def results(
    http: aiohttp.ClientSession, server: FakeAkoolServer, ids: list[str]
) -> dict[str, dict[str, Any]]:
    status, answer = await call(http, server, "results", {"_ids": ",".join(ids)})
    assert (200, 1000) == (status, answer["code"]), answer
    return {item["_id"]: item for item in answer["data"]["result"]}


# -- lifecycle -------------------------------------------------------------------------------


async def test_url_before_start_raises() -> None:
    """url raises RuntimeError until the server is started, and a closed server stays closed."""
    fake = FakeAkoolServer()
    with pytest.raises(RuntimeError):
        _ = fake.url
    async with fake:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.url)
    with pytest.raises(RuntimeError):
        await fake.start()


async def test_default_credentials() -> None:
    """The default key is 32 ASCII chars (a usable AES key) and doubles as client_secret."""
    assert 32 == len(DEFAULT_API_KEY.encode("ascii"))
    assert FakeAkoolServer().client_secret == DEFAULT_API_KEY
    assert "s3cret-s3cret-16" == FakeAkoolServer(api_key="s3cret-s3cret-16").client_secret


async def test_unknown_endpoint_name_is_rejected(server: FakeAkoolServer) -> None:
    """Methods taking an endpoint name reject names outside the documented list."""
    with pytest.raises(ValueError, match="unknown endpoint"):
        server.call_count("resultz")
    with pytest.raises(ValueError, match="unknown endpoint"):
        server.inject("resultz", Fault(FaultKind.HTTP_500))


# -- auth ------------------------------------------------------------------------------------


async def test_get_token_answers_token_without_data(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """getToken answers {"code":1000,"token":...} and the Bearer token authenticates."""
    body = {"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_API_KEY}
    status, answer = await call(http, server, "token", body, headers={})
    assert 200 == status
    assert {"code", "token"} == set(answer)
    assert 1000 == answer["code"]
    bearer = {"Authorization": f"Bearer {answer['token']}"}
    _, credits = await call(http, server, "credits", headers=bearer)
    assert 1000 == credits["code"]


async def test_get_token_wrong_credentials_is_1101(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """getToken with a wrong clientSecret or clientId answers code 1101."""
    for body in (
        {"clientId": DEFAULT_CLIENT_ID, "clientSecret": "nope"},
        {"clientId": "someone-else", "clientSecret": DEFAULT_API_KEY},
    ):
        status, answer = await call(http, server, "token", body, headers={})
        assert (200, 1101) == (status, answer["code"])
        assert "token" not in answer


async def test_wrong_key_is_1109_and_missing_auth_is_1102(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """A wrong x-api-key answers HTTP 200 code 1109 (what AKOOL's demo expects); no auth
    header answers 1102."""
    status, answer = await call(http, server, "credits", headers={"x-api-key": "wrong"})
    assert (200, 1109) == (status, answer["code"])
    status, answer = await call(http, server, "credits", headers={})
    assert (200, 1102) == (status, answer["code"])
    assert {"code", "msg", "data"} == set(answer)


async def test_authorization_wins_over_x_api_key(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """With both headers, the Bearer token decides and x-api-key is ignored."""
    token = server.issue_token()
    _, answer = await call(
        http, server, "credits", headers={"Authorization": "Bearer bogus", **KEY}
    )
    assert 1101 == answer["code"]
    _, answer = await call(
        http,
        server,
        "credits",
        headers={"Authorization": f"Bearer {token}", "x-api-key": "wrong"},
    )
    assert 1000 == answer["code"]


async def test_expire_tokens_makes_tokens_1101(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """After expire_tokens() every issued token answers 1101; a new token works again."""
    bearer = {"Authorization": f"Bearer {server.issue_token()}"}
    server.expire_tokens()
    _, answer = await call(http, server, "credits", headers=bearer)
    assert 1101 == answer["code"]
    _, answer = await call(
        http, server, "credits", headers={"Authorization": f"Bearer {server.issue_token()}"}
    )
    assert 1000 == answer["code"]


async def test_download_needs_no_auth(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """The video file URL is served without any auth header."""
    (item,) = await create(http, server)
    async with http.get(server.video_url(item["_id"])) as response:
        assert 200 == response.status


# -- simple reads ----------------------------------------------------------------------------


async def test_credits_envelope(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """credits answers data.credit as a float balance."""
    server.credit = 123.5
    status, answer = await call(http, server, "credits")
    assert 200 == status
    assert {"code": 1000, "msg": "OK", "data": {"credit": 123.5}} == answer


async def test_models_by_type(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """types[]=1501 lists the image-to-video models with every documented field; 1502 none."""
    _, answer = await call(http, server, "models", params=[("types[]", "1501")])
    models = {m["value"]: m for m in answer["data"]}
    assert {
        "AkoolImage2VideoFastV1",
        "AkoolImage2VideoHDV1",
        "seedance-1-0-lite-i2v-250428",
    } == set(models)
    fields = {
        "value",
        "label",
        "provider",
        "description",
        "sort",
        "group",
        "type",
        "resolutionList",
        "durationList",
        "isPro",
        "requiresPay",
        "supportedLastFrame",
        "supportedExtendPrompt",
        "maxImageCount",
        "maxCount",
        "generate_audio",
    }
    for model in models.values():
        assert fields <= set(model)
        for resolution in model["resolutionList"]:
            assert {"label", "value", "width", "height", "unit_credit"} <= set(resolution)
        # Only the shapes AKOOL's docs and demo show: null, or this object.
        audio = model["generate_audio"]
        assert audio is None or {
            "required",
            "type",
            "default",
            "extra_credit_multiplier",
        } == set(audio)
    fast = models["AkoolImage2VideoFastV1"]
    assert ["480p", "720p"] == [r["value"] for r in fast["resolutionList"]]
    assert (None, False, 10) == (fast["generate_audio"], fast["supportedLastFrame"], 10)
    assert 2 == models["seedance-1-0-lite-i2v-250428"]["generate_audio"]["extra_credit_multiplier"]
    # Highest sort first, AkoolImage2VideoFastV1 first, as in the docs' example.
    sorts = [m["sort"] for m in answer["data"]]
    assert ("AkoolImage2VideoFastV1", sorted(sorts, reverse=True)) == (
        answer["data"][0]["value"],
        sorts,
    )
    _, answer = await call(http, server, "models", params=[("types[]", "1502")])
    assert [] == answer["data"]
    assert {"types[]": ["1502"]} == server.calls("models")[-1].query


async def test_effects_envelope(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """effects answers data.result, a list of effect objects with effect_code and name."""
    _, answer = await call(http, server, "effects")
    effects = answer["data"]["result"]
    assert len(effects) == answer["data"]["count"] > 0
    for effect in effects:
        assert {"_id", "effect_code", "name", "logo", "video_url"} <= set(effect)
        assert 1501 == effect["sub_type"]


# -- create ----------------------------------------------------------------------------------


async def test_create_batch_answer_fields(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """A batch create answers one successList item per video with every §4 field."""
    before = server.credit
    items = await create(
        http, server, count=3, video_length=10, webhookurl="http://127.0.0.1:9/hook"
    )
    assert 3 == len(items)
    fields = {
        "_id",
        "create_time",
        "uid",
        "team_id",
        "status",
        "webhookUrl",
        "resolution",
        "file_name",
        "effect_name",
        "image_url",
        "prompt",
        "negative_prompt",
        "extend_prompt",
        "last_image_url",
        "deduction_credit",
        "model_name",
        "batch_id",
        "batch_count",
    }
    for item in items:
        assert fields <= set(item)
        assert OBJECT_ID.fullmatch(item["_id"])
        assert 1 == item["status"]
        assert "http://127.0.0.1:9/hook" == item["webhookUrl"]
        assert isinstance(item["batch_id"], str)
        assert 3 == item["batch_count"]
        assert abs(item["create_time"] / 1000 - time.time()) < 60
        assert "AkoolImage2VideoFastV1" == item["model_name"]
        # 720p costs 20 per 5 s (the docs' table): 40 for 10 s.
        assert 40.0 == item["deduction_credit"]
    assert 3 == len({item["_id"] for item in items})
    assert 1 == len({item["batch_id"] for item in items})
    assert before - 120.0 == server.credit
    assert 3 == server.created_count
    assert [i["_id"] for i in items] == server.calls("create_batch")[0].created_ids
    assert {"code", "msg", "data"} == set((await call(http, server, "credits"))[1])


@pytest.mark.parametrize(
    "change",
    [
        {"image_url": None},
        {"prompt": None},
        {"resolution": None},
        {"video_length": None},
        {"video_length": "5"},
        {"count": 0},
        {"count": 11},
        {"resolution": "1080p"},
        {"video_length": 7},
        {"model_name": "no-such-model"},
        {"last_image_url": "https://img.example/end.png"},
        {"generate_audio": True},
    ],
)
async def test_create_batch_validation_is_1003(
    server: FakeAkoolServer, http: aiohttp.ClientSession, change: dict[str, Any]
) -> None:
    """Missing fields, bad counts and options the model does not offer answer 1003."""
    body = {k: v for k, v in {**BATCH, **change}.items() if v is not None}
    status, answer = await call(http, server, "create_batch", body)
    assert (200, 1003) == (status, answer["code"])
    assert 0 == server.created_count


async def test_create_batch_respects_model_max_count(
    http: aiohttp.ClientSession,
) -> None:
    """count above the model's maxCount answers 1003; options of other models are accepted."""
    models = [
        {
            "value": "tiny",
            "type": 1501,
            "resolutionList": [{"label": "4k", "value": "4k", "width": 3840, "height": 2160}],
            "durationList": [5],
            "maxCount": 2,
            "supportedLastFrame": True,
            "generate_audio": None,
        }
    ]
    async with FakeAkoolServer(models=models) as fake:
        body = {**BATCH, "model_name": "tiny", "resolution": "4k"}
        _, answer = await call(http, fake, "create_batch", {**body, "count": 3})
        assert 1003 == answer["code"]
        items = await create(http, fake, **{**body, "count": 2, "last_image_url": "x"})
        # 4k costs 30 per 5 s (the docs' table).
        assert [30.0, 30.0] == [item["deduction_credit"] for item in items]


async def test_insufficient_credit_is_1006_and_creates_nothing(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """A batch costing more than the balance answers 1006, charges nothing, creates nothing."""
    server.credit = 30.0  # two 5 s 720p videos cost 40
    status, answer = await call(http, server, "create_batch", {**BATCH, "count": 2})
    assert (200, 1006) == (status, answer["code"])
    assert (0, 30.0) == (server.created_count, server.credit)


async def test_next_batch_errors_go_to_error_list(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """next_batch_errors moves that many videos of the next batch to errorList, then resets."""
    server.next_batch_errors = 2
    _, answer = await call(http, server, "create_batch", {**BATCH, "count": 5})
    assert 3 == len(answer["data"]["successList"])
    assert 2 == len(answer["data"]["errorList"])
    assert all("index" in e for e in answer["data"]["errorList"])
    assert (0, 3) == (server.next_batch_errors, server.created_count)
    assert 2 == len(await create(http, server, count=2))


async def test_single_create(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """The single create answers one task object in data; it needs negative_prompt."""
    _, answer = await call(http, server, "create", {**SINGLE, "webhookurl": ""})
    task = answer["data"]
    assert OBJECT_ID.fullmatch(task["_id"])
    assert 1 == task["status"]
    assert [task["_id"]] == list(server.videos)
    missing = {k: v for k, v in SINGLE.items() if k != "negative_prompt"}
    _, answer = await call(http, server, "create", missing)
    assert 1003 == answer["code"]
    _, answer = await call(http, server, "create", {**SINGLE, "audio_type": 2})
    assert 1003 == answer["code"]


# -- results ---------------------------------------------------------------------------------


async def test_results_ids_must_be_a_string(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """_ids as a comma-separated string works; a JSON list answers 1003."""
    ids = [item["_id"] for item in await create(http, server, count=2)]
    assert set(ids) == set(await results(http, server, ids))
    status, answer = await call(http, server, "results", {"_ids": ids})
    assert (200, 1003) == (status, answer["code"])


async def test_results_above_max_ids_is_1003(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """More ids than max_ids_per_results answers 1003."""
    server.max_ids_per_results = 3
    ids = [item["_id"] for item in await create(http, server, count=4)]
    assert 3 == len(await results(http, server, ids[:3]))
    _, answer = await call(http, server, "results", {"_ids": ",".join(ids)})
    assert 1003 == answer["code"]


async def test_results_are_shuffled_and_unknown_ids_omitted(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """result has one item per known id, in an order unrelated to the request."""
    ids = [item["_id"] for item in await create(http, server, count=10)]
    ids += [item["_id"] for item in await create(http, server, count=10)]
    unknown = "0" * 24
    _, answer = await call(http, server, "results", {"_ids": ",".join([*ids, unknown])})
    answered = [item["_id"] for item in answer["data"]["result"]]
    assert sorted(ids) == sorted(answered)
    assert ids != answered
    for item in answer["data"]["result"]:
        assert "sub_type" in item
        assert {"_id", "status", "create_time", "update_time", "deduction_credit"} <= set(item)
        assert {"file_name", "image_url", "prompt", "resolution", "webhookUrl"} <= set(item)
        assert item["only_add_audio"] is False


async def test_status_progression(http: aiohttp.ClientSession) -> None:
    """A video is queueing, then processing, then completed with video_url and a duration."""
    async with FakeAkoolServer(queue_seconds=0.15, process_seconds=0.15) as fake:
        (item,) = await create(http, fake)
        video_id = item["_id"]
        seen: list[int] = []
        update_times: list[int] = []
        answer: dict[str, Any] = {}
        async with asyncio.timeout(5):
            while not seen or seen[-1] != 3:
                answer = (await results(http, fake, [video_id]))[video_id]
                if not seen or seen[-1] != answer["status"]:
                    seen.append(answer["status"])
                    update_times.append(answer["update_time"])
                await asyncio.sleep(0.01)
        assert [1, 2, 3] == seen
        assert update_times == sorted(set(update_times))
        assert fake.video_url(video_id) == answer["video_url"]
        assert isinstance(answer["video_duration"], float)
        assert VideoStatus.COMPLETED is fake.status_of(video_id)


async def test_status_is_computed_from_timestamps() -> None:
    """FakeVideo.status_at derives the status from its creation time alone."""
    video = FakeVideo(
        id="a" * 24,
        endpoint="create_batch",
        request={},
        created_at=100.0,
        create_time=1_000_000,
        queue_seconds=1.0,
        process_seconds=2.0,
        final_status=VideoStatus.FAILED,
        deduction_credit=20.0,
        model_name="m",
        resolution="720p",
        video_length=5,
        image_url="u",
        prompt="p",
    )
    assert VideoStatus.QUEUEING is video.status_at(100.5)
    assert VideoStatus.PROCESSING is video.status_at(102.0)
    assert VideoStatus.FAILED is video.status_at(103.0)
    assert [1_000_000, 1_001_000, 1_003_000] == [
        video.update_time_at(t) for t in (100.5, 102.0, 103.0)
    ]
    assert 0.5 == video.next_change_in(100.5)
    assert video.next_change_in(103.0) is None


async def test_timing_jitter_spreads_durations(
    http: aiohttp.ClientSession,
) -> None:
    """timing_jitter gives each video its own queue and process durations within the band."""
    async with FakeAkoolServer(queue_seconds=1.0, process_seconds=1.0, timing_jitter=0.5) as fake:
        await create(http, fake, count=10)
        queues = [v.queue_seconds for v in fake.videos.values()]
        assert len(set(queues)) == 10
        assert all(0.5 <= q <= 1.5 for q in queues)


async def test_fail_when_fails_every_video_of_that_create(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """fail_when matching the create body makes all its videos end in status 4."""
    server.queue_seconds = server.process_seconds = 0.0
    server.fail_when = lambda body: body.get("prompt") == "explode"
    bad = [i["_id"] for i in await create(http, server, count=2, prompt="explode")]
    good = [i["_id"] for i in await create(http, server)]
    answered = await results(http, server, bad + good)
    assert [4, 4, 3] == [answered[i]["status"] for i in bad + good]
    assert "video_url" not in answered[bad[0]]


async def test_complete_fail_set_status_force_the_status(
    http: aiohttp.ClientSession,
) -> None:
    """complete(), fail() and set_status() pin a video's status immediately."""
    async with FakeAkoolServer(queue_seconds=60, process_seconds=60) as fake:
        a, b, c = [i["_id"] for i in await create(http, fake, count=3)]
        fake.complete(a)
        fake.fail(b)
        fake.set_status(c, 2)
        answered = await results(http, fake, [a, b, c])
        assert [3, 4, 2] == [answered[i]["status"] for i in (a, b, c)]
        assert answered[a]["update_time"] >= answered[a]["create_time"]
        assert "video_url" in answered[a]


async def test_forget_omits_the_video(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """A forgotten video is left out of data.result."""
    a, b = [i["_id"] for i in await create(http, server, count=2)]
    server.forget(a)
    assert [b] == list(await results(http, server, [a, b]))


# -- update audio and delete -----------------------------------------------------------------


async def test_update_audio_creates_a_new_task(
    http: aiohttp.ClientSession,
) -> None:
    """updateVideoAudio needs a completed video and answers a new only_add_audio task."""
    async with FakeAkoolServer(queue_seconds=60, process_seconds=60) as fake:
        (item,) = await create(http, fake)
        body = {"pre_video_id": item["_id"], "audio_type": 1}
        _, answer = await call(http, fake, "update_audio", body)
        assert 1003 == answer["code"]
        _, answer = await call(http, fake, "update_audio", {**body, "pre_video_id": "f" * 24})
        assert 1008 == answer["code"]
        fake.complete(item["_id"])
        _, answer = await call(http, fake, "update_audio", body)
        task = answer["data"]
        assert task["only_add_audio"] is True
        assert task["_id"] != item["_id"]
        assert 1 == (await results(http, fake, [task["_id"]]))[task["_id"]]["status"]
        assert 2 == fake.created_count


async def test_delete_refuses_processing_and_unknown(
    http: aiohttp.ClientSession,
) -> None:
    """delbyids deletes, lists processing and unknown ids in noPermissionItems."""
    async with FakeAkoolServer(queue_seconds=60, process_seconds=60) as fake:
        done, busy = [i["_id"] for i in await create(http, fake, count=2)]
        fake.complete(done)
        fake.set_status(busy, 2)
        unknown = "e" * 24
        _, answer = await call(http, fake, "delete", {"_ids": f"{done},{busy},{unknown}"})
        assert [done] == answer["data"]["successIds"]
        refused = {item["_id"] for item in answer["data"]["noPermissionItems"]}
        assert {busy, unknown} == refused
        assert [busy] == list(await results(http, fake, [done, busy]))
        _, answer = await call(http, fake, "delete", {"_ids": [done]})
        assert 1003 == answer["code"]


# -- download --------------------------------------------------------------------------------


async def test_download_serves_deterministic_bytes(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """The video URL serves a few KiB of video/mp4 with a correct Content-Length."""
    (item,) = await create(http, server)
    async with http.get(server.video_url(item["_id"])) as response:
        data = await response.read()
        assert "video/mp4" == response.content_type
        assert len(data) == response.content_length
    assert video_bytes(item["_id"]) == data
    assert 4096 <= len(data) <= 8192
    async with http.get(f"{server.url}/files/{'0' * 24}.mp4") as response:
        assert 404 == response.status


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "http_status"),
    [(FaultKind.HTTP_500, 500), (FaultKind.HTTP_502, 502), (FaultKind.HTTP_503, 503)],
)
async def test_http_error_faults_do_not_act(
    server: FakeAkoolServer, http: aiohttp.ClientSession, kind: FaultKind, http_status: int
) -> None:
    """HTTP 5xx faults answer that status and create nothing; the next request is normal."""
    server.inject("create_batch", Fault(kind))
    async with http.post(
        server.url + ENDPOINT_PATHS["create_batch"][1], json=BATCH, headers=KEY
    ) as r:
        assert http_status == r.status
    assert 0 == server.created_count
    (record,) = server.calls("create_batch")
    assert (kind, http_status, None, []) == (
        record.fault,
        record.http_status,
        record.code,
        record.created_ids,
    )
    assert [("create_batch", kind)] == server.faults_served
    assert 1 == len(await create(http, server))


async def test_http_429_sends_retry_after(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """HTTP_429 answers 429 with Retry-After when the fault sets retry_after."""
    server.inject("results", Fault(FaultKind.HTTP_429, retry_after=0.5), FaultKind.HTTP_429)
    url = server.url + ENDPOINT_PATHS["results"][1]
    async with http.post(url, json={"_ids": "x"}, headers=KEY) as response:
        assert (429, "0.5") == (response.status, response.headers.get("Retry-After"))
    async with http.post(url, json={"_ids": "x"}, headers=KEY) as response:
        assert (429, None) == (response.status, response.headers.get("Retry-After"))


async def test_code_1005_fault(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """CODE_1005 answers HTTP 200 with code 1005 and creates nothing."""
    server.inject("create_batch", Fault(FaultKind.CODE_1005))
    status, answer = await call(http, server, "create_batch", BATCH)
    assert (200, 1005) == (status, answer["code"])
    assert 0 == server.created_count


async def test_reset_before_drops_without_acting(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """RESET_BEFORE closes the connection unanswered and creates nothing."""
    server.inject("create_batch", Fault(FaultKind.RESET_BEFORE))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, server, "create_batch", {**BATCH, "count": 2})
    assert 0 == server.created_count
    assert [] == server.calls("create_batch")[0].created_ids


async def test_reset_after_acts_then_drops(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """RESET_AFTER creates and charges, then closes the connection unanswered."""
    before = server.credit
    server.inject("create_batch", Fault(FaultKind.RESET_AFTER))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, server, "create_batch", {**BATCH, "count": 2})
    (record,) = server.calls("create_batch")
    assert 2 == server.created_count == len(record.created_ids)
    assert set(record.created_ids) == set(server.videos)
    assert before - 40.0 == server.credit
    assert (FaultKind.RESET_AFTER, None) == (record.fault, record.http_status)


async def test_slow_fault_delays_and_acts(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """SLOW waits `delay` and then answers normally."""
    server.inject("create_batch", Fault(FaultKind.SLOW, delay=0.2))
    started = time.monotonic()
    await create(http, server)
    assert time.monotonic() - started >= 0.2
    assert 1 == server.created_count
    server.inject("results", Fault(FaultKind.SLOW, delay=1.0))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(results(http, server, list(server.videos)), 0.1)


async def test_malformed_json_acts_first(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """MALFORMED_JSON answers HTTP 200 with a body that is not JSON, after creating."""
    server.inject("create_batch", Fault(FaultKind.MALFORMED_JSON))
    async with http.post(
        server.url + ENDPOINT_PATHS["create_batch"][1], json=BATCH, headers=KEY
    ) as r:
        assert 200 == r.status
        with pytest.raises(json.JSONDecodeError):
            await r.json()
    assert 1 == server.created_count == len(server.calls("create_batch")[0].created_ids)


async def test_missing_data_acts_first(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """MISSING_DATA answers {"code":1000,"msg":"ok"} without data, after creating."""
    server.inject("create_batch", Fault(FaultKind.MISSING_DATA))
    status, answer = await call(http, server, "create_batch", BATCH)
    assert (200, {"code": 1000, "msg": "ok"}) == (status, answer)
    assert 1 == server.created_count


async def test_truncated_download(server: FakeAkoolServer, http: aiohttp.ClientSession) -> None:
    """TRUNCATED announces the full Content-Length, sends fewer bytes and closes."""
    (item,) = await create(http, server)
    server.inject("download", Fault(FaultKind.TRUNCATED))
    async with http.get(server.video_url(item["_id"])) as response:
        assert len(video_bytes(item["_id"])) == response.content_length
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    async with http.get(server.video_url(item["_id"])) as response:
        assert video_bytes(item["_id"]) == await response.read()


async def test_inject_random_is_seeded(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """inject_random faults about `rate` of the requests, reproducibly for a seed."""

    async def run() -> list[int]:
        server.reset_log()
        server.inject_random("credits", rate=0.5, kinds=[FaultKind.HTTP_503], seed=7)
        statuses = []
        for _ in range(40):
            async with http.get(server.url + ENDPOINT_PATHS["credits"][1], headers=KEY) as r:
                statuses.append(r.status)
        return statuses

    first = await run()
    assert first == await run()
    assert 5 < first.count(503) < 35
    assert first.count(503) == len(server.faults_served)
    server.inject_random("credits", rate=0.0, kinds=[FaultKind.HTTP_503])
    assert 200 == (await call(http, server, "credits"))[0]


async def test_max_in_flight_with_create_latency(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """max_in_flight reports the peak of concurrent requests to one endpoint."""
    server.create_latency = 0.2
    await asyncio.gather(*(create(http, server) for _ in range(5)))
    assert 5 == server.max_in_flight("create_batch")
    assert 0 == server.max_in_flight("results")
    record = server.calls("create_batch")[0]
    assert record.finished_at is not None
    assert record.finished_at - record.started_at >= 0.2
    server.reset_log()
    assert (0, 0) == (server.max_in_flight("create_batch"), server.call_count("create_batch"))
    assert 5 == server.created_count


# -- waiting and holding ---------------------------------------------------------------------


async def test_wait_for_calls_returns_on_arrival_and_answered_waits_for_answers(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """wait_for_calls returns once n requests arrived; answered=True once n were answered."""
    server.hold("credits")
    tasks = [asyncio.create_task(call(http, server, "credits")) for _ in range(3)]
    arrived = await server.wait_for_calls("credits", 3)
    assert 3 == len(arrived)
    assert all(r.endpoint == "credits" and r.finished_at is None for r in arrived)
    with pytest.raises(TimeoutError, match="'credits' received 0 answered requests, not 1"):
        await server.wait_for_calls("credits", answered=True, timeout=0.05)
    server.release("credits")
    answered = await server.wait_for_calls("credits", 3, answered=True)
    assert arrived == answered
    assert all(r.finished_at is not None for r in answered)
    assert [200, 200, 200] == [status for status, _ in await asyncio.gather(*tasks)]


async def test_wait_for_calls_times_out_and_checks_the_endpoint(server: FakeAkoolServer) -> None:
    """A wait that is never satisfied raises TimeoutError saying what was missing."""
    with pytest.raises(TimeoutError, match="'results' received 0 requests, not 1"):
        await server.wait_for_calls("results", timeout=0.05)
    with pytest.raises(ValueError, match="unknown endpoint"):
        await server.wait_for_calls("result")


async def test_wait_until_wakes_on_each_request(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """wait_until re-checks its predicate as requests finish, and returns once it holds."""
    waiter = asyncio.create_task(server.wait_until(lambda: server.created_count >= 2))
    await create(http, server)
    assert not waiter.done()
    await create(http, server)
    await asyncio.wait_for(waiter, timeout=10)
    with pytest.raises(TimeoutError, match="is still false"):
        await server.wait_until(lambda: server.created_count > 2, timeout=0.05)


async def test_wait_idle_waits_for_a_request_the_client_gave_up_on(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """wait_idle returns only once the fake has finished every request, even abandoned ones."""
    server.inject("create_batch", Fault(FaultKind.SLOW, delay=0.3))
    method, path = ENDPOINT_PATHS["create_batch"]
    with pytest.raises(TimeoutError):
        async with http.request(
            method,
            server.url + path,
            json=BATCH,
            headers=KEY,
            timeout=aiohttp.ClientTimeout(total=0.05),
        ):
            pass
    await server.wait_idle()
    assert 1 == server.created_count
    assert all(r.finished_at is not None for r in server.requests)


async def test_wait_idle_times_out_per_endpoint(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """wait_idle(endpoint) ignores other endpoints; a held request keeps it waiting."""
    with server.holding("credits"):
        task = asyncio.create_task(call(http, server, "credits"))
        await server.wait_for_calls("credits")
        await server.wait_idle("results")
        with pytest.raises(TimeoutError, match="1 requests still in flight"):
            await server.wait_idle(timeout=0.05)
    await server.wait_idle()
    assert 200 == (await task)[0]


async def test_hold_keeps_requests_unanswered_and_unacted_until_release(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """A held create is recorded but creates nothing and gets no answer until release()."""
    server.hold("create_batch")
    server.hold("create_batch")  # holding twice is still one hold
    held = asyncio.create_task(create(http, server))
    await server.wait_for_calls("create_batch")
    done, _ = await asyncio.wait({held}, timeout=0.2)
    assert (set(), 0) == (done, server.created_count)
    assert 200 == (await call(http, server, "credits"))[0]  # other endpoints are not held
    server.release("create_batch")
    assert 1 == len(await asyncio.wait_for(held, timeout=10))
    assert 1 == len(await create(http, server))  # released: later requests pass straight on
    assert 2 == server.created_count


async def test_holding_releases_on_the_way_out_even_on_error(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """``with server.holding(...)`` releases when the block ends, by error too."""
    tasks = []

    async def fail_while_holding() -> None:
        with server.holding("credits"):
            tasks.append(asyncio.create_task(call(http, server, "credits")))
            await server.wait_for_calls("credits")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_while_holding()
    assert 200 == (await asyncio.wait_for(tasks[0], timeout=10))[0]
    with pytest.raises(ValueError, match="unknown endpoint"):
        server.hold("credit")


async def test_close_releases_holds(http: aiohttp.ClientSession) -> None:
    """close() lets held requests finish instead of leaving them to be cancelled."""
    server = FakeAkoolServer()
    await server.start()
    try:
        server.hold("credits")
        task = asyncio.create_task(call(http, server, "credits"))
        await server.wait_for_calls("credits")
    finally:
        await server.close()
    assert 200 == (await asyncio.wait_for(task, timeout=10))[0]


def test_public_names_are_unchanged_and_read_akool_async_testing() -> None:
    """The package split kept every public name, and exported classes name the public module."""
    import akool_async.testing as testing

    assert [
        "DEFAULT_API_KEY",
        "DEFAULT_CLIENT_ID",
        "DEFAULT_MODELS",
        "ENDPOINT_PATHS",
        "WEBHOOK_EVENT_TYPE",
        "FakeAkoolServer",
        "FakeVideo",
        "Fault",
        "FaultKind",
        "RecordedRequest",
        "WebhookDelivery",
        "serve_forever",
        "sign_webhook",
        "video_bytes",
    ] == testing.__all__
    assert "akool_async.testing" == FakeAkoolServer.__module__ == FaultKind.__module__


# -- webhooks --------------------------------------------------------------------------------


@attrs.define
class Receiver:
    """A loopback webhook receiver that records bodies and answers scripted statuses."""

    url: str = ""
    bodies: list[dict[str, Any]] = attrs.Factory(list)
    statuses: list[int] = attrs.Factory(list)
    arrived: asyncio.Event = attrs.Factory(asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def events(self) -> list[tuple[str, int]]:
        out = []
        for body in self.bodies:
            event = verify_webhook(body, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_API_KEY)
            out.append((event.id, int(event.status)))
        return out


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    async with serve_app(app) as url:
        rec.url = f"{url}/hook"
        yield rec


async def test_webhooks_deliver_processing_then_terminal(
    server: FakeAkoolServer, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """A webhook video gets signed, encrypted deliveries for status 2 then 3."""
    (item,) = await create(http, server, webhookurl=receiver.url)
    async with asyncio.timeout(5):
        await server.wait_webhooks()
    assert [(item["_id"], 2), (item["_id"], 3)] == receiver.events()
    event = verify_webhook(
        receiver.bodies[-1], client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_API_KEY
    )
    assert server.video_url(item["_id"]) == event.url
    assert [200, 200] == [d.http_status for d in server.webhook_deliveries]


async def test_webhooks_retry_until_200(
    server: FakeAkoolServer, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """A delivery is retried while the receiver does not answer HTTP 200."""
    server.webhook_retry_delay = 0.01
    receiver.statuses = [500, 503]
    (item,) = await create(http, server, webhookurl=receiver.url)
    async with asyncio.timeout(5):
        await server.wait_webhooks()
    assert [(item["_id"], 2)] * 3 + [(item["_id"], 3)] == receiver.events()
    assert [1, 2, 3, 1] == [d.attempt for d in server.webhook_deliveries]
    assert 1 == len({d.envelope["nonce"] for d in server.webhook_deliveries[:3] if d.envelope})


async def test_webhooks_give_up_after_max_attempts(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """Attempts per delivery are bounded; non-200 answers and refused connections are logged."""
    server.webhook_max_attempts = 2
    server.webhook_retry_delay = 0.01
    server.queue_seconds = server.process_seconds = 0.0
    with socket.socket() as sock:  # a loopback port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    await create(http, server, webhookurl=f"{server.url}/nowhere")
    await create(http, server, webhookurl=f"http://127.0.0.1:{closed_port}/hook")
    async with asyncio.timeout(5):
        await server.wait_webhooks()
    answered = [d for d in server.webhook_deliveries if "nowhere" in d.url]
    refused = [d for d in server.webhook_deliveries if "nowhere" not in d.url]
    assert [(1, 404), (2, 404)] == [(d.attempt, d.http_status) for d in answered]
    assert [1, 2] == [d.attempt for d in refused]
    assert all(d.error and d.http_status is None for d in refused)
    assert [] == server.webhook_errors


async def test_webhook_knobs_drop_duplicate_reorder(
    server: FakeAkoolServer, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """webhook_drop skips chosen deliveries; duplicate sends twice; reorder sends 3 before 2."""
    server.webhook_duplicate = True
    server.webhook_reorder = True
    (a,) = await create(http, server, webhookurl=receiver.url)
    async with asyncio.timeout(5):
        await server.wait_webhooks()
    assert [(a["_id"], 3)] * 2 + [(a["_id"], 2)] * 2 == receiver.events()

    receiver.bodies.clear()
    server.webhook_duplicate = server.webhook_reorder = False
    server.webhook_drop = lambda _id, status: status == 2
    (b,) = await create(http, server, webhookurl=receiver.url)
    async with asyncio.timeout(5):
        await server.wait_webhooks()
    assert [(b["_id"], 3)] == receiver.events()
    assert [(b["_id"], 2)] == [
        (d.video_id, d.payload["status"]) for d in server.webhook_deliveries if d.dropped
    ]


async def test_webhook_fires_on_forced_status_and_close_cancels(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """complete() fires the terminal webhook now; close() cancels deliveries still waiting."""
    async with FakeAkoolServer(queue_seconds=60, process_seconds=60) as fake:
        a, b = [i["_id"] for i in await create(http, fake, count=2, webhookurl=receiver.url)]
        fake.complete(a)
        await asyncio.wait_for(receiver.arrived.wait(), 5)
        assert [(a, 3)] == receiver.events()
        # b never moves (60 s queue), so its delivery task is still waiting.
        assert fake.webhooks_pending >= 1
        assert VideoStatus.QUEUEING is fake.status_of(b)
    assert 0 == fake.webhooks_pending


async def test_sign_webhook_round_trips() -> None:
    """sign_webhook accepts a mapping or an event-like object and verify_webhook reads it."""
    credentials: dict[str, Any] = {
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_API_KEY,
    }
    payload = {"_id": "a" * 24, "status": 3, "type": "image2video", "url": "http://x/v.mp4"}
    envelope = sign_webhook(payload, **credentials, timestamp=1_700_000_000_000, nonce=42)
    assert {"signature", "dataEncrypt", "timestamp", "nonce"} == set(envelope)
    event = verify_webhook(envelope, **credentials, tolerance=None)
    assert (payload, 42, "42") == (dict(event.raw), envelope["nonce"], event.nonce)
    again = verify_webhook(sign_webhook(event, **credentials), **credentials)
    assert (event.id, event.status, event.url) == (again.id, again.status, again.url)


# -- standalone ------------------------------------------------------------------------------


async def test_serve_forever_runs_until_cancelled(http: aiohttp.ClientSession) -> None:
    """serve_forever serves until its task is cancelled and reports the started server."""
    started: asyncio.Future[FakeAkoolServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_forever(port=0, ready=started.set_result, credit=7.0))
    fake = await asyncio.wait_for(started, 5)
    assert {"credit": 7.0} == (await call(http, fake, "credits"))[1]["data"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(http, fake, "credits")


async def test_webhook_task_errors_are_kept(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    """A delivery task that fails (key unusable for AES) lands in webhook_errors, not the log."""
    async with FakeAkoolServer(api_key="too-short", queue_seconds=0, process_seconds=0) as fake:
        headers = {"x-api-key": "too-short"}
        body = {**BATCH, "webhookurl": receiver.url}
        _, answer = await call(http, fake, "create_batch", body, headers=headers)
        assert 1000 == answer["code"]
        async with asyncio.timeout(5):
            await fake.wait_webhooks()
        assert 1 == len(fake.webhook_errors)
        assert isinstance(fake.webhook_errors[0], ValueError)
    assert [] == receiver.bodies


# -- what AKOOL accepts and what it may answer ----------------------------------------------


async def test_unknown_request_fields_are_accepted_and_recorded(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """Fields AKOOL does not document are ignored, as AKOOL does, and kept in the request
    log's ``unknown_fields`` (what AKOOL's demo sends to the batch endpoint, say)."""
    extra = {"effect_code": "squish_1", "audio_type": 3, "multi_prompt": [{"prompt": "a"}]}
    items = await create(http, server, **extra)
    status, answer = await call(
        http, server, "results", {"_ids": items[0]["_id"], "page": 1}, headers=KEY
    )

    assert (1, 200, 1000) == (len(items), status, answer["code"])
    create_call, results_call = server.requests
    assert extra == create_call.unknown_fields
    assert {"page": 1} == results_call.unknown_fields
    assert "" == items[0]["effect_name"]  # ignored: effects belong to the single create


async def test_wrong_typed_fields_knob(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """``wrong_typed_fields`` sends optional fields with plausible wrong types and an
    unknown key, in create and results answers alike; required ones stay usable."""
    server.wrong_typed_fields = True
    (created,) = await create(http, server, video_length=10)
    server.complete(created["_id"])
    item = (await results(http, server, [created["_id"]]))[created["_id"]]

    for answer in (created, item):
        assert ("40.0", 0, "false", None) == (
            answer["deduction_credit"],
            answer["only_add_audio"],
            answer["extend_prompt"],
            answer["negative_prompt"],
        )
        assert isinstance(answer["create_time"], str)
        assert "task_meta" in answer
    assert (3, server.video_url(created["_id"])) == (item["status"], item["video_url"])
    assert isinstance(item["video_duration"], str)


async def test_answer_with_sends_an_unknown_status_until_cleared(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """``answer_with(id, status=5)`` makes results report status 5; with no fields the
    video is answered normally again."""
    (created,) = await create(http, server)
    video_id = created["_id"]
    server.complete(video_id)
    server.answer_with(video_id, status=5)
    odd = (await results(http, server, [video_id]))[video_id]
    server.answer_with(video_id)
    normal = (await results(http, server, [video_id]))[video_id]

    assert (5, 3) == (odd["status"], normal["status"])


async def test_answer_with_sends_a_completed_video_without_a_url(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """``answer_with(id, video_url="")`` on a completed video answers status 3 with an
    empty ``video_url``."""
    (created,) = await create(http, server)
    video_id = created["_id"]
    server.complete(video_id)
    server.answer_with(video_id, video_url="")
    item = (await results(http, server, [video_id]))[video_id]

    assert (3, "") == (item["status"], item["video_url"])


async def test_audio_replacement_costs_5_credits_per_5_seconds(
    server: FakeAkoolServer, http: aiohttp.ClientSession
) -> None:
    """Replacing a 10 s video's audio costs 10 credits (the docs' 5 per 5 s)."""
    (created,) = await create(http, server, video_length=10)
    server.complete(created["_id"])
    before = server.credit
    body = {"pre_video_id": created["_id"], "audio_url": "https://a.example/x.mp3", "audio_type": 2}
    _, answer = await call(http, server, "update_audio", body)

    assert (1000, 10.0, 10.0) == (
        answer["code"],
        answer["data"]["deduction_credit"],
        before - server.credit,
    )
