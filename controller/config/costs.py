"""`[costs]` (tariffs: energy with time-of-day windows, material per kg, machine hours, grid CO2) and
`[accounting]` (how a job's measured figures are taken)."""

from __future__ import annotations

from pydantic import Field

from controller.config.base import Section


class CostsConfig(Section):
    """`[costs]`: what a print costs and emits. Everything 0 / unset means "not priced"."""

    currency: str = Field("EUR", min_length=1, max_length=8)
    energy_per_kwh: float = Field(0.0, ge=0, le=100)
    machine_hour: float = Field(0.0, ge=0, le=10_000)
    co2_g_per_kwh: float | None = Field(None, ge=0, le=5000)
    co2_topic: str | None = None


class AccountingConfig(Section):
    """`[accounting]`: how energy and material per job are measured."""

    # How long after a job ends to wait for each plug's and the scale's next reading.
    settle_s: float = Field(30.0, ge=0, le=3600)
    # A reading further than this from a job's start or end is reported as a gap.
    max_gap_s: float = Field(60.0, gt=0, le=3600)
    # Measured grams differing from the slicer's estimate by more than this percentage are flagged.
    drift_pct: float = Field(15.0, gt=0, le=1000)
