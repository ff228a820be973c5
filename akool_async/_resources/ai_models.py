"""The model list: which image-to-video models exist and what each one offers."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Final, Unpack

from .._convert import read_model
from .._core import ClientCore
from .._errors import AkoolResponseError, AkoolValueError
from .._models import AIModel
from .._settings import CallOptions, RequestOptions

logger = logging.getLogger("akool_async")

MODELS_PATH: Final = "/api/open/v4/aigModel/list"
#: Model type of image-to-video (1502 is text-to-video).
IMAGE_TO_VIDEO: Final = 1501


class AIModels:
    """``client.models``: list the models; the client remembers them to check create arguments."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def list(
        self, types: Iterable[int] = (IMAGE_TO_VIDEO,), **options: Unpack[CallOptions]
    ) -> list[AIModel]:
        """The models of the given types (image-to-video by default), highest ``sort`` first.

        A model is read as far as its fields allow (see ``AIModel``); only an item without a
        string ``value`` (no name to create with) is left out, with a warning. The
        image-to-video list is remembered: later creates are checked against it.
        """
        kinds = tuple(types)
        if not kinds or any(isinstance(t, bool) or not isinstance(t, int) for t in kinds):
            raise AkoolValueError(f"types: must be a non-empty sequence of ints, got {kinds!r}")
        envelope = await self._core.request(
            "GET",
            MODELS_PATH,
            params=[("types[]", str(t)) for t in kinds],
            options=RequestOptions(**options),
        )
        data = envelope.get("data")
        if not isinstance(data, list):
            raise AkoolResponseError(
                "aigModel/list answered without a data list", method="GET", path=MODELS_PATH
            )
        models: list[AIModel] = []
        for index, item in enumerate(data):
            model = read_model(item)
            if model is None:
                logger.warning(
                    "aigModel/list item %d has no string value; left out: %.200r", index, item
                )
            else:
                models.append(model)
        # AKOOL's console shows the highest sort first (akool-api.md §10); sorted() is stable,
        # so models of equal (or no) sort keep AKOOL's order.
        models.sort(key=lambda m: (m.sort is None, -(m.sort or 0)))
        if kinds == (IMAGE_TO_VIDEO,):
            self._core.catalog.remember(models)
        return models

    @property
    def known(self) -> Mapping[str, AIModel] | None:
        """The image-to-video models from the last ``list()``, by ``value`` (None before)."""
        return self._core.catalog.known

    def check(self, model_name: str | None) -> AIModel | None:
        """The known model named ``model_name``; AkoolValueError when the list lacks it."""
        return self._core.catalog.check(model_name)
