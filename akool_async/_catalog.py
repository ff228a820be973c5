"""The model list a client has seen, used to check create arguments before they cost anything."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._errors import AkoolValueError
from ._models import AIModel
from ._requests import VideoRequest


class ModelCatalog:
    """The image-to-video models from the last ``client.models.list()`` (empty before)."""

    def __init__(self) -> None:
        self._known: dict[str, AIModel] | None = None

    @property
    def known(self) -> Mapping[str, AIModel] | None:
        """The models by ``value``; None before the list was fetched."""
        return self._known

    def remember(self, models: Iterable[AIModel]) -> None:
        """Keep ``models`` as the known image-to-video models."""
        self._known = {m.value: m for m in models}

    def find(self, model_name: str) -> AIModel | None:
        """The known model named ``model_name``; None when unknown or not yet listed."""
        return None if self._known is None else self._known.get(model_name)

    def check(self, model_name: str | None) -> AIModel | None:
        """The known model named ``model_name``; AkoolValueError when the list lacks it."""
        if model_name is None or self._known is None:
            return None
        model = self._known.get(model_name)
        if model is None:
            raise AkoolValueError(
                f"model_name: {model_name!r} is not an image-to-video model; "
                f"known: {sorted(self._known)}"
            )
        return model

    def check_request(self, request: VideoRequest, count: int) -> None:
        """Reject a batch of ``count`` videos of ``request`` its model cannot make."""
        model = self.check(request.model_name)
        if model is None:
            return
        request.check_model(model)
        if model.max_count is not None and count > model.max_count:
            raise AkoolValueError(f"count: {model.value} makes at most {model.max_count}")

    def max_count(self, model_name: str | None) -> int | None:
        """The model's ``max_count`` when known; None when unknown or not limited."""
        try:
            model = self.check(model_name)
        except AkoolValueError:
            return None  # the create itself reports the unknown model
        return None if model is None else model.max_count
