"""The PlugDriver seam the power policy will use: the simulated plug satisfies it and fails as drivers do."""

from __future__ import annotations

import pytest

from devices.errors import DeviceUnavailable
from devices.plug import PlugDriver, PlugState, PlugStatus
from devices.sim.plug import SimPlug


async def switch_off_after_cooldown(plug: PlugDriver) -> PlugStatus:
    """What a policy does through the protocol alone (typed against PlugDriver, not SimPlug)."""
    if (await plug.status()).state is PlugState.ON:
        await plug.turn_off()
    return await plug.status()


async def test_sim_plug_switches_and_reports_through_the_protocol() -> None:
    plug = SimPlug("plug-p1", PlugState.ON)
    assert await switch_off_after_cooldown(plug) == PlugStatus(PlugState.OFF)
    assert await switch_off_after_cooldown(plug) == PlugStatus(PlugState.OFF)  # already off: no command
    await plug.turn_on()
    assert plug.switched == [PlugState.OFF, PlugState.ON]


async def test_an_unreachable_plug_raises_the_device_error_and_keeps_its_state() -> None:
    plug = SimPlug("plug-p2", PlugState.ON)
    plug.reachable = False
    with pytest.raises(DeviceUnavailable, match="plug-p2"):
        await plug.turn_off()
    with pytest.raises(DeviceUnavailable):
        await plug.status()
    assert plug.state is PlugState.ON
    assert plug.switched == []
