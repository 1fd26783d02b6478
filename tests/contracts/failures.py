"""How a check's failure is told in `nox -s contracts`: one line naming what broke, no traceback.

A live check meets whatever an altered B sends, so it fails in more ways than a `Failed`:
an `AssertionError` (bare, outside pytest's rewriting), an exception group from a task
group, httpx-ws's `WebSocketUpgradeError`, pytest's `Failed` from `pytest.raises` used
outside pytest (a `BaseException`), a `RuntimeError` when a service never turns healthy.
Each becomes a sentence; only Ctrl+C and exits go on as they are.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# pytest's outcomes (`pytest.fail`, `pytest.skip`) are BaseExceptions, not Exceptions.
CAUGHT: tuple[type[BaseException], ...] = (Exception, pytest.fail.Exception, pytest.skip.Exception)


class Failed(Exception):
    """A check failed: the message says what to do, `names` what broke (interactions, fields)."""

    def __init__(self, message: str, names: list[str] | None = None) -> None:
        """Carry the message and the names of what broke."""
        super().__init__(message)
        self.names = names or []


def is_a_failure(exc: BaseException) -> bool:
    """Tell whether `exc` is a check's failure (to report), not an interruption (to let go)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_a_failure(inner) for inner in exc.exceptions)
    return isinstance(exc, CAUGHT)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if frame.filename.startswith(str(ROOT))] or frames
    if not ours:
        return ""
    frame = ours[-1]
    path = Path(frame.filename)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f" at {shown}:{frame.lineno} `{(frame.line or '').strip()}`"


def describe(exc: BaseException) -> str:
    """Say in one line (per leaf of an exception group) what went wrong, and where if bare."""
    told = []
    for leaf in _leaves(exc):
        text = str(leaf).strip()
        if isinstance(leaf, Failed):
            told.append(text)
        elif isinstance(leaf, AssertionError):
            told.append(f"{text or 'assertion failed'}{_where(leaf)}")
        elif isinstance(leaf, TimeoutError) and not text:
            told.append(f"no answer in time{_where(leaf)}")
        else:
            told.append(
                f"{type(leaf).__name__}: {text or 'no message'}{_where(leaf) if not text else ''}"
            )
    return "; ".join(dict.fromkeys(told))
