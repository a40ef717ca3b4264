"""`[[members]]`: the people who own jobs and their monthly quotas; `[membership]`: who else may own one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr

from controller.config.base import Section
from controller.config.errors import NAME


class MemberConfig(Section):
    """`[[members]]`: one workshop member (a job's owner)."""

    name: str = Field(pattern=NAME, description="The owner name jobs are submitted and billed under")
    quota_g: float | None = Field(None, gt=0, description="Filament grams per calendar month")
    quota_cost: float | None = Field(None, gt=0, description="Cost per calendar month, in [costs] currency")
    password_file: Path | None = Field(None, description="File holding the member's web page password")
    _password: SecretStr | None = PrivateAttr(default=None)

    @property
    def password(self) -> str | None:
        """The web page password from `password_file`; None: this member cannot sign in."""
        return None if self._password is None else self._password.get_secret_value()


class MembershipConfig(Section):
    """`[membership]`: whether a job may belong to someone not listed in `[[members]]`."""

    # "refuse" only bites once [[members]] lists someone: with no members, every owner is accepted.
    unknown_owners: Literal["allow", "refuse"] = "refuse"
