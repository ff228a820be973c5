"""Account endpoints: the credit balance."""

from __future__ import annotations

from typing import Final, Unpack

from .._core import ClientCore
from .._errors import AkoolResponseError
from .._settings import CallOptions, RequestOptions

CREDITS_PATH: Final = "/api/open/v3/faceswap/quota/info"


class Account:
    """``client.account``: the account's credit balance."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def credits(self, **options: Unpack[CallOptions]) -> float:
        """The remaining credit balance.

        Args:
            options: ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` for this
                call (see ``CallOptions``).

        Raises:
            AkoolResponseError: the answer had no numeric ``data.credit``.
        """
        envelope = await self._core.request("GET", CREDITS_PATH, options=RequestOptions(**options))
        data = envelope.get("data")
        credit = data.get("credit") if isinstance(data, dict) else None
        if isinstance(credit, bool) or not isinstance(credit, (int, float)):
            raise AkoolResponseError(
                "quota/info answered without a numeric data.credit", method="GET", path=CREDITS_PATH
            )
        return float(credit)
