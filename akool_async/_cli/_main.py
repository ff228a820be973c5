"""The entry point: parse, run the command's handler, turn its outcome into an exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import IO, Any

from .._errors import AkoolError
from ._exit_codes import BAD_INPUT, INTERRUPTED, exit_code_for
from ._fake_server import run_fake_server
from ._output import Output
from ._parser import build_parser


class _LogToStderr(logging.Handler):
    """SDK warnings (retries, polling trouble) as plain lines; they never hold a key."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(logging.WARNING)
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{record.levelname.lower()}: {record.getMessage()}", file=self._stream)
        except Exception:  # logging must never break the command
            self.handleError(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``EXIT_CODES``)."""
    output = Output(sys.stdout, sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (code 2)
        return exc.code if isinstance(exc.code, int) else BAD_INPUT
    if args.command == "fake-server":
        return run_fake_server(args, output)
    logger = logging.getLogger("akool_async")
    handler = _LogToStderr(sys.stderr)
    logger.addHandler(handler)
    try:
        command: Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]]
        command = args.handler
        return asyncio.run(command(args, output))
    except KeyboardInterrupt:
        hint = ": re-run the same command to resume" if args.command == "bulk" else ""
        output.error(f"interrupted{hint}")
        return INTERRUPTED
    except AkoolError as exc:
        output.error(str(exc))
        return exit_code_for(exc)
    finally:
        logger.removeHandler(handler)
