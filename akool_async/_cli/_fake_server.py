"""``fake-server``: the package's fake AKOOL server, run standalone on loopback."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ._exit_codes import BAD_INPUT, CONNECTION, OK
from ._output import PROG, Output


def run_fake_server(args: argparse.Namespace, output: Output) -> int:
    """Serve until Ctrl-C; ``CONNECTION`` when the address cannot be listened on."""
    from ..testing import DEFAULT_API_KEY, FakeAkoolServer, serve_forever

    if args.base_url:
        output.error("fake-server serves requests itself: use --host/--port, not --base-url")
        return BAD_INPUT
    api_key = args.api_key or DEFAULT_API_KEY

    def ready(server: FakeAkoolServer) -> None:
        output.line(f"url: {server.url}")
        if api_key == DEFAULT_API_KEY:
            # The fake's built-in key is public (akool_async.testing.DEFAULT_API_KEY).
            output.line(f"api key: {api_key}")
        else:
            output.line("api key: the one passed with --api-key")
        output.line(f"try: {PROG} credits --base-url {server.url} --api-key <key>")

    options: dict[str, Any] = {
        "api_key": api_key,
        "queue_seconds": args.queue_seconds,
        "process_seconds": args.process_seconds,
        "timing_jitter": args.timing_jitter,
        "credit": args.credit,
        "seed": args.seed,
    }
    try:
        asyncio.run(serve_forever(host=args.host, port=args.port, ready=ready, **options))
    except KeyboardInterrupt:
        return OK
    except OSError as exc:
        output.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return CONNECTION
    return OK
