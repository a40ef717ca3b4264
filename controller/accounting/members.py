"""Who may own a job (a member of farmctl.toml or one an admin added at run time), and whether a
member's monthly quota leaves room for another (checked at submit).

A member's usage this month (the farm's calendar month, in [costs] timezone) is what their finished
jobs used (grams as the usage report counts them, the accountant's cost) plus the estimates of their
queued and running jobs; a submission is refused when that plus its own estimate x copies would pass a
quota. Cost estimates price the slicer's grams ([costs.materials]) and hours (machine_hour); energy is
only known once a print has run.
"""

from __future__ import annotations

import difflib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.accounting.roster import stored_members
from controller.accounting.usage import FINISHED_SQL, GRAMS_SQL, month_of, utc_text
from controller.config import Config
from controller.config.members import MemberConfig
from controller.core.errors import Unprocessable
from controller.store import AsyncStore

_FINISHED_USAGE = f"""
    SELECT TOTAL({GRAMS_SQL}) AS grams, TOTAL(a.cost) AS cost
    FROM jobs j LEFT JOIN job_accounts a ON a.job_id = j.id
    WHERE j.owner = ? AND {FINISHED_SQL} AND j.finished_at >= ? AND j.finished_at < ?
"""  # noqa: S608 - only our own SQL fragments are interpolated
_LISTED = 10  # members named in a refusal; a big workshop's list is cut short


class UnknownOwner(Unprocessable):
    """The job's owner is not a member and [membership] unknown_owners = "refuse" (422)."""


class QuotaExceeded(Unprocessable):
    """The submission would take a member past a monthly quota (422)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """What one copy of a submission is expected to use; None where the G-code does not say."""

    grams: float | None = None
    seconds: float | None = None
    material: str | None = None
    copies: int = 1


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """A member's usage this month: finished jobs' figures plus the estimates of those not finished."""

    grams: float
    cost: float


def member_of(config: Config, owner: str, stored: Sequence[MemberConfig] = ()) -> MemberConfig | None:
    """The member `owner` names, among farmctl.toml's and the `stored` (run-time) ones; None if not a
    member but allowed; UnknownOwner if refused."""
    fixed = {m.name for m in config.members}
    members = [*config.members, *(m for m in stored if m.name not in fixed)]  # the file's name wins
    found = next((m for m in members if m.name == owner), None)
    if found is not None or not members or config.membership.unknown_owners == "allow":
        return found
    names = [m.name for m in members]
    close = difflib.get_close_matches(owner, names, n=1) or [
        n for n in names if n.casefold() == owner.casefold()
    ]
    hint = f"did you mean {close[0]!r}? " if close else ""
    listed = ", ".join(names[:_LISTED]) + (f", … ({len(names)} in all)" if len(names) > _LISTED else "")
    raise UnknownOwner(
        f"owner {owner[:64]!r} is not a member: {hint}members are {listed} "
        "(set owner, or add them: farmctl admin members add, or [[members]] in farmctl.toml)"
    )


def estimate_cost(config: Config, estimate: Estimate) -> float:
    """The priced part of one copy's cost: material by weight and machine hours (energy is unknown)."""
    costs, cost = config.costs, 0.0
    price = costs.materials.get((estimate.material or "").upper())
    if price is not None and estimate.grams is not None:
        cost += estimate.grams / 1000 * price.per_kg
    if costs.machine_hour is not None and estimate.seconds is not None:
        cost += estimate.seconds / 3600 * costs.machine_hour
    return cost


def month_usage(db: sqlite3.Connection, config: Config, owner: str, now: datetime) -> MonthUsage:
    """`owner`'s usage in the calendar month holding `now` (jobs not finished count with estimates)."""
    since, until = month_of(now, config.costs.zone)
    finished = db.execute(_FINISHED_USAGE, (owner, utc_text(since), utc_text(until))).fetchone()
    grams, cost = float(finished["grams"]), float(finished["cost"])
    pending = db.execute(
        "SELECT filament_g, estimated_s, material FROM jobs WHERE owner = ?"
        " AND state IN ('queued', 'dispatching', 'printing', 'paused')",
        (owner,),
    )
    for row in pending:
        grams += row["filament_g"] or 0.0
        cost += estimate_cost(config, Estimate(row["filament_g"], row["estimated_s"], row["material"]))
    return MonthUsage(grams, cost)


def check_quota(config: Config, member: MemberConfig, used: MonthUsage, new: Estimate) -> None:
    """QuotaExceeded if `new` would take `member` past a quota this month."""
    add_g = (new.grams or 0.0) * new.copies
    add_cost = estimate_cost(config, new) * new.copies
    currency = config.costs.currency
    limits = (
        ("filament", member.quota_g, used.grams, add_g, "g"),
        ("cost", member.quota_cost, used.cost, add_cost, f" {currency}"),
    )
    for what, quota, spent, add, unit in limits:
        if quota is not None and spent + add > quota:
            adds = f"; this submission would add {add:.2f}{unit}" if add else ""
            raise QuotaExceeded(
                f"{member.name} has used {spent:.2f}{unit} of a {quota:g}{unit} monthly {what} quota"
                f" (finished jobs and those still queued or printing){adds}"
            )


async def check_submission(
    config: Config, store: AsyncStore, owner: str, new: Estimate | None = None
) -> None:
    """Refuse an unknown owner (UnknownOwner) or a submission past a quota (QuotaExceeded).

    Without `new` (before the upload is read) only an owner already past a quota is refused.
    """
    now = datetime.now(UTC)

    def look(db: sqlite3.Connection) -> tuple[MemberConfig, MonthUsage] | None:
        # One read for both: the run-time members (an admin's) and, for a member with a quota, the month.
        member = member_of(config, owner, stored_members(db))
        if member is None or (member.quota_g is None and member.quota_cost is None):
            return None
        return member, month_usage(db, config, owner, now)

    found = await store.call(store.sync.read, look)
    if found is not None:
        check_quota(config, found[0], found[1], new or Estimate(copies=0))
