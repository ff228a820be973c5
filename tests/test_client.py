"""Tests of AkoolClient: construction, credentials, lifecycle (open, closed, unclosed)."""

from __future__ import annotations

import gc
import warnings
from typing import Any

import aiohttp
import pytest
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import AkoolClient, AkoolValueError, ClientClosedError, RetryPolicy
from akool_async._client import client_core
from akool_async.testing import FakeAkoolServer

ENV = "AKOOL_API_KEY"
VIDEO_ID = "65f1c2b3d4e5f6a7b8c9d0e1"


def make_client(server: FakeAkoolServer, **kwargs: Any) -> AkoolClient:
    """A client for ``server`` with fast timings (credentials from ``kwargs`` or the fake)."""
    kwargs.setdefault("api_key", server.api_key)
    return AkoolClient(base_url=server.url, poll=FAST_POLL, retry=RetryPolicy.fast(), **kwargs)


async def test_api_key_argument_is_sent_as_x_api_key(server: FakeAkoolServer) -> None:
    """``api_key=`` is sent as the ``x-api-key`` header, with no Authorization header."""
    async with make_client(server) as client:
        assert 100_000.0 == await client.account.credits()
    (call,) = server.calls("credits")
    assert server.api_key == call.headers["x-api-key"]
    assert "authorization" not in call.headers


async def test_api_key_defaults_to_environment(
    server: FakeAkoolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``api_key=``, ``$AKOOL_API_KEY`` is used."""
    monkeypatch.setenv(ENV, server.api_key)
    async with make_client(server, api_key=None) as client:
        await client.account.credits()
    assert server.api_key == server.calls("credits")[0].headers["x-api-key"]


async def test_api_key_argument_wins_over_environment(
    server: FakeAkoolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit ``api_key=`` is used even when ``$AKOOL_API_KEY`` is set."""
    monkeypatch.setenv(ENV, "some-other-key")
    async with make_client(server) as client:
        await client.account.credits()
    assert server.api_key == server.calls("credits")[0].headers["x-api-key"]


async def test_client_id_and_secret_use_the_token(
    server: FakeAkoolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only ``client_id`` and ``client_secret``, requests carry a Bearer token, not a key."""
    monkeypatch.setenv(ENV, "ignored-env-key")
    async with make_client(
        server, api_key=None, client_id=server.client_id, client_secret=server.client_secret
    ) as client:
        await client.account.credits()
        await client.account.credits()
    assert 1 == server.call_count("token")
    for call in server.calls("credits"):
        assert call.headers["authorization"].startswith("Bearer ")
        assert "x-api-key" not in call.headers


async def test_client_id_alone_still_reads_environment_key(
    server: FakeAkoolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``client_id`` without a secret (webhooks only) leaves the key to ``$AKOOL_API_KEY``."""
    monkeypatch.setenv(ENV, server.api_key)
    async with make_client(server, api_key=None, client_id=server.client_id) as client:
        await client.account.credits()
    assert server.api_key == server.calls("credits")[0].headers["x-api-key"]
    assert 0 == server.call_count("token")


def test_no_credentials_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, no env var and no id/secret pair raise AkoolValueError naming the ways to fix it."""
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(AkoolValueError, match=r"no credentials.*\$AKOOL_API_KEY"):
        AkoolClient()
    with pytest.raises(AkoolValueError, match="no credentials"):
        AkoolClient(client_secret="only-a-secret")


def test_empty_environment_key_is_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ``$AKOOL_API_KEY`` counts as unset."""
    monkeypatch.setenv(ENV, "")
    with pytest.raises(AkoolValueError, match="no credentials"):
        AkoolClient()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": 123}, "api_key"),
        ({"client_id": "", "client_secret": "s"}, "client_id"),
        ({"base_url": "openapi.akool.com"}, "base_url"),
        ({"base_url": "ftp://openapi.akool.com"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"wait_timeout": 0}, "wait_timeout"),
        ({"wait_timeout": True}, "wait_timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"max_concurrent_creates": 0}, "max_concurrent_creates"),
        ({"max_concurrent_creates": True}, "max_concurrent_creates"),
    ],
)
def test_bad_settings_raise(kwargs: dict[str, Any], field: str) -> None:
    """Invalid constructor arguments raise AkoolValueError naming the argument."""
    kwargs.setdefault("api_key", "a-key")
    with pytest.raises(AkoolValueError, match=f"^{field}: "):
        AkoolClient(**kwargs)


def test_construction_needs_no_event_loop() -> None:
    """A client can be built outside a running loop; nothing is opened until it is used."""
    client = AkoolClient("a-key", base_url="http://127.0.0.1:9")
    assert not client.closed
    assert "http://127.0.0.1:9" == client.base_url


@pytest.mark.parametrize("auth", ["api_key", "token"])
def test_repr_has_no_secret(auth: str) -> None:
    """The repr names the auth scheme and state, never the key, secret or token."""
    secret = "s3cr3t-value-0123456789abcdef00"
    if auth == "api_key":
        client = AkoolClient(secret, base_url="http://127.0.0.1:9")
    else:
        client = AkoolClient(client_id="cid", client_secret=secret, base_url="http://127.0.0.1:9")
    text = repr(client)
    assert secret not in text
    assert f"<AkoolClient base_url='http://127.0.0.1:9' auth={auth} [secure] open>" == text


async def test_async_with_returns_client_and_closes(server: FakeAkoolServer) -> None:
    """``async with`` yields the client itself and closes it on exit."""
    client = make_client(server)
    async with client as entered:
        assert client is entered
        assert not client.closed
    assert client.closed
    assert repr(client).endswith(" closed>")


async def test_closed_client_raises_client_closed(server: FakeAkoolServer) -> None:
    """Every call on a closed client raises ClientClosedError (a RuntimeError) and sends nothing."""
    async with make_client(server) as client:
        pass
    calls = [
        client.account.credits(),
        client.models.list(),
        client.image_to_video.create_batch(**CREATE_ARGS),
        client.image_to_video.results([VIDEO_ID]),
        client.image_to_video.effects(),
        client.image_to_video.delete([VIDEO_ID]),
    ]
    for call in calls:
        with pytest.raises(ClientClosedError) as info:
            await call
        assert isinstance(info.value, RuntimeError)
    with pytest.raises(ClientClosedError):
        client.image_to_video.handle(VIDEO_ID)
    assert [] == server.requests


async def test_closed_client_cannot_reopen(server: FakeAkoolServer) -> None:
    """Entering a closed client again raises ClientClosedError instead of reopening it."""
    client = make_client(server)
    async with client:
        await client.account.credits()
    with pytest.raises(ClientClosedError):
        async with client:
            pytest.fail("a closed client must not be entered")
    assert client.closed


async def test_aclose_is_idempotent(server: FakeAkoolServer) -> None:
    """``aclose()`` may be called again, before or after ``async with`` exits."""
    async with make_client(server) as client:
        await client.account.credits()
        await client.aclose()
        await client.aclose()
    await client.aclose()
    assert client.closed


async def test_client_without_async_with(server: FakeAkoolServer) -> None:
    """A client used without ``async with`` works and is closed by ``aclose()``."""
    client = make_client(server)
    try:
        assert 100_000.0 == await client.account.credits()
    finally:
        await client.aclose()
    assert client.closed


async def leak_client(server: FakeAkoolServer) -> aiohttp.ClientSession:
    """Use a client and drop it unclosed; return its still-open session for cleanup."""
    client = make_client(server)
    await client.account.credits()
    session = client_core(client).transport.session()
    del client  # dropped here (or at the next collection, were it in a cycle)
    gc.collect()
    return session


async def test_unclosed_client_warns(server: FakeAkoolServer) -> None:
    """A client dropped with its session open warns ResourceWarning without the key."""
    session: aiohttp.ClientSession | None = None
    try:
        with pytest.warns(ResourceWarning, match="unclosed <AkoolClient") as record:
            session = await leak_client(server)
        assert all(server.api_key not in str(w.message) for w in record)
    finally:
        # The warning only reports the leak: close what the client left open.
        if session is not None:
            await session.close()


async def test_closed_client_does_not_warn(server: FakeAkoolServer) -> None:
    """A client that was closed, or never opened, is dropped without a ResourceWarning."""
    used = make_client(server)
    async with used:
        await used.account.credits()
    unused = make_client(server)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        del used, unused
        gc.collect()
    assert [] == [w for w in record if issubclass(w.category, ResourceWarning)]
