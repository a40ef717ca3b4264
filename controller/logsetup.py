"""Logging to stderr in journald-friendly lines, with a cap on how often one message may repeat."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_WINDOW_S = 60.0
# Distinct messages remembered at once; past this, finished windows are forgotten.
_MAX_KEYS = 512


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


@dataclass
class _Window:
    start: float
    count: int = 0


class RateLimitedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes each message template at most `per_minute` times a minute.

    Records are alike when logger, level and template (the first line of `msg`, before its arguments)
    match, so a flood with changing values is held back too. What was held back is counted in one
    "suppressed K similar messages" line, written before that template's next record or at close.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        per_minute: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream)
        self.per_minute = per_minute
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}

    def emit(self, record: logging.LogRecord) -> None:
        # A plain-text library (log-rate-limit) exists, but it appends its count to the next message
        # that passes instead of writing a line of its own, and keys on the rendered text by default.
        now = self._clock()
        key = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:200])
        window = self._windows.get(key)
        if window is None or now - window.start >= _WINDOW_S:
            if window is not None:
                self._summarise(key, window)
            elif len(self._windows) >= _MAX_KEYS:
                self._forget(now)
            window = self._windows[key] = _Window(now)
        window.count += 1
        if window.count <= self.per_minute:
            super().emit(record)

    def close(self) -> None:
        self.acquire()
        try:
            for key, window in self._windows.items():
                self._summarise(key, window)
            self._windows.clear()
        finally:
            self.release()
        super().close()

    def _summarise(self, key: tuple[str, int, str], window: _Window) -> None:
        held = window.count - self.per_minute
        if held <= 0:
            return
        name, level, template = key
        summary = logging.LogRecord(
            name,
            level,
            __file__,
            0,
            "suppressed %d similar messages (more than %d a minute): %s",
            (held, self.per_minute, template),
            None,
        )
        super().emit(summary)

    def _forget(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            if now - window.start >= _WINDOW_S:
                self._summarise(key, window)
                del self._windows[key]


def setup_logging(level: str) -> None:
    """Configure the root logger once; journald adds time and unit, so we add them only on a tty."""
    handler = RateLimitedHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs would echo every poll of the web page; errors still surface via uvicorn.error.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
