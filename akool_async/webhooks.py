"""Receive AKOOL webhooks: verification, and ready-made receivers for aiohttp and ASGI.

Each receiver verifies a delivery with the client's ``client_id`` and API key, resolves the
handle waiting for that video (``client.webhooks.receive``), and answers AKOOL::

    # aiohttp
    app.router.add_post("/akool/webhook", aiohttp_handler(client))

    # FastAPI / Starlette: a Route, because mount() answers the exact path with a redirect
    app.router.routes.append(Route("/akool/webhook", asgi_app(client), methods=["POST"]))

Answers: 200 for a verified delivery (also about a video nobody waits for: AKOOL retries
anything else), 400 for one that fails verification, 405 for a method other than POST, 413
for a body over ``max_body_size``. Every verification failure gets the same 400 body, whatever
check failed: telling them apart would hand an attacker a padding oracle (see
``akool_async._webhook_crypto``). The reason is logged at WARNING on the ``akool_async.webhooks``
logger, without the secret or the payload.
"""

from ._errors import WebhookVerificationError
from ._webhook_crypto import DEFAULT_WEBHOOK_TOLERANCE, WebhookEvent, verify_webhook
from ._webhook_receivers import DEFAULT_MAX_WEBHOOK_BODY, ASGIApp, aiohttp_handler, asgi_app

__all__ = [
    "DEFAULT_MAX_WEBHOOK_BODY",
    "DEFAULT_WEBHOOK_TOLERANCE",
    "ASGIApp",
    "WebhookEvent",
    "WebhookVerificationError",
    "aiohttp_handler",
    "asgi_app",
    "verify_webhook",
]
