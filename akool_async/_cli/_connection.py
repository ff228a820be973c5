"""The client a command talks through, built from the shared connection options."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._client import AkoolClient
from .._constants import API_KEY_ENV, DEFAULT_BASE_URL
from .._settings import PollPolicy
from ._exit_codes import NoKeyError


def api_key(args: argparse.Namespace) -> str:
    """``--api-key``, else ``$AKOOL_API_KEY``; ``NoKeyError`` when neither is set."""
    key: str | None = args.api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise NoKeyError(f"no API key: pass --api-key or set ${API_KEY_ENV}")
    return key


def make_client(args: argparse.Namespace, **options: Any) -> AkoolClient:
    """An ``AkoolClient`` for ``--api-key``, ``--base-url`` and ``--poll-interval``."""
    key = api_key(args)
    poll = None
    if args.poll_interval is not None:
        interval = args.poll_interval
        poll = PollPolicy(initial_delay=interval, interval=interval, max_interval=interval * 6)
    return AkoolClient(key, base_url=args.base_url or DEFAULT_BASE_URL, poll=poll, **options)
