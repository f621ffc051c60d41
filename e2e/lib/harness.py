"""A tiny test runner shared by the e2e parts (stdlib only, so it runs under any Python 3.9+).

Each part is a script: it registers test functions with ``@case`` and calls ``main(part)``.
Every case prints one line, ``PASS part::name (1.2s)`` or ``FAIL part::name: reason``, and the
same line is appended to the file named by ``E2E_RESULTS`` (``e2e/run.sh`` counts them). A case
fails on any exception; the traceback is printed under its line. The exit code is 1 when any
case failed, so a part run alone also fails loudly.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

_CASES: List[Tuple[str, Callable[[], None]]] = []
_FAILED: List[str] = []


def case(function: Callable[[], None]) -> Callable[[], None]:
    """Register a test case; cases run in the order they are defined."""
    _CASES.append((function.__name__, function))
    return function


def record(line: str) -> None:
    print(line, flush=True)
    results = os.environ.get("E2E_RESULTS")
    if results:
        with open(results, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def fail_part(part: str, name: str, reason: str) -> None:
    """Record a failure that is not a case (setup could not start a server, say)."""
    _FAILED.append(name)
    record(f"FAIL {part}::{name}: {reason}")


def any_failed() -> bool:
    return bool(_FAILED)


def cleanup(directory: Path, logs: Sequence[Path] = ()) -> None:
    """Remove a part's scratch directory. After a failure the tail of each log is printed
    first; with E2E_KEEP=1 the directory stays (its path is printed)."""
    if any_failed():
        for log in logs:
            try:
                lines = log.read_text(errors="replace").splitlines()
            except OSError:
                continue
            print(f"--- last lines of {log.name}:", *lines[-40:], sep="\n", file=sys.stderr)
    if os.environ.get("E2E_KEEP"):
        print(f"kept {directory}", file=sys.stderr)
        return
    shutil.rmtree(directory, ignore_errors=True)


def main(part: str, setup: Callable[[], None] = lambda: None,
         teardown: Callable[[], None] = lambda: None) -> None:
    selected = set(filter(None, os.environ.get("E2E_CASES", "").split(",")))
    failed = 0
    passed = 0
    try:
        setup()
    except Exception as error:  # noqa: BLE001 - any setup problem fails the part loudly
        traceback.print_exc()
        fail_part(part, "setup", f"{type(error).__name__}: {error}")
        teardown()
        sys.exit(1)
    try:
        for name, function in _CASES:
            if selected and name not in selected:
                continue
            started = time.monotonic()
            try:
                function()
            except Exception as error:  # noqa: BLE001
                failed += 1
                _FAILED.append(name)
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                record(f"FAIL {part}::{name}: {type(error).__name__}: {first[:300]}")
                traceback.print_exc()
                sys.stderr.flush()
            else:
                passed += 1
                record(f"PASS {part}::{name} ({time.monotonic() - started:.1f}s)")
    finally:
        teardown()
    print(f"{part} part: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


def check(condition: bool, message: str) -> None:
    """An assert that survives ``python -O``."""
    if not condition:
        raise AssertionError(message)


def equal(actual, expected, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")
