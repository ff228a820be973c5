"""Checking request bodies the way AKOOL does: a bad field is answered with a business code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Invalid(Exception):
    """A request field failed validation: answered with ``code``."""

    def __init__(self, msg: str, code: int = 1003) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def str_field(body: Mapping[str, Any], name: str, *, required: bool) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid(f"{name} is required and must be a non-empty string")
    return value


def int_field(body: Mapping[str, Any], name: str, *, default: int | None = None) -> int:
    value = body.get(name, default)
    # bool is an int subclass; AKOOL would not take true as a length or a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} is required and must be an integer")
    return value


def bool_field(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise Invalid(f"{name} must be a boolean")
    return value


def ids_field(body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    raw = body.get("_ids")
    # resultsByIds/delbyids take ONE comma-separated string, not a list (akool-api.md §3).
    if not isinstance(raw, str):
        raise Invalid("_ids must be a comma-separated string")
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not ids:
        raise Invalid("_ids is empty")
    return ids
