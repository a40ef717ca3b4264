"""Value types of the sensor profiles: what a configured sensor is and what a decoded message gives."""

from __future__ import annotations

import math
from collections.abc import ItemsView, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from devices.sensors.topics import valid_filter

K = TypeVar("K")
V = TypeVar("V")


class PayloadError(ValueError):
    """A message on a sensor's topic that cannot be used; the text says why, for a rate-limited log line."""


class Profile(StrEnum):
    """The wire format a sensor speaks."""

    tasmota = "tasmota"
    shelly = "shelly"
    zigbee2mqtt = "zigbee2mqtt"
    esphome = "esphome"
    json = "json"


# What an ESPHome topic's single number is: kind -> (default measurement, field).
ESPHOME_KINDS: Mapping[str, tuple[str, str]] = {
    "power": ("power", "power_w"),
    "energy": ("power", "energy_kwh"),
    "voltage": ("power", "voltage_v"),
    "current": ("power", "current_a"),
    "weight": ("material", "weight_g"),
    "temperature": ("environment", "temperature_c"),
    "humidity": ("environment", "humidity_pct"),
}


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping: keeps SensorSpec and Reading usable as dict keys and set members.

    Compares equal to any mapping with the same items, so `reading.fields == {"power_w": 12.0}` holds.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        # Immutable, so another FrozenMap's dict is shared rather than copied.
        self._data: dict[K, V] = items._data if isinstance(items, FrozenMap) else dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> ItemsView[K, V]:  # the dict's own view: faster than Mapping's
        return self._data.items()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return repr(self._data)


NO_TAGS: FrozenMap[str, str] = FrozenMap()


@dataclass(frozen=True, slots=True)
class FieldMap:
    """json profile: read the number at dotted `path` ("ENERGY.Power", "sensors.0.value"), times `scale`."""

    path: str
    field: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.path or any(not part for part in self.path.split(".")):
            raise ValueError(f"mapping path {self.path!r} has an empty segment")
        if not self.field:
            raise ValueError(f"mapping for {self.path!r} names no field")
        if not math.isfinite(self.scale):
            raise ValueError(f"mapping scale for {self.path!r} must be a finite number")


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """One configured sensor. Validated here, so a bad `[[sensors]]` entry fails at config load.

    `tags` is stored as a FrozenMap (immutable and hashable); `sensor` is reserved for the id.
    `measurement` applies to the esphome and json profiles only; `kind` to esphome only.
    """

    id: str
    profile: Profile
    topic: str
    measurement: str | None = None
    kind: str | None = None
    fields: tuple[FieldMap, ...] = ()
    tags: Mapping[str, str] = NO_TAGS
    max_payload: int = 64 * 1024
    # The tags of every reading: `sensor` = id plus `tags`; one shared object (set in __post_init__).
    reading_tags: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"sensor {self.id!r}"
        if not self.id:
            raise ValueError("sensor id must not be empty")
        try:
            object.__setattr__(self, "profile", Profile(self.profile))
        except ValueError:
            choices = ", ".join(Profile)
            raise ValueError(f"{where}: profile {self.profile!r} is not one of {choices}") from None
        if not valid_filter(self.topic):
            raise ValueError(f"{where}: topic {self.topic!r} is not a valid MQTT topic filter")
        if self.max_payload <= 0:
            raise ValueError(f"{where}: max_payload must be positive")
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "tags", FrozenMap(self.tags))
        for key, value in self.tags.items():
            if not key or not value:
                raise ValueError(f"{where}: tag {key!r} needs a name and a non-empty value")
        if "sensor" in self.tags:
            raise ValueError(f"{where}: tag 'sensor' is reserved for the sensor id")
        object.__setattr__(self, "reading_tags", FrozenMap({"sensor": self.id, **self.tags}))
        self._check_profile_options(where)

    def _check_profile_options(self, where: str) -> None:
        if self.profile is Profile.esphome:
            if self.kind not in ESPHOME_KINDS:
                raise ValueError(f"{where}: esphome needs kind = one of {', '.join(ESPHOME_KINDS)}")
        elif self.kind is not None:
            raise ValueError(f"{where}: kind applies to the esphome profile only")
        if self.profile is Profile.json:
            if not self.measurement:
                raise ValueError(f"{where}: the json profile needs a measurement")
            if not self.fields:
                raise ValueError(f"{where}: the json profile needs at least one field mapping")
            names = [m.field for m in self.fields]
            if len(set(names)) != len(names):
                raise ValueError(f"{where}: two mappings write the same field")
        elif self.fields:
            raise ValueError(f"{where}: field mappings apply to the json profile only")
        if self.measurement is not None and self.profile not in (Profile.esphome, Profile.json):
            raise ValueError(f"{where}: measurement is fixed by the {self.profile} profile")
        if self.measurement == "":
            raise ValueError(f"{where}: measurement must not be empty")


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded sample: finite float fields in our units, tags with at least `sensor`.

    `time` is UTC when the payload carries a trustworthy sample time; None means "use receive time".
    """

    measurement: str
    fields: Mapping[str, float]
    tags: Mapping[str, str]
    time: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fields, FrozenMap):
            object.__setattr__(self, "fields", FrozenMap(self.fields))
        if not isinstance(self.tags, FrozenMap):  # the sensor's own tags object: kept as is
            object.__setattr__(self, "tags", FrozenMap(self.tags))
