"""Pins akool_async's public surface: names, where they live, and that its types ship."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import akool_async

ROOT = Path(__file__).resolve().parent.parent
TYPING_CHECK = Path(__file__).resolve().parent / "typing" / "check_public_api.py"

#: The public names, in ``__all__``'s order. Changing this list is changing the public API.
EXPORTED = [
    "DEFAULT_WEBHOOK_TOLERANCE",
    "USE_CLIENT_DEFAULT",
    "AIModel",
    "AkoolAPIError",
    "AkoolClient",
    "AkoolConnectionError",
    "AkoolError",
    "AkoolResponseError",
    "AkoolTimeoutError",
    "AkoolValueError",
    "AuthenticationError",
    "Batch",
    "BudgetExceededError",
    "CallOptions",
    "ClientClosedError",
    "CreateFailure",
    "CreateOutcomeUnknownError",
    "CreditEstimate",
    "DeleteResult",
    "DownloadError",
    "Effect",
    "Generation",
    "InsufficientCreditsError",
    "JobConflictError",
    "JobStatus",
    "JobStore",
    "LoadResult",
    "NotFoundError",
    "PermissionDeniedError",
    "PollPolicy",
    "PollerStatistics",
    "PriceSource",
    "Progress",
    "RateLimitError",
    "Resolution",
    "RetryPolicy",
    "SharedBulkRunner",
    "SqliteJobStore",
    "TaskHandle",
    "UpstreamError",
    "UseClientDefault",
    "ValidationError",
    "Video",
    "VideoFailedError",
    "VideoRequest",
    "VideoStatus",
    "WaitTimeoutError",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "load_job",
    "verify_webhook",
]


def isort_style(name: str) -> tuple[int, str]:
    """ruff RUF022's isort-style order: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_all_is_pinned() -> None:
    """``akool_async.__all__`` is exactly the pinned list."""
    assert EXPORTED == akool_async.__all__


def test_all_is_sorted() -> None:
    """``__all__`` is kept in isort style (constants, classes, then the rest)."""
    assert sorted(akool_async.__all__, key=isort_style) == akool_async.__all__


@pytest.mark.parametrize("name", EXPORTED)
def test_name_is_importable(name: str) -> None:
    """Every exported name imports from the package, fresh in a new namespace too."""
    namespace: dict[str, object] = {}
    exec(f"from akool_async import {name}", namespace)  # the import statement users write
    assert getattr(akool_async, name) is namespace[name]


@pytest.mark.parametrize("name", [n for n in EXPORTED if isinstance(getattr(akool_async, n), type)])
def test_exported_class_lives_in_package(name: str) -> None:
    """Exported classes report ``akool_async`` as their module, so tracebacks read akool_async.X."""
    cls = getattr(akool_async, name)
    assert "akool_async" == cls.__module__
    assert name == cls.__qualname__
    assert cls.__doc__, f"{name} has no docstring"


def test_version_matches_distribution() -> None:
    """``__version__`` is the installed distribution's version."""
    assert importlib.metadata.version("akool-async") == akool_async.__version__


def test_testing_module_exports_exist() -> None:
    """Every name in ``akool_async.testing.__all__`` exists (the fake server is public too)."""
    testing = importlib.import_module("akool_async.testing")
    assert [] == [name for name in testing.__all__ if not hasattr(testing, name)]


def test_py_typed_is_in_the_package() -> None:
    """The PEP 561 marker sits next to ``__init__.py``."""
    assert (Path(akool_async.__file__).parent / "py.typed").is_file()


def test_py_typed_ships_in_the_wheel(tmp_path: Path) -> None:
    """A wheel built from the source tree contains ``akool_async/py.typed``."""
    from hatchling.builders.wheel import WheelBuilder

    (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "akool_async/py.typed" in names
    assert "akool_async/__init__.py" in names


def run_mypy(*paths: Path) -> str:
    """mypy --strict's report on ``paths``, run from the repository root like ``make test``."""
    mypy = Path(sys.executable).parent / "mypy"
    done = subprocess.run(
        [str(mypy), "--strict", "--no-error-summary", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "" == done.stderr
    return done.stdout


def test_await_handle_is_typed_video(tmp_path: Path) -> None:
    """mypy --strict passes tests/typing/ (``await handle`` is ``Video``), fails a wrong type."""
    wrong = tmp_path / "wrong_type.py"
    wrong.write_text(
        "from typing import assert_type\n"
        "from akool_async import TaskHandle\n\n\n"
        "async def f(handle: TaskHandle) -> None:\n"
        "    assert_type(await handle, str)\n"
    )
    report = run_mypy(TYPING_CHECK, wrong).splitlines()
    # The pinned file is clean; the planted mistake proves mypy really checked the types.
    assert [] == [line for line in report if "check_public_api.py" in line]
    assert 1 == len(report), report
    assert re.search(
        r'wrong_type\.py:6: error: Expression is of type "Video", not "str"', report[0]
    )


def test_import_does_not_load_aiohttp_web() -> None:
    """``import akool_async`` leaves ``aiohttp.web`` alone; only the receivers need it."""
    code = (
        "import sys, akool_async\n"
        "assert 'aiohttp.web' not in sys.modules, 'loaded by import akool_async'\n"
        "from akool_async import webhooks\n"
        "assert akool_async.webhooks.aiohttp_handler is webhooks.aiohttp_handler\n"
        "assert 'aiohttp.web' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_webhooks_submodule_loads_on_attribute_access() -> None:
    """``akool_async.webhooks`` works without importing the submodule first."""
    code = "import akool_async\nassert callable(akool_async.webhooks.asgi_app)\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
