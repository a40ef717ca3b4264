"""A peer's availability as the log tells it: one line when it goes down, one when it is back, a line
again only when the reason changes in a way worth telling; and the back-off between attempts.

Used by the printer coordinators, the MQTT ingest and the telemetry writer, so each speaks of its peer
the same way and a dead peer never floods the log.
"""

from __future__ import annotations

import logging
import time


class Backoff:
    """Growing retry interval: start, doubled on each failure, capped; reset on success."""

    def __init__(self, start: float, cap: float) -> None:
        self.start = min(start, cap)
        self.cap = cap
        self._next = self.start

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.start


class Availability:
    """Whether a peer answers. `down()` on each failure, `up()` on each success; both log transitions.

    `down_message` and `up_message` are %-templates: the first gets the reason, the second the seconds it
    was down (then `up()`'s own arguments).
    """

    def __init__(
        self,
        log: logging.Logger,
        backoff: Backoff,
        *,
        down_message: str,
        up_message: str,
        up_level: int = logging.INFO,
    ) -> None:
        self.log = log
        self.backoff = backoff
        self.down_message = down_message
        self.up_message = up_message
        self.up_level = up_level
        self.down_since: float | None = None
        self.reason: str | None = None

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def down(self, reason: object, *, retell: bool = False) -> float:
        """A failed attempt: logged once per outage (again if `retell` and the reason changed); returns the
        delay before the next attempt."""
        text = str(reason)
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.log.warning(self.down_message, text)
        elif retell and text != self.reason:
            self.log.warning(self.down_message, text)
        self.reason = text
        return self.backoff.next()

    def up(self, *args: object) -> float | None:
        """A successful attempt: after an outage, logs it with how long it lasted and returns that."""
        self.backoff.reset()
        if self.down_since is None:
            return None
        lasted = time.monotonic() - self.down_since
        self.log.log(self.up_level, self.up_message, lasted, *args)
        self.down_since = self.reason = None
        return lasted
