"""`[costs]` (tariffs: energy with time-of-day windows, material per kg, machine hours, grid CO2) and
`[accounting]` (how a job's measured figures are taken)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Literal, Self, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal
from pydantic import Field, PrivateAttr, field_validator, model_validator

from controller.config.base import Section
from controller.config.errors import NAME, key_error

if TYPE_CHECKING:
    from controller.config.models import SensorConfig

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)  # in date.weekday() order
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
# The field a grid-intensity sensor's readings carry (see CostsConfig.co2_sensor).
CO2_FIELD = "co2_g_per_kwh"


def _minutes(text: str, *, end: bool) -> int:
    hours, sep, minutes = text.partition(":")
    ok = sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()
    value = int(hours) * 60 + int(minutes) if ok else -1
    if not 0 <= value < DAY_MINUTES + end or int(minutes or 0) > 59:
        also = ', or "24:00" for the end of the day' if end else ""
        raise ValueError(f'must be a time of day "HH:MM", e.g. "22:00"{also}')
    return value


class EnergyWindow(Section):
    """`[[costs.energy_windows]]`: a time of day with its own price per kWh (wall clock in `timezone`)."""

    start: str
    end: str
    per_kwh: float = Field(ge=0, le=100)
    # The days the window starts on (a 22:00-06:00 window with days = ["fri"] runs into Saturday morning).
    days: list[Weekday] | None = Field(None, min_length=1)

    @field_validator("start")
    @classmethod
    def _start_time(cls, value: str) -> str:
        _minutes(value, end=False)
        return value

    @field_validator("end")
    @classmethod
    def _end_time(cls, value: str) -> str:
        _minutes(value, end=True)
        return value

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [d.strip().lower() if isinstance(d, str) else d for d in value]
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start_minute == self.end_minute:
            raise key_error("end", 'end equals start: for a whole day use start = "00:00", end = "24:00"')
        return self

    @property
    def start_minute(self) -> int:
        """Minutes after midnight the window starts."""
        return _minutes(self.start, end=False)

    @property
    def end_minute(self) -> int:
        """Minutes after midnight it ends (1440 for "24:00"); below start_minute if it wraps midnight."""
        return _minutes(self.end, end=True)

    def on_day(self, weekday: int) -> bool:
        """Whether the window starts on this day (0 = Monday, as date.weekday())."""
        return self.days is None or WEEKDAYS[weekday] in self.days

    def week_spans(self) -> list[tuple[int, int]]:
        """The [from, to) minutes of a week (0 = Monday 00:00) the window covers, a wrap past Sunday split."""
        length = (self.end_minute - self.start_minute) % DAY_MINUTES or DAY_MINUTES
        spans: list[tuple[int, int]] = []
        for day in range(7):
            if self.on_day(day):
                begin = day * DAY_MINUTES + self.start_minute
                spans.append((begin, min(begin + length, WEEK_MINUTES)))
                if begin + length > WEEK_MINUTES:
                    spans.append((0, begin + length - WEEK_MINUTES))
        return spans


class MaterialPrice(Section):
    """`[costs.materials.<MATERIAL>]`: the price of one material."""

    per_kg: float = Field(ge=0, le=10_000)


class CostsConfig(Section):
    """`[costs]`: what a print costs and emits. An unset price means "not priced" (null), 0 means free."""

    currency: str = Field("EUR", min_length=1, max_length=8)
    energy_per_kwh: float | None = Field(None, ge=0, le=100)
    energy_windows: list[EnergyWindow] = Field(default_factory=list)
    timezone: str | None = None
    materials: dict[str, MaterialPrice] = Field(default_factory=dict)
    machine_hour: float | None = Field(None, ge=0, le=10_000)
    co2_g_per_kwh: float | None = Field(None, ge=0, le=5000)
    co2_sensor: str | None = Field(None, pattern=NAME)
    _zone: tzinfo | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise ValueError('must be an IANA time zone name, e.g. "Europe/Berlin" or "UTC"') from None
        return value

    @field_validator("materials")
    @classmethod
    def _upper(cls, value: dict[str, MaterialPrice]) -> dict[str, MaterialPrice]:
        prices: dict[str, MaterialPrice] = {}
        for name, price in value.items():
            material = name.strip().upper()  # as PrinterConfig.materials
            if not material:
                raise ValueError("a material name must not be empty")
            if material in prices:
                raise ValueError(f"material {material} is given twice (names are not case-sensitive)")
            prices[material] = price
        return prices

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.co2_g_per_kwh is not None and self.co2_sensor is not None:
            message = "set co2_g_per_kwh (a constant) or co2_sensor (a grid-intensity sensor), not both"
            raise key_error("co2_sensor", message)
        if self.energy_windows and self.energy_per_kwh is None:
            message = "energy_windows need energy_per_kwh, the price outside the windows"
            raise key_error("energy_per_kwh", message)
        _no_overlap(self.energy_windows)
        self._zone = ZoneInfo(self.timezone) if self.timezone else _local_zone()
        return self

    @property
    def zone(self) -> tzinfo:
        """The zone the windows' wall-clock times are in (`timezone`, else the machine's)."""
        assert self._zone is not None  # set by the validator
        return self._zone

    def co2_sensor_problem(self, sensors: Sequence[SensorConfig]) -> str | None:
        """Why `co2_sensor` does not name a usable [[sensors]] entry, or None (for Config's cross-check)."""
        if self.co2_sensor is None:
            return None
        found = [s for s in sensors if s.id == self.co2_sensor]
        if not found:
            ids = ", ".join(s.id for s in sensors[:10]) or "none"
            return f"no sensor with id {self.co2_sensor!r} (sensors: {ids})"
        if found[0].profile != "json" or CO2_FIELD not in [f.field for f in found[0].fields]:
            return (
                f"sensor {self.co2_sensor!r} must be a json sensor with a [[sensors.fields]] entry "
                f'field = "{CO2_FIELD}" (the grid intensity in g/kWh)'
            )
        return None


def _local_zone() -> tzinfo:
    try:
        return tzlocal.get_localzone()
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise key_error("timezone", f"the machine's time zone is unknown ({exc}): set timezone") from None


def _no_overlap(windows: list[EnergyWindow]) -> None:
    """Refuse two windows that share a minute: each minute has one price."""
    for j, later in enumerate(windows):
        for i, earlier in enumerate(windows[:j]):
            shared = [
                max(a0, b0)
                for a0, a1 in earlier.week_spans()
                for b0, b1 in later.week_spans()
                if max(a0, b0) < min(a1, b1)
            ]
            if shared:
                day, clock = divmod(min(shared), DAY_MINUTES)
                when = f"{WEEKDAYS[day]} {clock // 60:02d}:{clock % 60:02d}"
                message = (
                    f"overlaps energy_windows[{i}] ({earlier.start}-{earlier.end}): both apply "
                    f"from {when} on; each time of day may have one price only"
                )
                raise key_error(("energy_windows", j), message)


class AccountingConfig(Section):
    """`[accounting]`: how energy and material per job are measured."""

    # How long after a job ends to wait for each plug's and the scale's next reading.
    settle_s: float = Field(30.0, ge=0, le=3600)
    # A reading further than this from a job's start or end is reported as a gap.
    max_gap_s: float = Field(60.0, gt=0, le=3600)
    # Measured grams differing from the slicer's estimate by more than this percentage are flagged.
    drift_pct: float = Field(15.0, gt=0, le=1000)
