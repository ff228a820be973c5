"""Authentication against the fake: x-api-key, the legacy token flow, refresh on 1101."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import AkoolClient, AuthenticationError, RetryPolicy
from akool_async.testing import FakeAkoolServer


@contextlib.asynccontextmanager
async def token_client(server: FakeAkoolServer) -> AsyncIterator[AkoolClient]:
    """A client using the legacy clientId/clientSecret token flow."""
    async with AkoolClient(
        client_id=server.client_id,
        client_secret=server.client_secret,
        base_url=server.url,
        poll=FAST_POLL,
        retry=RetryPolicy.fast(),
        wait_timeout=10.0,
    ) as client:
        yield client


def bearer(server: FakeAkoolServer, endpoint: str) -> list[str | None]:
    """The Authorization header of each request to ``endpoint``."""
    return [r.headers.get("authorization") for r in server.calls(endpoint)]


async def test_token_is_fetched_once_and_sent_as_bearer(server: FakeAkoolServer) -> None:
    """The token client fetches one token and sends it as Bearer, without x-api-key."""
    async with token_client(server) as client:
        await client.account.credits()
        await client.account.credits()
    (token_call,) = server.calls("token")
    assert {"clientId": server.client_id, "clientSecret": server.client_secret} == token_call.body
    first, second = server.calls("credits")
    assert first.headers["authorization"] == second.headers["authorization"]
    assert first.headers["authorization"].startswith("Bearer ")
    assert "x-api-key" not in first.headers


async def test_expired_token_is_refreshed_once_and_request_repeated(
    server: FakeAkoolServer,
) -> None:
    """After 1101 the client fetches one new token and repeats the request with it."""
    async with token_client(server) as client:
        assert 100_000.0 == await client.account.credits()
        server.expire_tokens()
        assert 100_000.0 == await client.account.credits()
    assert 2 == server.call_count("token")
    ok, refused, repeated = server.calls("credits")
    assert (1000, 1101, 1000) == (ok.code, refused.code, repeated.code)
    assert ok.headers["authorization"] == refused.headers["authorization"]
    assert refused.headers["authorization"] != repeated.headers["authorization"]


async def test_expired_token_on_create_repeats_the_create_once(server: FakeAkoolServer) -> None:
    """A create refused with 1101 did not act: it is repeated after the refresh, created once."""
    async with token_client(server) as client:
        await client.account.credits()
        server.expire_tokens()
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    refused, repeated = server.calls("create_batch")
    assert ([], 1101) == (refused.created_ids, refused.code)
    assert set(batch.ids) == set(repeated.created_ids) == set(server.videos)


async def test_failed_refresh_raises_authentication_error(server: FakeAkoolServer) -> None:
    """When getToken refuses the credentials on refresh, AuthenticationError is raised."""
    async with token_client(server) as client:
        await client.account.credits()
        server.expire_tokens()
        server.client_id = "another-client-id"  # getToken now answers 1101
        with pytest.raises(AuthenticationError) as caught:
            await client.account.credits()
    assert (1101, "/api/open/v3/getToken") == (caught.value.code, caught.value.path)
    assert 2 == server.call_count("token")
    assert 2 == server.call_count("credits")


async def test_refresh_after_failed_refresh_fetches_again(server: FakeAkoolServer) -> None:
    """A failed refresh forgets the token: once getToken works again, requests recover."""
    async with token_client(server) as client:
        await client.account.credits()
        server.expire_tokens()
        client_id, server.client_id = server.client_id, "another-client-id"
        with pytest.raises(AuthenticationError):
            await client.account.credits()
        server.client_id = client_id
        assert 100_000.0 == await client.account.credits()
    assert 3 == server.call_count("token")


async def test_wrong_credentials_on_first_fetch_raise_authentication_error() -> None:
    """A token client with a wrong secret fails with AuthenticationError, without looping."""
    async with FakeAkoolServer() as server:
        async with AkoolClient(
            client_id=server.client_id,
            client_secret="x" * 32,
            base_url=server.url,
            retry=RetryPolicy.fast(),
        ) as client:
            with pytest.raises(AuthenticationError):
                await client.account.credits()
        assert 1 == server.call_count("token")
        assert 0 == server.call_count("credits")


async def test_concurrent_requests_on_cold_client_fetch_one_token(
    server: FakeAkoolServer,
) -> None:
    """Twenty requests at once on a client without a token cause a single getToken."""
    async with token_client(server) as client:
        answers = await asyncio.gather(*(client.account.credits() for _ in range(20)))
    assert [100_000.0] * 20 == answers
    assert 1 == server.call_count("token")
    assert 1 == len(set(bearer(server, "credits")))


async def test_concurrent_1101s_refresh_once(server: FakeAkoolServer) -> None:
    """Many requests refused with 1101 together share one refresh."""
    async with token_client(server) as client:
        await client.account.credits()
        server.expire_tokens()
        server.reset_log()
        answers = await asyncio.gather(*(client.account.credits() for _ in range(10)))
    assert [100_000.0] * 10 == answers
    assert 1 == server.call_count("token")
    assert 2 == len(set(bearer(server, "credits")))


async def test_unknown_api_key_is_not_retried(server: FakeAkoolServer) -> None:
    """With x-api-key there is nothing to refresh: an unknown key (1109, as AKOOL's demo
    expects) raises AuthenticationError at once."""
    async with AkoolClient(
        "y" * 32, base_url=server.url, retry=RetryPolicy.fast(), poll=FAST_POLL
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.account.credits()
    assert 1109 == caught.value.code
    assert 1 == server.call_count("credits")
    assert 0 == server.call_count("token")


async def test_authentication_failure_fails_every_waiting_handle(
    server: FakeAkoolServer, client: AkoolClient
) -> None:
    """When results calls are refused for bad credentials, every waiting handle gets that error."""
    server.queue_seconds = 60.0  # the videos stay pending
    first = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
    second = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    server.api_key = "z" * 32  # the client's key is now unknown (1109)
    outcomes = await asyncio.gather(
        *(h.wait(timeout=10) for h in first.handles + second.handles), return_exceptions=True
    )
    assert [AuthenticationError] * 5 == [type(o) for o in outcomes]
    assert {1109} == {o.code for o in outcomes if isinstance(o, AuthenticationError)}
    assert 0 == client.poller.statistics().pending


async def test_token_client_refreshes_while_polling(server: FakeAkoolServer) -> None:
    """An expired token during polling is refreshed; the handles complete."""
    async with token_client(server) as client:
        server.queue_seconds = 0.2
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
        server.expire_tokens()
        videos = await asyncio.gather(*batch.handles)
    assert set(batch.ids) == {v.id for v in videos}
    assert 2 == server.call_count("token")
