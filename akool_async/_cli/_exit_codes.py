"""One exit code per error family, and how several outcomes combine into one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .._constants import API_KEY_ENV
from .._errors import (
    AkoolConnectionError,
    AkoolError,
    AkoolValueError,
    AuthenticationError,
    BudgetExceededError,
    CreateOutcomeUnknownError,
    DownloadError,
    HubUnavailableError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamError,
    ValidationError,
    VideoFailedError,
    WaitTimeoutError,
)

OK: Final = 0
GENERIC: Final = 1
BAD_INPUT: Final = 2  # argparse also exits 2 on a bad command line
AUTH: Final = 3
PERMISSION: Final = 4
NO_CREDITS: Final = 5
BUDGET: Final = 6
NOT_FOUND: Final = 7
RATE_LIMITED: Final = 8
UPSTREAM: Final = 9
CONNECTION: Final = 10
OUTCOME_UNKNOWN: Final = 11
VIDEO_FAILED: Final = 12
DOWNLOAD_FAILED: Final = 13
STORE_UNAVAILABLE: Final = 14
WORK_REMAINS: Final = 15
INTERRUPTED: Final = 130

#: Exit code -> what it means (the --help epilog and the README table are built from this).
EXIT_CODES: Final[dict[int, str]] = {
    OK: "success",
    GENERIC: "any other error",
    BAD_INPUT: "bad input: command line, jobs file line, or a value AKOOL rejected (1003)",
    AUTH: "authentication: no API key, key refused, or account banned",
    PERMISSION: "permission denied or subscription required",
    NO_CREDITS: "the account is out of credit (1006/1103/1104)",
    BUDGET: "--max-credits reached: creating stopped (created videos are kept)",
    NOT_FOUND: "a video or resource does not exist (or expired)",
    RATE_LIMITED: "rate limited (1005 / HTTP 429) after retries",
    UPSTREAM: "AKOOL failed on its side (1015/1205/HTTP 5xx), or a batch partly failed",
    CONNECTION: "connection failed or timed out (a wait timed out: the video is still there)",
    OUTCOME_UNKNOWN: "a create's outcome is unknown: it may have been billed; not resent",
    VIDEO_FAILED: "a video ended with status 4 (failed)",
    DOWNLOAD_FAILED: "a video file could not be saved whole",
    STORE_UNAVAILABLE: "the job store (--store) cannot be reached: this worker stopped; "
    "what the store holds is kept",
    WORK_REMAINS: "jobs status: the job still has work left (0: every video is saved)",
    INTERRUPTED: "interrupted (Ctrl-C); bulk jobs resume from their journal",
}

#: When several things went wrong, the exit code is the first of these that occurred.
_PRIORITY: Final = (
    OUTCOME_UNKNOWN,
    STORE_UNAVAILABLE,
    AUTH,
    PERMISSION,
    NO_CREDITS,
    BUDGET,
    BAD_INPUT,
    RATE_LIMITED,
    UPSTREAM,
    CONNECTION,
    NOT_FOUND,
    VIDEO_FAILED,
    DOWNLOAD_FAILED,
    WORK_REMAINS,
    GENERIC,
)


class NoKeyError(AkoolError):
    """No API key was given (exit code AUTH)."""


_FAMILIES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (NoKeyError, AUTH),
    (CreateOutcomeUnknownError, OUTCOME_UNKNOWN),
    (BudgetExceededError, BUDGET),
    (AuthenticationError, AUTH),
    (PermissionDeniedError, PERMISSION),
    (InsufficientCreditsError, NO_CREDITS),
    (NotFoundError, NOT_FOUND),
    (RateLimitError, RATE_LIMITED),
    (UpstreamError, UPSTREAM),
    (ValidationError, BAD_INPUT),
    (AkoolValueError, BAD_INPUT),
    (HubUnavailableError, STORE_UNAVAILABLE),
    (AkoolConnectionError, CONNECTION),  # AkoolTimeoutError included
    # Not a connection error in the SDK, but the CLI has always reported it with code 10.
    (WaitTimeoutError, CONNECTION),
    (VideoFailedError, VIDEO_FAILED),
    (DownloadError, DOWNLOAD_FAILED),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error's family (``GENERIC`` for anything else)."""
    for family, code in _FAMILIES:
        if isinstance(exc, family):
            return code
    return GENERIC


def worst(codes: Sequence[int]) -> int:
    """The most urgent of several exit codes (``OK`` when there are none)."""
    present = set(codes) - {OK}
    for code in _PRIORITY:
        if code in present:
            return code
    return OK


def epilog() -> str:
    """The exit code table that ends every ``--help``."""
    lines = ["exit codes:"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items()]
    lines.append(
        "  When several things went wrong, the first of "
        + ", ".join(str(c) for c in _PRIORITY)
        + " that applies."
    )
    lines.append(f"\nThe API key comes from --api-key or ${API_KEY_ENV}; it is never printed.")
    return "\n".join(lines)
