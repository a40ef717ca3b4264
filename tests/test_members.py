"""Members and quotas: an unknown owner refused or allowed at submit, a monthly quota refused through the
real API with what was used and what the submission would add, and the example config's [[members]]."""

from __future__ import annotations

import asyncio
import re
import shutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.accounting.members import UnknownOwner, member_of
from controller.config import Config, load_config
from controller.config.members import MemberConfig, MembershipConfig
from controller.store import Store
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import closed_port_printers, config_for
from tests.jobrows import add_account, add_job
from tests.test_config import EXAMPLE

MEMBERS = """
[[members]]
name = "alice"
quota_g = 100.0
[[members]]
name = "bob"
quota_cost = 5.0
[[members]]
name = "carol"
[costs]
machine_hour = 3.6
[costs.materials.PLA]
per_kg = 20.0
"""


def members(names: list[str], policy: str = "refuse") -> Config:
    return Config.model_validate(
        {"members": [{"name": n} for n in names], "membership": {"unknown_owners": policy}}
    )


def test_unknown_owners_are_refused_naming_the_members_or_allowed() -> None:
    config = members(["alice", "bob"])
    assert member_of(config, "alice") == MemberConfig(name="alice")
    with pytest.raises(UnknownOwner, match=r"owner 'mallory' is not a member: members are alice, bob \("):
        member_of(config, "mallory")
    with pytest.raises(UnknownOwner, match="did you mean 'alice'"):
        member_of(config, "Alice")
    many = members([f"m{i:02d}" for i in range(40)])
    with pytest.raises(UnknownOwner) as refused:
        member_of(many, "x")
    assert "m00, m01" in str(refused.value)
    assert "m09, … (40 in all)" in str(refused.value)
    assert "m10" not in str(refused.value)
    assert member_of(members(["alice"], "allow"), "mallory") is None
    # No members listed: anyone may own a job, whatever the policy says.
    assert member_of(members([]), "mallory") is None


def test_the_example_config_documents_members_and_membership(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    parsed = tomllib.loads(text)
    config = Config.model_validate({"members": parsed["members"], "membership": parsed["membership"]})
    assert [m.name for m in config.members] == ["alice", "bob"]
    assert config.members[0].quota_g == 2000.0
    for section in (MemberConfig, MembershipConfig):
        for key in section.model_fields:
            assert len(re.findall(rf"^(# )?{key} = ", text, re.M)) >= 1, f"{key} is not in the example"
    # The whole example still loads (tests/test_config.py checks the rest of it).
    shutil.copy(EXAMPLE, tmp_path / "farmctl.toml")
    (tmp_path / "secrets").mkdir()
    for name in (
        "frontdesk.token",
        "operator.token",
        "mk4-1.key",
        "ender-2.key",
        "mqtt.password",
        "influx.password",
    ):
        (tmp_path / "secrets" / name).write_text(f"secret-{name}\n")
    assert load_config(tmp_path / "farmctl.toml", env={}).membership.unknown_owners == "refuse"


async def test_quotas_and_unknown_owners_at_submit_through_the_api(tmp_path: Path) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS, sections=MEMBERS)
    cube = print_file(tmp_path / "cube.gcode")  # 1.5 g, 1 s estimated
    # The history is in the store before the daemon starts: written beside a running daemon, its
    # events would reach the accountant, which accounts each finished job anew from what it measured
    # (nothing here), replacing these figures.
    now = datetime.now(UTC)
    config.controller.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.controller.state_dir / "farmctl.db")
    try:
        # alice this month: 60 g weighed on a finished job, 30 g estimated on a queued one.
        done = add_job(store, owner="alice", state="completed", started=now, finished=now)
        add_account(store, done, filament_measured_g=60.0, filament_est_g=70.0, cost=1.0)
        add_job(store, owner="alice", state="queued", printer=None, finished=None, filament_g=30.0)
        # Last month's print does not count against this month's quota.
        old = now - timedelta(days=40)
        earlier = add_job(store, owner="alice", state="completed", started=old, finished=old)
        add_account(store, earlier, filament_measured_g=500.0)
        # bob has spent 4.99 of 5.00 this month.
        spent = add_job(store, owner="bob", state="completed", started=now, finished=now)
        add_account(store, spent, filament_measured_g=1.0, cost=4.99)
    finally:
        store.close()
    async with running_farm(config, tmp_path / "etc/secrets") as farm:

        async def submit(owner: str | None, copies: int = 1) -> tuple[int, str]:
            data = {"copies": str(copies)} | ({"owner": owner} if owner else {})
            with cube.open("rb") as f:
                resp = await farm.api.post("/api/v1/jobs", data=data, files={"file": ("cube.gcode", f)})
            return resp.status_code, resp.text

        # 90 g used + 7 x 1.5 g = 100.5 g > 100 g.
        status, text = await submit("alice", copies=7)
        assert status == 422, text
        assert "alice has used 90.00g of a 100g monthly filament quota" in text
        assert "this submission would add 10.50g" in text
        status, text = await submit("alice", copies=6)  # 99 g: within the quota
        assert status == 201, text
        status, text = await submit("alice")
        assert status == 422
        assert "has used 99.00g" in text
        # bob: 1.5 g of PLA at 20/kg plus 1 s at 3.6/h = 0.031 on top of 4.99 passes 5.
        status, text = await submit("bob")
        assert status == 422
        assert "bob has used 4.99 EUR of a 5 EUR monthly cost quota" in text
        assert "would add 0.03 EUR" in text
        # carol has no quota; an unknown owner (also the token's own name by default) is refused.
        assert (await submit("carol"))[0] == 201
        status, text = await submit("mallory")
        assert status == 422
        assert "owner 'mallory' is not a member: members are alice, bob, carol" in text
        status, text = await submit(None)
        assert status == 422
        assert "owner 'ops' is not a member" in text
        jobs = await farm.jobs()
        submitted = [j["owner"] for j in jobs if j["file"] == "cube.gcode"]
        assert sorted(submitted) == ["alice"] * 6 + ["carol"]


async def test_unknown_owners_allowed_by_config(tmp_path: Path) -> None:
    sections = '[[members]]\nname = "alice"\n[membership]\nunknown_owners = "allow"\n'
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS, sections=sections)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        (job,) = await farm.submit(print_file(tmp_path / "cube.gcode"), owner="mallory")
        assert job["owner"] == "mallory"


async def test_two_submissions_at_once_cannot_both_fit_in_the_room_left_for_one(tmp_path: Path) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS, sections=MEMBERS)
    cube = print_file(tmp_path / "cube.gcode")  # 1.5 g
    async with running_farm(config, tmp_path / "etc/secrets") as farm:

        async def submit() -> tuple[int, str]:
            data = {"copies": "40", "owner": "alice"}  # 60 g of alice's 100 g
            resp = await farm.api.post(
                "/api/v1/jobs", data=data, files={"file": ("cube.gcode", cube.read_bytes())}
            )
            return resp.status_code, resp.text

        for _ in range(3):  # each round starts with room for one: the first round's job is cancelled
            answers = await asyncio.gather(submit(), submit())
            assert sorted(status for status, _ in answers) == [201, 422], answers
            refused = next(text for status, text in answers if status == 422)
            assert "alice has used 60.00g of a 100g monthly filament quota" in refused, refused
            queued = [j for j in await farm.jobs() if j["owner"] == "alice" and j["state"] == "queued"]
            assert len(queued) == 40
            for job in queued:
                assert (await farm.api.post(f"/api/v1/jobs/{job['id']}/cancel")).status_code == 200
