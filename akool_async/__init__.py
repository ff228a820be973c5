"""akool_async: an asyncio-native SDK for AKOOL's Image-to-Video API.

Quick start::

    async with AkoolClient(api_key="...") as client:
        batch = await client.image_to_video.create_batch(
            image_url="https://example.com/cat.png", prompt="the cat waves",
            resolution="720p", video_length=5, count=3)
        videos = await asyncio.gather(*batch.handles)
"""

# The receivers live in the public submodule: akool_async.webhooks.aiohttp_handler(client).
from . import webhooks as webhooks
from ._client import AkoolClient
from ._errors import (
    AkoolAPIError,
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
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamError,
    ValidationError,
    VideoFailedError,
    WebhookVerificationError,
)
from ._generate import CreateFailure, Generation, Progress
from ._models import (
    AIModel,
    Batch,
    DeleteResult,
    Effect,
    Resolution,
    Video,
    VideoRequest,
    VideoStatus,
)
from ._polling import PollerStatistics, PollPolicy, TaskHandle
from ._transport import RetryPolicy
from ._webhooks import DEFAULT_WEBHOOK_TOLERANCE, WebhookEvent, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_WEBHOOK_TOLERANCE",
    "AIModel",
    "AkoolAPIError",
    "AkoolClient",
    "AkoolConnectionError",
    "AkoolError",
    "AkoolResponseError",
    "AkoolTimeoutError",
    "AkoolValueError",
    "AuthenticationError",
    "Batch",
    "BudgetExceededError",
    "ClientClosedError",
    "CreateFailure",
    "CreateOutcomeUnknownError",
    "DeleteResult",
    "DownloadError",
    "Effect",
    "Generation",
    "InsufficientCreditsError",
    "NotFoundError",
    "PermissionDeniedError",
    "PollPolicy",
    "PollerStatistics",
    "Progress",
    "RateLimitError",
    "Resolution",
    "RetryPolicy",
    "TaskHandle",
    "UpstreamError",
    "ValidationError",
    "Video",
    "VideoFailedError",
    "VideoRequest",
    "VideoStatus",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]

# Tracebacks and reprs read akool_async.X, not akool_async._module.X (as httpx does).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "akool_async"
del _name, _obj
