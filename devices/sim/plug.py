"""A simulated smart plug in memory: a PlugDriver that tests script (unreachable, switch history)."""

from __future__ import annotations

from devices.errors import DeviceUnavailable
from devices.plug import PlugState, PlugStatus


class SimPlug:
    """Implements devices.plug.PlugDriver; `switched` records every command that reached the relay."""

    def __init__(self, name: str, state: PlugState = PlugState.OFF) -> None:
        self.name = name
        self.state = state
        self.reachable = True
        self.switched: list[PlugState] = []

    async def turn_on(self) -> None:
        self._switch(PlugState.ON)

    async def turn_off(self) -> None:
        self._switch(PlugState.OFF)

    async def status(self) -> PlugStatus:
        if not self.reachable:
            raise DeviceUnavailable(f"plug {self.name} does not answer")
        return PlugStatus(self.state)

    def _switch(self, state: PlugState) -> None:
        if not self.reachable:
            raise DeviceUnavailable(f"plug {self.name} does not answer")
        self.state = state
        self.switched.append(state)
