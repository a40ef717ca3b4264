"""A plug's energy as one running total, and a reading's value at any moment by interpolation (pure).

A plug's counter (Tasmota `Total`, Shelly `aenergy.total`, Zigbee2MQTT `energy`) is turned into a total
that only grows: a rise adds the difference, a drop means the counter restarted (re-flashed plug,
EnergyReset) and adds the new value, which is what it counted since. A plug without a counter has its
power samples integrated instead. A job's energy is the difference of the totals of its printer's
plugs at its start and end, each taken at that exact moment by interpolating the samples either side;
the distance to the nearest sample is reported as the gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

# A counter that dips by less than this (kWh) is rounding in the plug's report, not a reset.
RESET_TOLERANCE_KWH = 1e-6
# Samples kept per series for interpolation: enough for 2 h of 1 s reports (a mark waits at most
# [accounting] settle_s for the sample after it, so only recent history is ever asked for).
HISTORY = 7200
# A counter whose steps are this coarse or coarser (Tasmota's default 3 decimals of kWh, Zigbee2MQTT's
# 2) cannot tell a short print's energy: its power readings fill in between the steps.
COARSE_STEP_KWH = 0.001


@dataclass(frozen=True, slots=True)
class ValueAt:
    """A series' value at a moment, and how far (s) the nearest sample used was from it."""

    value: float
    gap_s: float


class Series:
    """Recent (time, value) samples of one quantity, in time order, bounded."""

    def __init__(self, maxlen: int = HISTORY) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def last(self) -> tuple[float, float] | None:
        return self._samples[-1] if self._samples else None

    def add(self, t: float, value: float) -> None:
        """Append a sample at unix time `t`; one older than the last is out of order and ignored."""
        if self._samples and t < self._samples[-1][0]:
            return
        if self._samples and t == self._samples[-1][0]:
            self._samples[-1] = (t, value)
            return
        self._samples.append((t, value))

    def has_after(self, t: float) -> bool:
        return bool(self._samples) and self._samples[-1][0] >= t

    def at(self, t: float) -> ValueAt | None:
        """The value at `t`, linear between the samples either side; None with no samples.

        Before the first or after the last sample, the nearest sample's value with its distance as gap.
        """
        samples = self._samples
        if not samples:
            return None
        if t <= samples[0][0]:
            return ValueAt(samples[0][1], samples[0][0] - t)
        if t >= samples[-1][0]:
            return ValueAt(samples[-1][1], t - samples[-1][0])
        # Marks are near the newest samples: search from the end.
        for i in range(len(samples) - 1, 0, -1):
            t0, v0 = samples[i - 1]
            t1, v1 = samples[i]
            if t0 <= t <= t1:
                share = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
                return ValueAt(v0 + (v1 - v0) * share, min(t - t0, t1 - t))
        raise AssertionError("unreachable: samples are in time order")


class Source(StrEnum):
    """Where a meter's total comes from."""

    COUNTER = "counter"
    POWER = "power"


@dataclass(frozen=True, slots=True)
class MeterState:
    """What is stored of a meter so a restart continues its total: the last raw counter and the total."""

    raw_kwh: float | None
    total_kwh: float
    at: float


class PlugMeter:
    """One plug's running total (kWh), fed with its counter and power readings."""

    def __init__(self, sensor: str, state: MeterState | None = None) -> None:
        self.sensor = sensor
        self.series = Series()
        self.source: Source | None = None
        self.resets = 0
        self.dirty = False
        self._raw = state.raw_kwh if state else None
        self._total = state.total_kwh if state else 0.0
        self._power: tuple[float, float] | None = None  # (t, W) of the last power sample
        self._step: float | None = None  # the smallest rise of the counter seen: its resolution
        self._since_step = 0.0  # kWh of integrated power since the counter last rose
        self._since_report = 0.0  # kWh of integrated power since the counter's last report
        if state is not None:
            self.series.add(state.at, state.total_kwh)

    @property
    def total_kwh(self) -> float:
        return self._total

    def state(self) -> MeterState:
        last = self.series.last
        return MeterState(self._raw, self._total, last[0] if last else 0.0)

    def counter(self, t: float, raw_kwh: float) -> None:
        """A counter reading: the total grows by the rise, or by the new value after a reset."""
        self.source = Source.COUNTER
        finest = _resolution(raw_kwh)
        self._step = finest if self._step is None else min(self._step, finest)
        if self._raw is not None:
            rise = raw_kwh - self._raw
            if rise > RESET_TOLERANCE_KWH:
                self._total += rise
                self._step = rise if self._step is None else min(self._step, rise)
                self._since_step = 0.0
            elif rise < -RESET_TOLERANCE_KWH:
                # Counted since the reset, or, if more, the power drawn since the last report: the
                # energy between that report and the reset is lost to the counter but not to power.
                self.resets += 1
                self._total += max(raw_kwh, self._since_report)
                self._since_step = 0.0
        self._raw = raw_kwh
        self._since_report = 0.0
        self._record(t)

    def power(self, t: float, watts: float) -> None:
        """A power reading (give it before the counter of the same report), integrated (trapezoid):
        the total of a plug that never sent a counter; for one that does, what fills in between the
        counter's steps (see `_record`) and what a reset would otherwise lose."""
        previous, self._power = self._power, (t, watts)
        if previous is None or t <= previous[0]:
            return
        kwh = (previous[1] + watts) / 2 * (t - previous[0]) / 3_600_000
        if self.source is Source.COUNTER:
            self._since_step += kwh
            self._since_report += kwh
        else:
            self.source = Source.POWER
            self._total += kwh
        self._record(t)

    def _record(self, t: float) -> None:
        # A counter counts in steps of its resolution: 10 Wh for a Zigbee2MQTT plug reporting kWh
        # with 2 decimals, more than a short print uses. Between steps the integrated power fills in,
        # never more than one step. Only for a coarse counter: a finer one is followed exactly, since the
        # integrated power cannot know where between two reports the counter passed its last step.
        coarse = self._step is not None and self._step >= COARSE_STEP_KWH
        filled = min(self._since_step, self._step) if coarse and self._step is not None else 0.0
        self.series.add(t, self._total + filled)
        self.dirty = True


def _resolution(raw_kwh: float) -> float:
    """The finest step a counter value can show, by its decimals (1.01 → 0.01): an upper bound of the
    counter's resolution before a rise shows it, so a coarse counter is refined from its first report."""
    for decimals in range(7):
        scaled = raw_kwh * 10**decimals
        if abs(scaled - round(scaled)) < 1e-6:
            return float(10**-decimals)
    return 1e-7
