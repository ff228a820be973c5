"""``models`` and ``credits``: what the account can use, and what it has left."""

from __future__ import annotations

import argparse

from ._connection import make_client
from ._exit_codes import OK
from ._output import Output


async def cmd_models(args: argparse.Namespace, output: Output) -> int:
    """List the image-to-video models as a table, or their raw entries with ``--json``."""
    async with make_client(args) as client:
        models = await client.models.list()
    if args.json:
        output.json([dict(m.raw) for m in models])
        return OK
    rows = [("MODEL", "RESOLUTIONS", "SECONDS", "AUDIO", "LAST FRAME", "MAX", "LABEL")]
    for m in models:
        rows.append(
            (
                m.value,
                ",".join(m.resolution_values) or "-",
                ",".join(str(d) for d in m.durations) or "-",
                "yes" if m.supports_audio else "no",
                "yes" if m.supports_last_frame else "no",
                str(m.max_count) if m.max_count is not None else "-",
                m.label or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        output.line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return OK


async def cmd_credits(args: argparse.Namespace, output: Output) -> int:
    """Print the credit balance."""
    async with make_client(args) as client:
        credit = await client.account.credits()
    if args.json:
        output.json({"credit": credit})
    else:
        output.line(f"credit balance: {credit:g}")
    return OK
