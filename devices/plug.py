"""What the power policy needs from a smart plug, in vendor-neutral terms: the `PlugDriver` protocol.

A plug is switched on or off and says whether it is on; its power and energy readings come over MQTT
as sensor readings (devices/sensors), not through this interface. Drivers for Tasmota, Shelly and
Zigbee2MQTT plugs publish their vendor's command topic; policy (when to switch) lives in controller/.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class PlugState(StrEnum):
    """A plug's relay as the plug reports it; UNKNOWN before it has said."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PlugStatus:
    """The relay state and whether the plug answers at all."""

    state: PlugState
    reachable: bool = True


class PlugDriver(Protocol):
    """Switch one smart plug. Every call raises the devices.errors hierarchy on failure."""

    name: str

    async def turn_on(self) -> None:
        """Switch the relay on."""

    async def turn_off(self) -> None:
        """Switch the relay off."""

    async def status(self) -> PlugStatus:
        """The relay as the plug last reported it."""
