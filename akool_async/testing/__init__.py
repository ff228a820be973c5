"""A fake AKOOL server for tests, demos and benchmarks: ``FakeAkoolServer`` and ``sign_webhook``.

``FakeAkoolServer`` is a real ``aiohttp.web`` app on loopback that speaks AKOOL's documented wire
format (envelopes, field names and casing, business codes) for every Image-to-Video endpoint.
It never imports the SDK client, so it can test any client, in-process or in another process::

    async with FakeAkoolServer(queue_seconds=0.01, process_seconds=0.05) as server:
        client = AkoolClient(api_key=server.api_key, base_url=server.url)
        ...
        assert server.call_count("results") == 1

Video status is computed lazily from timestamps, so a server holding 10,000 videos does no work
per video until someone asks about it. Each request is recorded (``requests``), and faults can be
injected per endpoint (``inject``, ``inject_random``). Tests wait on the fake instead of polling
it (``wait_for_calls``, ``wait_idle``, ``wait_until``) and can hold an endpoint's answers until
they release them (``hold``/``release``, ``with server.holding(...)``).

Endpoint names, used by every method that takes ``endpoint``: ``"token"``, ``"credits"``,
``"models"``, ``"create_batch"``, ``"create"``, ``"results"``, ``"effects"``,
``"update_audio"``, ``"delete"`` and ``"download"`` (the fake's own video files).
"""

from ._catalog import DEFAULT_MODELS, video_bytes
from ._faults import Fault, FaultKind
from ._server import FakeAkoolServer, serve_forever
from ._signing import sign_webhook
from ._state import FakeVideo, RecordedRequest
from ._webhook_delivery import WebhookDelivery
from ._wire import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, ENDPOINT_PATHS, WEBHOOK_EVENT_TYPE

__all__ = [
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
]

# Tracebacks and reprs read akool_async.testing.X, not akool_async.testing._module.X.
for _obj in (
    FakeAkoolServer,
    FakeVideo,
    Fault,
    FaultKind,
    RecordedRequest,
    WebhookDelivery,
    serve_forever,
    sign_webhook,
    video_bytes,
):
    _obj.__module__ = __name__
del _obj
