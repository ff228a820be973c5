"""akool_async: an asyncio-native SDK for AKOOL's Image-to-Video API.

Quick start::

    async with AkoolClient(api_key="...") as client:
        batch = await client.image_to_video.create_batch(
            image_url="https://example.com/cat.png", prompt="the cat waves",
            resolution="720p", video_length=5, count=3)
        videos = await asyncio.gather(*batch.handles)
"""

from typing import TYPE_CHECKING, Any

from ._bulk_shared import SharedBulkRunner, load_job
from ._client import AkoolClient
from ._creates import Batch
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
    JobConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamError,
    ValidationError,
    VideoFailedError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from ._generate import CreateFailure, Generation, Progress
from ._jobstore import JobStatus, JobStore, LoadResult
from ._jobstore_sqlite import SqliteJobStore
from ._models import AIModel, DeleteResult, Effect, Resolution, Video, VideoStatus
from ._polling import PollerStatistics, TaskHandle
from ._pricing import CreditEstimate, PriceSource
from ._requests import VideoRequest
from ._settings import USE_CLIENT_DEFAULT, CallOptions, PollPolicy, RetryPolicy, UseClientDefault
from ._webhook_crypto import DEFAULT_WEBHOOK_TOLERANCE, WebhookEvent, verify_webhook

if TYPE_CHECKING:
    # The receivers need aiohttp.web: import akool_async.webhooks only when it is used.
    from . import webhooks as webhooks

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_WEBHOOK_TOLERANCE",
    "USE_CLIENT_DEFAULT",
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
    "CallOptions",
    "ClientClosedError",
    "CreateFailure",
    "CreateOutcomeUnknownError",
    "CreditEstimate",
    "DeleteResult",
    "DownloadError",
    "Effect",
    "Generation",
    "InsufficientCreditsError",
    "JobConflictError",
    "JobStatus",
    "JobStore",
    "LoadResult",
    "NotFoundError",
    "PermissionDeniedError",
    "PollPolicy",
    "PollerStatistics",
    "PriceSource",
    "Progress",
    "RateLimitError",
    "Resolution",
    "RetryPolicy",
    "SharedBulkRunner",
    "SqliteJobStore",
    "TaskHandle",
    "UpstreamError",
    "UseClientDefault",
    "ValidationError",
    "Video",
    "VideoFailedError",
    "VideoRequest",
    "VideoStatus",
    "WaitTimeoutError",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "load_job",
    "verify_webhook",
]

# Tracebacks and reprs read akool_async.X, not akool_async._module.X (as httpx does).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "akool_async"
del _name, _obj


def __getattr__(name: str) -> Any:
    # ``akool_async.webhooks`` still works without an explicit import, loaded on first use.
    if name == "webhooks":
        import importlib

        return importlib.import_module(".webhooks", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
