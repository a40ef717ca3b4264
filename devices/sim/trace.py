"""A simulated device's ground truth: a bounded record of a growing total (kWh consumed, grams used).

The plug records a point whenever its power changes and at every integration step, so between points
the power was constant and linear interpolation is exact. The scale records at every poll of the
printer and its total is held between polls (steps).
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


def epoch_s(t: datetime) -> float:
    """Seconds since the epoch of an aware datetime; ValueError for a naive one (its zone is unknown)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time {t.isoformat()} has no zone: pass an aware datetime (UTC)")
    return t.timestamp()


class Trace:
    """(time, total, extra values) points, oldest dropped beyond `maxlen`; optionally logged as JSONL.

    Between points the total is interpolated linearly, or with `steps` held at the earlier point's
    value (a quantity only known when sampled: the scale's weight changes when it polls the printer).

    `total` never decreases. `extra` values (a counter that resets, the power, the weight) are kept
    as recorded, logged, and read back by `counter_at`.
    """

    def __init__(
        self, name: str, *, maxlen: int = 200_000, log_path: Path | None = None, steps: bool = False
    ) -> None:
        if maxlen < 2:
            raise ValueError("a trace needs room for at least two points")
        self.name = name
        self.steps = steps
        self._times: deque[float] = deque(maxlen=maxlen)
        self._totals: deque[float] = deque(maxlen=maxlen)
        self._extras: deque[dict[str, float]] = deque(maxlen=maxlen)
        self._evicted = False
        self._log: IO[str] | None = None
        if log_path is not None:
            # Line-buffered: each point is one small write, and a reader (or a crash) sees whole lines.
            self._log = log_path.open("a", encoding="utf-8", buffering=1)

    def close(self) -> None:
        """Close the JSONL log, if any."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def __len__(self) -> int:
        return len(self._times)

    def add(self, t: float, total: float, **extra: float) -> None:
        """Record `total` at epoch second `t` (not before the last point)."""
        if self._times:
            if t < self._times[-1]:
                raise ValueError(f"{self.name}: point at {t} is before the last one at {self._times[-1]}")
            if total < self._totals[-1]:
                raise ValueError(f"{self.name}: total {total} is below the last one {self._totals[-1]}")
        if len(self._times) == self._times.maxlen:
            self._evicted = True
        self._times.append(t)
        self._totals.append(total)
        self._extras.append(extra)
        if self._log is not None:
            time = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
            self._log.write(json.dumps({"t": time, self.name: total, **extra}) + "\n")

    def total_at(self, t: datetime) -> float:
        """The total at `t`: interpolated (or stepped) between points, the first before the first point,
        the last after the last one.

        ValueError when `t` lies before the oldest point kept (older points were dropped).
        """
        if not self._times:
            raise ValueError(f"{self.name}: nothing recorded yet")
        s = epoch_s(t)
        if s < self._times[0]:
            if self._evicted:
                raise ValueError(f"{self.name}: {t.isoformat()} is older than the trace still kept")
            return self._totals[0]
        # Indexing a deque walks its blocks: slower than a list in the middle, fine for a test's queries.
        i = bisect.bisect_right(self._times, s)
        if i >= len(self._times):
            return self._totals[-1]
        if self.steps:
            return self._totals[i - 1]
        t0, t1 = self._times[i - 1], self._times[i]
        v0, v1 = self._totals[i - 1], self._totals[i]
        return v0 if t1 == t0 else v0 + (v1 - v0) * (s - t0) / (t1 - t0)

    def between(self, t0: datetime, t1: datetime) -> float:
        """How much the total grew from `t0` to `t1` (t0 ≤ t1)."""
        if epoch_s(t1) < epoch_s(t0):
            raise ValueError(f"{self.name}: the interval ends before it starts")
        return self.total_at(t1) - self.total_at(t0)

    def counter_at(self, t: datetime, key: str) -> float | None:
        """A counter kept as extra `key` that grows with the total and may drop (reset) at a point:
        its value at the last point at or before `t` plus the total's growth since that point."""
        i = bisect.bisect_right(self._times, epoch_s(t))
        if not i or key not in self._extras[i - 1]:
            return None
        return self._extras[i - 1][key] + self.total_at(t) - self._totals[i - 1]

    def points(self) -> list[tuple[float, float, dict[str, float]]]:
        """Every kept point as (epoch seconds, total, extra values), oldest first."""
        return list(zip(self._times, self._totals, self._extras, strict=True))
