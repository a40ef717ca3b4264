"""Tokens and members an admin manages at run time, against the real daemon: a new token works with its
role at once and is refused at once when revoked (its web session too); only its hash is stored and its
secret is never logged; viewers and operators are refused every admin route; farmctl.toml's tokens and
members are read-only (409); a run-time member's quota is checked at submit and their password signs
them in on the page; everything survives a restart; `farmctl admin` does the same through the API."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.accounting.roster import password_matches
from controller.config import Config, load_config
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import closed_port_printers, config_for, write_config

ALICE = '[[members]]\nname = "alice"\nquota_g = 100.0\n'
PASSWORD = "a long workshop passphrase"


def _config(tmp_path: Path, sections: str = ALICE) -> Config:
    return config_for(tmp_path, closed_port_printers(1), tokens=TOKENS, sections=sections)


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, f"no {name} field in the page"
    return found[1]


async def _sign_in(browser: httpx.AsyncClient, secret: str, member: str | None = None) -> httpx.Response:
    form = await browser.get("/")
    fields = {"csrf": _field(form.text, "csrf"), "secret": secret} | ({"member": member} if member else {})
    return await browser.post("/login", data=fields)


async def _admin(farm: Farm, method: str, path: str, json: Any = None) -> httpx.Response:
    return await farm.api.request(method, f"/api/v1/admin{path}", json=json, headers=farm.as_role("admin"))


async def test_a_new_token_works_with_its_role_and_a_revoked_one_is_refused_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = _config(tmp_path)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser,
    ):
        made = await _admin(farm, "POST", "/tokens", {"name": "frontdesk", "role": "operator"})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert len(secret) >= 43
        assert made.json()["created_by"] == "admin"
        bearer = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=farm.api.base_url, headers=bearer, timeout=30) as new:
            assert (await new.get("/api/v1/printers")).status_code == 200
            # An operator's change goes through, under the token's name; an admin's does not.
            spell = await new.post("/api/v1/printers/dead-0/maintenance", json={"reason": "belt"})
            assert spell.status_code == 200, spell.text
            assert spell.json()["maintenance"]["by"] == "frontdesk"
            refused = await new.get("/api/v1/admin/tokens")
            assert refused.status_code == 403
            assert "needs admin" in refused.json()["error"]
            # Signed in on the page with it, too.
            assert (await _sign_in(browser, secret)).status_code == 303
            assert "frontdesk <small>(operator)</small>" in (await browser.get("/")).text

            listed = (await _admin(farm, "GET", "/tokens")).json()["tokens"]
            assert [(t["name"], t["source"]) for t in listed] == [
                ("admin", "config"), ("ops", "config"), ("viewer", "config"), ("frontdesk", "store")
            ]  # fmt: skip
            assert all("secret" not in t for t in listed)

            revoked = await _admin(farm, "DELETE", "/tokens/frontdesk")
            assert revoked.status_code == 200, revoked.text
            answer = await new.get("/api/v1/printers")  # the very next request
            assert answer.status_code == 401
            assert answer.json() == {"error": "invalid token"}
            assert (await browser.get("/api/v1/printers")).status_code == 401  # its session ended
            assert 'action="/login"' in (await browser.get("/")).text
            assert (await _admin(farm, "DELETE", "/tokens/frontdesk")).status_code == 404
            # The name is free again, with a new secret.
            again = await _admin(farm, "POST", "/tokens", {"name": "frontdesk", "role": "viewer"})
            assert again.status_code == 201
            assert again.json()["secret"] != secret

    db = config.controller.state_dir / "farmctl.db"
    # Only the hash is stored: not in any row, not anywhere in the database's files.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name, secret_sha256, revoked_by FROM api_tokens ORDER BY id").fetchall()
    assert rows[0] == ("frontdesk", hashlib.sha256(secret.encode()).hexdigest(), "admin")
    for path in db.parent.glob("farmctl.db*"):
        assert secret.encode() not in path.read_bytes(), path
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in log
    assert again.json()["secret"] not in log
    audit = [r.getMessage() for r in caplog.records if r.getMessage().startswith("admin: token=frontdesk")]
    assert audit == [
        "admin: token=frontdesk role=operator added by=admin",
        "admin: token=frontdesk revoked by=admin",
        "admin: token=frontdesk role=viewer added by=admin",
    ]


async def test_viewers_and_operators_are_refused_every_admin_route(tmp_path: Path) -> None:
    async with running_farm(_config(tmp_path), tmp_path / "etc/secrets") as farm:
        routes = [
            (method, path)
            for path, item in (await farm.api.get("/openapi.json")).json()["paths"].items()
            if path.startswith("/api/v1/admin")
            for method in item
        ]
        assert len(routes) == 7, routes
        for method, path in routes:
            url = path.replace("{name}", "alice")
            for role in ("viewer", "ops"):
                answer = await farm.api.request(
                    method.upper(), url, json={"name": "x", "role": "admin"}, headers=farm.as_role(role)
                )
                assert answer.status_code == 403, (method, url, role, answer.text)
                assert "needs admin" in answer.json()["error"]
            anonymous = await farm.api.request(method.upper(), url, headers={"Authorization": ""})
            assert anonymous.status_code == 401
        assert [t["source"] for t in (await _admin(farm, "GET", "/tokens")).json()["tokens"]] == [
            "config"
        ] * 3


async def test_tokens_and_members_of_the_config_are_read_only(tmp_path: Path) -> None:
    async with running_farm(_config(tmp_path), tmp_path / "etc/secrets") as farm:
        for method, path, body in [
            ("POST", "/tokens", {"name": "ops", "role": "admin"}),
            ("DELETE", "/tokens/ops", None),
            ("POST", "/members", {"name": "alice"}),
            ("PATCH", "/members/alice", {"quota_g": 5}),
            ("DELETE", "/members/alice", None),
        ]:
            answer = await _admin(farm, method, path, body)
            assert answer.status_code == 409, (method, path, answer.text)
            assert "farmctl.toml" in answer.json()["error"]
            assert "edit the file" in answer.json()["error"]
        members = (await _admin(farm, "GET", "/members")).json()["members"]
        assert members == [
            {"name": "alice", "quota_g": 100.0, "quota_cost": None, "password": False, "source": "config",
             "created_at": None, "created_by": None, "updated_at": None, "updated_by": None}
        ]  # fmt: skip
        # A run-time name taken twice, an unknown one, bad input: the API's usual answers.
        assert (await _admin(farm, "POST", "/members", {"name": "dana"})).status_code == 201
        assert (await _admin(farm, "POST", "/members", {"name": "dana"})).status_code == 409
        assert (await _admin(farm, "PATCH", "/members/erin", {"quota_g": 5})).status_code == 404
        for bad in ({"name": "a/b"}, {"name": "x", "quota_g": 0}, {"name": "x", "password": "short"}):
            assert (await _admin(farm, "POST", "/members", bad)).status_code == 422, bad
        assert (await _admin(farm, "PATCH", "/members/dana", {})).status_code == 422
        assert (await _admin(farm, "POST", "/tokens", {"name": "t", "role": "root"})).status_code == 422


async def test_a_run_time_member_has_a_quota_at_submit_and_signs_in_with_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = _config(tmp_path)
    cube = print_file(tmp_path / "cube.gcode")  # 1.5 g

    async def submit(farm: Farm, owner: str, copies: int = 1) -> httpx.Response:
        with cube.open("rb") as f:
            return await farm.api.post(
                "/api/v1/jobs",
                data={"owner": owner, "copies": str(copies)},
                files={"file": ("cube.gcode", f)},
            )

    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        refused = await submit(farm, "dana")
        assert refused.status_code == 422  # not a member yet ([[members]] lists alice)
        assert "farmctl admin members add" in refused.json()["error"]
        body = {"name": "dana", "quota_g": 4.0, "password": PASSWORD}
        added = await _admin(farm, "POST", "/members", body)
        assert added.status_code == 201, added.text
        assert added.json()["password"] is True
        assert (await submit(farm, "dana", copies=2)).status_code == 201  # 3 g of 4
        over = await submit(farm, "dana")
        assert over.status_code == 422
        assert "dana has used 3.00g of a 4g monthly filament quota" in over.json()["error"]

        async with httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser:
            assert (await _sign_in(browser, "wrong password", member="dana")).status_code == 401
            assert (await _sign_in(browser, PASSWORD, member="dana")).status_code == 303
            page = (await browser.get("/")).text
            assert "dana <small>(operator)</small>" in page
            assert 'id="admin-link"' not in page
            raised = await _admin(farm, "PATCH", "/members/dana", {"quota_g": 10})
            assert raised.json()["quota_g"] == 10.0
            assert raised.json()["password"] is True  # left as it was
            assert (await submit(farm, "dana")).status_code == 201
            cleared = await _admin(farm, "PATCH", "/members/dana", {"password": None})
            assert cleared.json()["password"] is False
            assert 'action="/login"' in (await browser.get("/")).text  # signed out with it
            assert (await _sign_in(browser, PASSWORD, member="dana")).status_code == 401
        await _admin(farm, "PATCH", "/members/dana", {"password": PASSWORD + "!"})

    # Kept across a restart: the member with quota and password. The restart also takes every "other"
    # bit off the database that holds the hashes (`farmctl run` creates it so; tests/test_file_modes.py).
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        db = config.controller.state_dir / "farmctl.db"
        assert stat.S_IMODE(db.stat().st_mode) & 0o007 == 0, oct(db.stat().st_mode)
        (dana,) = [
            m for m in (await _admin(farm, "GET", "/members")).json()["members"] if m["name"] == "dana"
        ]
        assert (dana["quota_g"], dana["password"], dana["updated_by"]) == (10.0, True, "admin")
        async with httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser:
            assert (await _sign_in(browser, PASSWORD + "!", member="dana")).status_code == 303
        removed = await _admin(farm, "DELETE", "/members/dana")
        assert removed.status_code == 200
        owners = [j["owner"] for j in await farm.jobs()]
        assert owners == ["dana"] * 3  # their jobs keep the owner name
        assert (await submit(farm, "dana")).status_code == 422  # no longer a member

    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM members").fetchone() == (0,)
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in log
    assert "admin: member=dana added quota_g=4.0 quota_cost=None password=set by=admin" in log
    assert "admin: member=dana changed password=cleared by=admin" in log


def test_a_stored_password_is_a_salted_scrypt_hash() -> None:
    from controller.accounting.roster import hash_password

    one, two = hash_password(PASSWORD), hash_password(PASSWORD)
    assert one != two  # a salt each
    assert one.startswith("scrypt$16384$8$1$")
    assert PASSWORD not in one
    assert password_matches(one, PASSWORD)
    assert not password_matches(one, PASSWORD + " ")
    assert not password_matches(None, PASSWORD)
    assert not password_matches("scrypt$damaged", PASSWORD)


async def _farmctl(*args: str, stdin: str = "") -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARMCTL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_farmctl_admin_manages_tokens_and_members_through_the_api(tmp_path: Path) -> None:
    path = write_config(tmp_path, closed_port_printers(1), tokens=TOKENS, sections=ALICE)
    config = load_config(path, env={})
    admin = ("--config", str(path), "--token-file", str(tmp_path / "etc/secrets/admin.token"))
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        code, secret, err = await _farmctl("admin", "tokens", "add", "kiosk", "--role", "viewer", *admin)
        assert code == 0, err
        secret = secret.strip()
        assert "shown this once" in err
        viewer = {"Authorization": f"Bearer {secret}"}
        assert (await farm.api.get("/api/v1/printers", headers=viewer)).status_code == 200
        code, out, _ = await _farmctl("admin", "tokens", *admin)
        assert "kiosk\tviewer\tadded by admin" in out.splitlines()
        assert "ops\toperator\tfarmctl.toml" in out.splitlines()
        assert secret not in out
        code, out, err = await _farmctl("admin", "tokens", "revoke", "kiosk", *admin)
        assert (code, out) == (0, "token kiosk revoked\n"), err
        assert (await farm.api.get("/api/v1/printers", headers=viewer)).status_code == 401

        code, out, err = await _farmctl(
            "admin", "members", "add", "dana", "--quota-g", "500", "--password-stdin", *admin, stdin=PASSWORD
        )
        assert code == 0, err
        assert out == "dana\t500 g\t-\tpassword\tadded by admin\n"
        code, out, _ = await _farmctl(
            "admin", "members", "set", "dana", "--no-quota-g", "--quota-cost", "9", *admin
        )
        assert out == "dana\t-\t9\tpassword\tadded by admin\n"
        code, out, err = await _farmctl("admin", "members", "set", "alice", "--quota-g", "1", *admin)
        assert code == 1
        assert "edit the file" in err
        code, out, err = await _farmctl("admin", "members", "set", "dana", *admin)
        assert code == 64
        # The default token of the config is the viewer's: refused, exit 77.
        code, out, err = await _farmctl("admin", "members", "--config", str(path))
        assert code == 77
        assert "needs admin" in err
        code, out, _ = await _farmctl("admin", "members", "remove", "dana", *admin)
        assert out == "member dana removed\n"
        code, out, _ = await _farmctl("admin", "members", "list", *admin)
        assert out == "alice\t100 g\t-\tno password\tfarmctl.toml\n"


async def test_the_admin_view_is_for_admins_and_its_forms_need_the_csrf_token(tmp_path: Path) -> None:
    async with (
        running_farm(_config(tmp_path), tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as admin,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as operator,
    ):
        assert (await admin.get("/admin")).status_code == 303  # signed out: to the sign-in form
        await _sign_in(admin, farm.tokens["admin"])
        await _sign_in(operator, farm.tokens["ops"])
        index = (await admin.get("/")).text
        assert '<a href="/admin" id="admin-link">Admin</a>' in index
        assert 'id="admin-link"' not in (await operator.get("/")).text
        page = await admin.get("/admin")
        assert page.status_code == 200
        csrf = _field(page.text, "csrf")
        # An operator's session, even with its own CSRF token, is refused the view and every form.
        op_csrf = _field((await operator.get("/")).text, "csrf")
        assert (await operator.get("/admin")).status_code == 403
        form = {"csrf": op_csrf, "name": "sneaky", "role": "admin"}
        assert (await operator.post("/admin/tokens", data=form)).status_code == 403
        # Another site's form (no or a wrong CSRF value) changes nothing.
        for value in ("", "forged"):
            refused = await admin.post("/admin/tokens", data={"csrf": value, "name": "x", "role": "admin"})
            assert refused.status_code == 403
        bad = await admin.post("/admin/members", data={"csrf": csrf, "name": "x", "quota_g": "-1"})
        assert bad.status_code == 422
        assert "quota_g" in bad.text
        clash = await admin.post("/admin/members", data={"csrf": csrf, "name": "alice"})
        assert clash.status_code == 409
        assert "edit the file" in clash.text
        assert [t["name"] for t in (await _admin(farm, "GET", "/tokens")).json()["tokens"]] == [
            "admin", "ops", "viewer"
        ]  # fmt: skip
        made = await admin.post("/admin/tokens", data={"csrf": csrf, "name": "kiosk", "role": "viewer"})
        assert made.status_code == 200
        secret = _secret(made.text)
        assert (
            await farm.api.get("/api/v1/printers", headers={"Authorization": f"Bearer {secret}"})
        ).status_code == 200
        assert secret not in (await admin.get("/admin")).text  # shown once


def _secret(page: str) -> str:
    found = re.search(r'<code id="secret-value">([^<]+)</code>', page)
    assert found, "no secret on the page"
    return found[1]


async def test_a_name_farmctl_toml_gains_later_is_the_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_farm(_config(tmp_path), tmp_path / "etc/secrets") as farm:
        made = await _admin(farm, "POST", "/tokens", {"name": "frontdesk", "role": "admin"})
        old_secret = made.json()["secret"]
        assert (await _admin(farm, "POST", "/members", {"name": "dana", "quota_g": 1.0})).status_code == 201
    # The file now names both, as something else: after the restart the file's are the only ones.
    tokens = {**TOKENS, "frontdesk": "viewer"}
    config = config_for(
        tmp_path, closed_port_printers(1), tokens=tokens, sections=ALICE + '[[members]]\nname = "dana"\n'
    )
    caplog.set_level(logging.WARNING)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        listed = (await _admin(farm, "GET", "/tokens")).json()["tokens"]
        assert [(t["name"], t["role"], t["source"]) for t in listed if t["name"] == "frontdesk"] == [
            ("frontdesk", "viewer", "config")
        ]
        old = {"Authorization": f"Bearer {old_secret}"}
        assert (await farm.api.get("/api/v1/printers", headers=old)).status_code == 401
        members = (await _admin(farm, "GET", "/members")).json()["members"]
        assert [(m["name"], m["quota_g"], m["source"]) for m in members] == [
            ("alice", 100.0, "config"), ("dana", None, "config")
        ]  # fmt: skip
        (job,) = await farm.submit(print_file(tmp_path / "cube.gcode"), owner="dana")  # no quota: the file's
        assert job["owner"] == "dana"
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("admin:")]
    assert warnings == [
        "admin: token=frontdesk is in farmctl.toml now: the one added at run time is unused",
        "admin: member=dana is in farmctl.toml now: the one added at run time is unused",
    ]
