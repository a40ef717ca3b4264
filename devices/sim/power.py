"""What a printer draws from its plug, from its host state and heater temperatures: a pure model.

Figures are those of a typical bed-slinger (Prusa MK3/MK4, Ender 3 class): a few watts on standby,
a 24 V bed heater of about 220 W, a 40 W hotend, 10-20 W for motors and fans while printing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from devices.printer import HostState, Temperature


@dataclass(frozen=True, slots=True)
class HeaterModel:
    """One heater: full power, the duty that holds it at target, and the band of a proportional control.

    Duty = hold_duty + (target - actual) / band_c, clamped to [0, 1]; 0 when the target is 0 (off).
    """

    max_w: float
    hold_duty: float
    band_c: float = 10.0

    def __post_init__(self) -> None:
        if self.max_w < 0 or not 0 <= self.hold_duty <= 1 or self.band_c <= 0:
            raise ValueError("a heater needs max_w >= 0, 0 <= hold_duty <= 1 and band_c > 0")

    def power_w(self, temperature: Temperature | None) -> float:
        if temperature is None or not temperature.target or temperature.target <= 0:
            return 0.0
        actual = temperature.actual if temperature.actual is not None else temperature.target
        # Above target counts as holding, not as off: the tests' instant-heat virtual printers sit at
        # 250 °C and only drift down to the target, where a real heater would have been holding anyway.
        below = max(0.0, temperature.target - actual)
        duty = min(1.0, self.hold_duty + below / self.band_c)
        return self.max_w * duty


def _default_heaters() -> dict[str, HeaterModel]:
    return {
        "bed": HeaterModel(max_w=220.0, hold_duty=0.35),
        "tool0": HeaterModel(max_w=40.0, hold_duty=0.4),
    }


@dataclass(frozen=True, slots=True)
class PowerModel:
    """The figures of one printer. Heaters are keyed by OctoPrint's names (`bed`, `tool0`, `chamber`)."""

    standby_w: float = 4.0
    motion_w: float = 15.0  # motors and fans while printing
    heaters: Mapping[str, HeaterModel] = field(default_factory=_default_heaters)
    voltage_v: float = 230.0

    def __post_init__(self) -> None:
        if self.standby_w < 0 or self.motion_w < 0 or self.voltage_v <= 0:
            raise ValueError("standby_w and motion_w must be >= 0 and voltage_v > 0")


def printer_power_w(
    model: PowerModel,
    *,
    relay_on: bool,
    state: HostState,
    temperatures: Mapping[str, Temperature],
) -> float:
    """Watts drawn through the plug. Off relay: 0. Host offline or in error: standby only (its heaters
    are not known to be on). Idle and paused: standby plus heaters. Printing: plus motors and fans."""
    if not relay_on:
        return 0.0
    watts = model.standby_w
    if state in (HostState.OFFLINE, HostState.ERROR):
        return watts
    watts += sum(heater.power_w(temperatures.get(name)) for name, heater in model.heaters.items())
    if state is HostState.PRINTING:
        watts += model.motion_w
    return watts
