"""The base of every farmctl.toml section: unknown keys refused, values frozen once loaded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
