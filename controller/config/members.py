"""`[[members]]`: the people who own jobs, their monthly quotas and web login."""

from __future__ import annotations

from pydantic import Field

from controller.config.base import Section
from controller.config.errors import NAME


class MemberConfig(Section):
    """`[[members]]`: one workshop member (a job's owner)."""

    name: str = Field(pattern=NAME)
    quota_g: float | None = Field(None, gt=0)
    quota_cost: float | None = Field(None, gt=0)
