"""Ready-made webhook receivers for aiohttp and ASGI apps (public: ``akool_async.webhooks``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from aiohttp import web

from ._errors import AkoolValueError, WebhookVerificationError
from ._webhook_crypto import DEFAULT_WEBHOOK_TOLERANCE

if TYPE_CHECKING:
    from ._client import AkoolClient

#: The largest webhook body a receiver reads, in bytes. A genuine delivery is a few hundred
#: bytes; the cap keeps a hostile sender from making the receiver buffer megabytes.
DEFAULT_MAX_WEBHOOK_BODY: Final = 64 * 1024

# The ASGI types, spelled as Starlette spells them so the app passes its type checks.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("akool_async.webhooks")

_CHUNK: Final = 16 * 1024
_JSON: Final = "application/json"
_OK: Final = b'{"ok":true}'
# One body for every verification failure: see the module docstring.
_REJECTED: Final = b'{"ok":false,"error":"invalid webhook"}'
_NOT_ALLOWED: Final = b'{"ok":false,"error":"method not allowed"}'
_TOO_LARGE: Final = b'{"ok":false,"error":"body too large"}'


def aiohttp_handler(
    client: AkoolClient,
    *,
    tolerance: float | None = DEFAULT_WEBHOOK_TOLERANCE,
    max_body_size: int = DEFAULT_MAX_WEBHOOK_BODY,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An ``aiohttp.web`` handler that receives AKOOL webhooks for ``client``.

    Register it for POST: ``app.router.add_post("/akool/webhook", aiohttp_handler(client))``.

    Args:
        client: the client whose handles the deliveries resolve; it needs ``client_id``.
        tolerance: seconds a delivery's timestamp may be off from now (``None``: no check).
        max_body_size: bodies larger than this many bytes are answered 413 unread.

    Returns:
        The handler coroutine function.

    Raises:
        AkoolValueError: the client cannot verify webhooks (no ``client_id``, or an API key
            that is not 16, 24 or 32 bytes), or a bad ``tolerance`` or ``max_body_size``.
    """
    _check_setup(client, tolerance, max_body_size)

    async def akool_webhook(request: web.Request) -> web.Response:
        if request.method != "POST":
            return _aiohttp_response(405, _NOT_ALLOWED, {"Allow": "POST"})
        declared = request.content_length
        if declared is not None and declared > max_body_size:
            return _aiohttp_response(413, _TOO_LARGE)
        body = bytearray()
        # Not request.read(): it buffers up to the app's client_max_size (1 MiB by default).
        async for chunk in request.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > max_body_size:
                return _aiohttp_response(413, _TOO_LARGE)
        status, answer = await _apply_delivery(client, bytes(body), tolerance, request.remote)
        return _aiohttp_response(status, answer)

    return akool_webhook


def asgi_app(
    client: AkoolClient,
    *,
    tolerance: float | None = DEFAULT_WEBHOOK_TOLERANCE,
    max_body_size: int = DEFAULT_MAX_WEBHOOK_BODY,
) -> ASGIApp:
    """A minimal ASGI app that receives AKOOL webhooks for ``client`` (no framework needed).

    In FastAPI or Starlette add it as a route, so the exact path answers without a redirect::

        from starlette.routing import Route
        app.router.routes.append(Route("/akool/webhook", asgi_app(client), methods=["POST"]))

    It can also be served on its own (``uvicorn.run(asgi_app(client))``); it answers the
    lifespan protocol and ignores the request path.

    Args:
        client: the client whose handles the deliveries resolve; it needs ``client_id``.
        tolerance: seconds a delivery's timestamp may be off from now (``None``: no check).
        max_body_size: bodies larger than this many bytes are answered 413.

    Returns:
        The ASGI 3 application.

    Raises:
        AkoolValueError: the client cannot verify webhooks (no ``client_id``, or an API key
            that is not 16, 24 or 32 bytes), or a bad ``tolerance`` or ``max_body_size``.
    """
    _check_setup(client, tolerance, max_body_size)
    return _WebhookApp(client, tolerance, max_body_size)


class _WebhookApp:
    """The ASGI app ``asgi_app`` returns.

    A class instance rather than a function: Starlette's ``Route`` serves a non-function
    endpoint as raw ASGI instead of wrapping it as ``endpoint(request)``.
    """

    __slots__ = ("_client", "_max_body_size", "_tolerance")

    def __init__(self, client: AkoolClient, tolerance: float | None, max_body_size: int) -> None:
        self._client = client
        self._tolerance = tolerance
        self._max_body_size = max_body_size

    def __repr__(self) -> str:
        return f"<akool_async.webhooks.asgi_app max_body_size={self._max_body_size}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await receive()  # websocket.connect
            # Closing before accepting makes the server refuse the handshake (HTTP 403).
            await send({"type": "websocket.close", "code": 1008})
        else:
            # The ASGI spec: raise on a scope type the app does not know.
            raise ValueError(f"akool_async.webhooks.asgi_app cannot serve {kind!r} scopes")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _asgi_response(send, 405, _NOT_ALLOWED, [(b"allow", b"POST")])
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max_body_size:
            await _asgi_response(send, 413, _TOO_LARGE)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender gave up: nobody to answer
            body += message.get("body", b"")
            if len(body) > self._max_body_size:
                await _asgi_response(send, 413, _TOO_LARGE)
                return
            if not message.get("more_body", False):
                break
        client = scope.get("client")
        remote = str(client[0]) if client else None
        status, answer = await _apply_delivery(self._client, bytes(body), self._tolerance, remote)
        await _asgi_response(send, status, answer)


async def _apply_delivery(
    client: AkoolClient, body: bytes, tolerance: float | None, remote: str | None
) -> tuple[int, bytes]:
    """Apply one delivery; the HTTP status and body to answer."""
    try:
        await client.webhooks.receive(body, tolerance=tolerance)
    except WebhookVerificationError as exc:
        # The message names the failed check only (never the secret or the payload); it goes
        # to the log, and the sender gets the uniform 400.
        logger.warning("rejected an AKOOL webhook from %s: %s", remote or "unknown", exc)
        return 400, _REJECTED
    return 200, _OK


def _check_setup(client: AkoolClient, tolerance: float | None, max_body_size: int) -> None:
    """Fail at setup rather than answer every delivery with an error."""
    client.webhooks._credentials()
    if tolerance is not None and (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not (math.isfinite(tolerance) and tolerance >= 0)
    ):
        raise AkoolValueError("tolerance: must be a finite number of seconds >= 0, or None")
    if isinstance(max_body_size, bool) or not (
        isinstance(max_body_size, int) and max_body_size >= 1
    ):
        raise AkoolValueError("max_body_size: must be a positive number of bytes")


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to start or stop: the client belongs to the application, which closes it.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            # A malformed value is the server's business; the read loop still caps the body.
            return int(value) if value.isdigit() else None
    return None


def _aiohttp_response(
    status: int, body: bytes, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(status=status, body=body, content_type=_JSON, headers=headers)


async def _asgi_response(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
