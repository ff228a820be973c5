"""Named defaults. Every number the SDK uses without being told lives here."""

from __future__ import annotations

from typing import Final

DEFAULT_BASE_URL: Final = "https://openapi.akool.com"
API_KEY_ENV: Final = "AKOOL_API_KEY"

#: Per-request timeout (seconds) for the whole request, and for establishing the connection.
DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_CONNECT_TIMEOUT: Final = 10.0

#: resultsByIds takes many ids; 50 per request is our default (akool-api.md §10).
DEFAULT_MAX_IDS_PER_POLL: Final = 50
#: AKOOL's own demo polls every 5 s (akool-api.md §9).
DEFAULT_POLL_INTERVAL: Final = 5.0
DEFAULT_MAX_POLL_INTERVAL: Final = 30.0
#: The poller's request budget: results calls per second for one client. AKOOL publishes no
#: rate; 2/s is 10 calls per 5 s tick, i.e. 500 pending ids polled every 5 s.
DEFAULT_POLL_REQUESTS_PER_SECOND: Final = 2.0
#: A video id missing from this many consecutive results answers fails with NotFoundError.
DEFAULT_MISSING_POLLS: Final = 3

#: How long ``await handle`` waits before AkoolTimeoutError. Videos take tens of seconds to
#: minutes; an hour is generous yet still means "never hangs forever by accident".
DEFAULT_WAIT_TIMEOUT: Final = 3600.0

DEFAULT_MAX_CONCURRENT_CREATES: Final = 8

#: AKOOL's batch create makes at most this many videos per call.
MAX_BATCH_COUNT: Final = 10

#: Generated videos are deleted by AKOOL this long after creation.
VIDEO_RETENTION_SECONDS: Final = 7 * 24 * 3600

SUCCESS_CODE: Final = 1000
