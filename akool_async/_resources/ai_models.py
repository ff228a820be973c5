"""The model list: which image-to-video models exist and what each one offers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from .._core import ClientCore
from .._errors import AkoolResponseError, AkoolValueError
from .._models import AIModel, structure

MODELS_PATH: Final = "/api/open/v4/aigModel/list"
#: Model type of image-to-video (1502 is text-to-video).
IMAGE_TO_VIDEO: Final = 1501


class AIModels:
    """``client.models``: list the models; the client remembers them to check create arguments."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def list(self, types: Iterable[int] = (IMAGE_TO_VIDEO,)) -> list[AIModel]:
        """The models of the given types (image-to-video by default).

        The image-to-video list is remembered: later creates are checked against it.
        """
        kinds = tuple(types)
        if not kinds or any(isinstance(t, bool) or not isinstance(t, int) for t in kinds):
            raise AkoolValueError(f"types: must be a non-empty sequence of ints, got {kinds!r}")
        envelope = await self._core.request(
            "GET", MODELS_PATH, params=[("types[]", str(t)) for t in kinds]
        )
        data = envelope.get("data")
        if not isinstance(data, list):
            raise AkoolResponseError(
                "aigModel/list answered without a data list", method="GET", path=MODELS_PATH
            )
        models = structure(data, list[AIModel], where=MODELS_PATH)
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
