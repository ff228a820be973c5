"""Mutation testing of the money and security paths: ``make mutation`` (issue 15).

Runs mutmut 3 (``pip install -e '.[mutation]'``) once per module in ``MODULES``, each against
only the test files that cover it, and prints a score per module: mutants killed (a test failed,
or it timed out) out of all mutants tried. Every survivor must be killed by a test or listed in
``EQUIVALENTS`` with one line saying why it cannot change behaviour; the script exits 1 when a
survivor is not listed or a score is below ``--min-score``.

Each module runs in its own scratch copy of the project, ``mutants/<label>/`` (git-ignored),
because mutmut reads its settings from ``pyproject.toml`` and writes ``mutants/`` in its working
directory. To look at a survivor: ``cd mutants/<label> && ../../.venv/bin/mutmut show NAME``.

Run: ``make mutation``, or ``.venv/bin/python scripts/mutation.py [LABEL ...]``, or point it at
any module with ``--source akool_async/x.py --tests tests/test_x.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

# What is mutated, and the tests that cover it. Module paths move with the code: edit them here.
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    # The max_credits guard: estimate, reserve, settle.
    "budget": (
        "akool_async/_budget.py",
        ("tests/test_budget.py", "tests/test_budget_guard.py", "tests/test_shared_budget.py"),
    ),
    # Retries, the create-resend rule, Retry-After, error mapping.
    "transport": (
        "akool_async/_transport.py",
        (
            "tests/test_retries.py",
            "tests/test_resend_rule.py",
            "tests/test_transport_edges.py",
            "tests/test_errors.py",
            "tests/test_auth.py",
            "tests/test_downloads.py",
            "tests/test_request_options.py",
            "tests/test_transport_context.py",
        ),
    ),
    # Webhook verify, decrypt, parse, and the envelope builder.
    "webhooks": (
        "akool_async/_webhook_crypto.py",
        ("tests/test_webhooks_crypto.py", "tests/test_webhook_edges.py"),
    ),
}

ROOT = Path(__file__).resolve().parent.parent
#: Survivors that cannot change behaviour: "LABEL MUTANT  # why", one a line.
EQUIVALENTS = ROOT / "scripts" / "mutation-equivalents.txt"
WORK = ROOT / "mutants"
PACKAGE = "akool_async"
_RESULT = re.compile(r"^\s+(\S+): (.+)$")
_KILLED = frozenset({"killed", "timeout", "caught by type check"})


def _equivalents() -> dict[str, set[str]]:
    """Label -> mutant names (without the module prefix) listed as equivalent."""
    listed: dict[str, set[str]] = {}
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].split()
        if len(entry) == 2:
            listed.setdefault(entry[0], set()).add(entry[1])
    return listed


def _short(mutant: str) -> str:
    """``akool_async._budget.x_f__mutmut_3`` -> ``x_f__mutmut_3``: survives module renames."""
    return mutant.rsplit(".", 1)[-1]


def _prepare(label: str, source: str, tests: tuple[str, ...]) -> Path:
    """A fresh scratch copy of the project with mutmut settings for one module."""
    work = WORK / label
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / PACKAGE, work / PACKAGE, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    settings = "\n".join(
        [
            "",
            "[tool.mutmut]",
            f'source_paths = ["{PACKAGE}"]',
            f'only_mutate = ["{source}"]',
            f"pytest_add_cli_args_test_selection = {list(tests)!r}".replace("'", '"'),
            'pytest_add_cli_args = ["-p", "no:cacheprovider"]',
            # A mutant that makes a retry wait for ever is killed after 3x the clean run's
            # time (+2 s) instead of mutmut's 15x, which made a run of all three last hours.
            "timeout_multiplier = 3.0",
            "timeout_constant = 2.0",
            "",
        ]
    )
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (work / "pyproject.toml").write_text(pyproject + settings, encoding="utf-8")
    return work


def _mutmut(work: Path, *args: str, quiet: bool = False) -> str:
    exe = Path(sys.executable).parent / "mutmut"
    done = subprocess.run(
        [str(exe), *args],
        cwd=work,
        check=False,
        text=True,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if done.returncode != 0:
        raise SystemExit(f"mutmut {' '.join(args)} failed (exit {done.returncode}) in {work}")
    return done.stdout or ""


def run_module(label: str, source: str, tests: tuple[str, ...], children: int) -> dict[str, str]:
    """Mutate ``source`` against ``tests``; mutant name -> status."""
    work = _prepare(label, source, tests)
    _mutmut(work, "run", "--max-children", str(children))
    statuses: dict[str, str] = {}
    for line in _mutmut(work, "results", "--all", "true", quiet=True).splitlines():
        match = _RESULT.match(line)
        if match:
            statuses[match[1]] = match[2]
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labels", nargs="*", help=f"modules to run (default all: {list(MODULES)})")
    parser.add_argument("--source", help="mutate this file instead (with --tests)")
    parser.add_argument("--tests", nargs="+", default=(), help="the test files for --source")
    # The tests mostly wait on loopback sockets and timers (about 15% CPU), so three workers
    # per CPU keep the CPUs busy.
    parser.add_argument("--max-children", type=int, default=3 * (os.cpu_count() or 2))
    parser.add_argument("--min-score", type=float, default=90.0)
    args = parser.parse_args()

    if args.source:
        label = Path(args.source).stem.lstrip("_")
        plan = {label: (args.source, tuple(args.tests))}
    else:
        unknown = set(args.labels) - set(MODULES)
        if unknown:
            parser.error(f"unknown module label(s) {sorted(unknown)}; known: {list(MODULES)}")
        plan = {k: v for k, v in MODULES.items() if not args.labels or k in args.labels}

    listed = _equivalents()
    started = time.monotonic()
    rows: list[tuple[str, str, int, int, int, list[str]]] = []
    for label, (source, tests) in plan.items():
        statuses = run_module(label, source, tests, args.max_children)
        killed = sum(status in _KILLED for status in statuses.values())
        survivors = sorted(m for m, status in statuses.items() if status not in _KILLED)
        equivalent = [m for m in survivors if _short(m) in listed.get(label, set())]
        unlisted = [f"{m} ({statuses[m]})" for m in survivors if m not in equivalent]
        rows.append((label, source, killed, len(statuses), len(equivalent), unlisted))
    minutes = (time.monotonic() - started) / 60

    failed = False
    print(f"\nmutation scores ({minutes:.1f} min, {args.max_children} workers):")
    for label, source, killed, total, equivalent, unlisted in rows:
        score = 100.0 * killed / total if total else 0.0
        print(
            f"  {label:<10} {source:<28} {killed}/{total} killed = {score:.1f}%"
            f"  ({equivalent} listed equivalent, {len(unlisted)} unexplained)"
        )
        for mutant in unlisted:
            print(f"      survived, not in {EQUIVALENTS.name}: {mutant}")
        failed |= bool(unlisted) or score < args.min_score
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
