"""The fake's ``aiohttp.web`` application: every request goes through one dispatch.

Dispatch records the request, waits at a hold, draws a fault, sleeps the latency, checks auth,
runs the endpoint's handler (``_handlers``) and sends its answer, or the fault's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ._context import Context
from ._faults import FaultKind, drop, fail_without_acting, truncate
from ._handlers import HANDLERS, Handler
from ._state import RecordedRequest
from ._wire import DOCUMENTED_FIELDS, ENDPOINT_PATHS, SUCCESS, Answer, error

# Endpoints answered without credentials: getToken takes them in its body, files are public.
_NO_AUTH = frozenset({"token", "download"})


def build_app(fake: Context) -> web.Application:
    """An application serving every endpoint of ``ENDPOINT_PATHS`` for ``fake``."""
    app = web.Application()
    for endpoint, (method, path) in ENDPOINT_PATHS.items():
        app.router.add_route(method, path, _endpoint(fake, endpoint, HANDLERS[endpoint]))
    return app


def _endpoint(
    fake: Context, endpoint: str, handler: Handler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query={k: request.query.getall(k) for k in dict.fromkeys(request.query)},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=None,
            started_at=time.monotonic(),
            query_string=request.raw_path.partition("?")[2],
        )
        fake.state.arrived(record)
        try:
            return await _serve(fake, request, record, handler)
        finally:
            fake.state.finished(record)

    return serve


async def _serve(
    fake: Context, request: web.Request, record: RecordedRequest, handler: Handler
) -> web.StreamResponse:
    raw = await request.read()
    if raw:
        with contextlib.suppress(ValueError):
            record.body = json.loads(raw)
    documented = DOCUMENTED_FIELDS.get(record.endpoint)
    if documented is not None and isinstance(record.body, dict):
        record.unknown_fields = {k: v for k, v in record.body.items() if k not in documented}
    await fake.holds.pass_gate(record.endpoint)

    fault = fake.faults.next_fault(record.endpoint)
    if fault is not None:
        record.fault = fault.kind
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
    latency = _latency(fake, record.endpoint)
    if latency > 0:
        await asyncio.sleep(latency)

    if fault is not None and not fault.kind.acts:
        return fail_without_acting(request, record, fault)

    if record.endpoint in _NO_AUTH:
        answer = await handler(fake, request, record)
    else:
        answer = _check_auth(fake, request) or await handler(fake, request, record)

    if fault is not None:
        if fault.kind is FaultKind.RESET_AFTER:
            return drop(request)
        if fault.kind is FaultKind.TRUNCATED:
            return await truncate(request, record, answer)
        if fault.kind is FaultKind.MALFORMED_JSON:
            answer = Answer(raw=b'{"code": 1000, "msg": "OK", "data": {"resu')
        elif fault.kind is FaultKind.MISSING_DATA:
            answer = Answer(envelope={"code": SUCCESS, "msg": "ok"})
    record.http_status = answer.status
    record.code = answer.code
    return web.Response(
        status=answer.status,
        body=answer.body(),
        content_type=answer.content_type,
        headers=answer.headers,
    )


def _latency(fake: Context, endpoint: str) -> float:
    if endpoint in ("create", "create_batch", "update_audio"):
        return fake.knobs.create_latency
    if endpoint == "results":
        return fake.knobs.results_latency
    return 0.0


def _check_auth(fake: Context, request: web.Request) -> Answer | None:
    # Authorization wins over x-api-key when both are sent (akool-api.md §2).
    authorization = request.headers.get("Authorization", "").strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip() in fake.state.tokens:
            return None
        return error(1101, "invalid or expired token")
    api_key = request.headers.get("x-api-key", "")
    if api_key:
        # AKOOL's own demo expects 1109 ("account does not exist") for an unknown key;
        # 1101 is the invalid or expired token (akool-api.md §10).
        return None if api_key == fake.knobs.api_key else error(1109, "account does not exist")
    return error(1102, "authorization is empty")
