"""Where the command line writes: results to stdout, diagnostics to stderr."""

from __future__ import annotations

import json
import os
from typing import Any, Final, TextIO

PROG: Final = "akool-async"


class Output:
    """stdout for results, stderr for diagnostics; ``--json`` keeps stdout pure JSON.

    A reader that goes away (``akool-async bulk ... | head``) must not stop a job that is
    spending credits: on a broken pipe, output to that stream is dropped from then on.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def _write(self, stream: TextIO, text: str) -> None:
        try:
            print(text, file=stream, flush=True)
        except BrokenPipeError:
            _silence(stream)

    def line(self, text: str = "") -> None:
        self._write(self.stdout, text)

    def note(self, text: str) -> None:
        self._write(self.stderr, text)

    def error(self, text: str) -> None:
        self._write(self.stderr, f"{PROG}: error: {text}")

    def json(self, data: Any) -> None:
        self._write(self.stdout, json.dumps(data, indent=2, default=str))


def _silence(stream: TextIO) -> None:
    """Point a stream whose reader left at /dev/null (so exit-time flushes stay quiet too)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):  # no real file descriptor behind the stream
        pass
