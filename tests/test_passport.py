"""Print passports: one canonical record per finished print, chained by hash; a changed record is found
by the store's verify() and by `farmctl passport verify` against the daemon's ledger."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.accounting import passport
from controller.store import Store
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, closed_port_printers, config_for
from tests.jobrows import add_account, add_events, add_job
from tests.test_cli_queue import farmctl

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def finished_jobs(store: Store, count: int) -> list[int]:
    """`count` completed jobs with measured figures; job i used 0.5 + i kWh."""
    ids = []
    for i in range(count):
        job = add_job(
            store,
            owner="alice",
            state="completed",
            started=datetime(2026, 11, 20, 8, i, tzinfo=UTC),
            finished=datetime(2026, 11, 20, 10, i, tzinfo=UTC),
            file_name=f"part-{i}.gcode",
            filament_g=12.5,
        )
        add_account(
            store,
            job,
            energy_kwh=0.5 + i,
            filament_measured_g=12.0,
            filament_est_g=12.5,
            co2_g=200.0,
            cost=1.25,
        )
        ids.append(job)
    return ids


def append(store: Store, job_id: int, **extra: str) -> None:
    store.transact(lambda db: passport.append(db, job_id, AT, **extra))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "farmctl.db")


def test_each_finished_print_gets_one_record_chained_to_the_one_before(store: Store) -> None:
    jobs = finished_jobs(store, 3)
    for job in jobs:
        append(store, job, group="prusa", currency="EUR")
    append(store, jobs[0], group="prusa")  # again (e.g. after a restart): nothing new
    ledger = store.read(lambda db: list(passport.entries(db)))
    assert [(e.seq, e.job_id) for e in ledger] == [(1, jobs[0]), (2, jobs[1]), (3, jobs[2])]
    assert ledger[0].prev_hash == passport.GENESIS
    for before, entry in itertools.pairwise(ledger):
        assert entry.prev_hash == before.hash
    for entry in ledger:
        assert entry.hash == hashlib.sha256(entry.text.encode()).hexdigest()
        assert entry.text == json.dumps(entry.record, sort_keys=True, separators=(",", ":"))
    record = ledger[1].record
    assert record["file"] == {
        "name": "part-1.gcode",
        "sha256": hashlib.sha256(b"part-1.gcode").hexdigest(),
        "size": 1234,
    }
    assert (record["printer"], record["group"], record["owner"], record["outcome"]) == (
        "mk4-1",
        "prusa",
        "alice",
        "completed",
    )
    assert (record["material"], record["nozzle"]) == ("PLA", 0.4)
    assert (record["filament_measured_g"], record["filament_estimated_g"]) == (12.0, 12.5)
    assert (record["energy_kwh"], record["co2_g"], record["cost"], record["currency"]) == (
        1.5,
        200.0,
        1.25,
        "EUR",
    )
    assert record["finished_at"] == "2026-11-20T10:01:00+00:00"
    assert (record["seq"], record["prev_hash"]) == (2, ledger[0].hash)
    assert store.read(passport.verify) == []


def test_a_retried_job_gets_a_record_per_finished_attempt_and_an_unfinished_one_none(store: Store) -> None:
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    job = add_job(store, owner="alice", state="failed", started=start, finished=start + timedelta(hours=1))
    # The retry policy puts it back in the queue before the accountant settles the failed print.
    add_events(store, job, ("queued", start + timedelta(hours=1), None))
    store.transact(lambda db: db.execute("UPDATE jobs SET state = 'queued' WHERE id = ?", (job,)))
    append(store, job)
    first = store.read(lambda db: passport.of_job(db, job))
    assert first is not None
    assert (first.record["outcome"], first.record["attempt"]) == ("failed", 1)
    assert (first.record["started_at"], first.record["finished_at"]) == (
        "2026-11-20T08:00:00+00:00",
        "2026-11-20T09:00:00+00:00",
    )
    # Its second attempt, on another printer, completes.
    again = start + timedelta(hours=2)
    add_events(
        store,
        job,
        ("dispatching", again, "ender-2"),
        ("printing", again + timedelta(minutes=1), "ender-2"),
        ("paused", again + timedelta(minutes=5), "ender-2"),
        ("printing", again + timedelta(minutes=9), "ender-2"),
        ("completed", again + timedelta(hours=1), "ender-2"),
    )
    append(store, job)
    append(store, job)  # again (e.g. after a restart): nothing new
    latest = store.read(lambda db: passport.of_job(db, job))
    assert latest is not None
    assert (latest.seq, latest.record["attempt"], latest.record["outcome"]) == (2, 2, "completed")
    assert (latest.record["printer"], latest.record["started_at"]) == ("ender-2", "2026-11-20T10:01:00+00:00")
    running = add_job(store, owner="bob", state="printing", started=start, finished=None)
    with pytest.raises(ValueError, match="has not finished a print"):
        append(store, running)
    assert store.read(lambda db: passport.of_job(db, running)) is None
    assert store.read(passport.verify) == []


def test_changing_one_stored_record_fails_verification_at_that_record(store: Store) -> None:
    for job in finished_jobs(store, 4):
        append(store, job)
    assert store.read(passport.verify) == []

    def tamper(db_sql: str, *args: object) -> None:
        store.transact(lambda db: db.execute(db_sql, args))

    # Someone lowers job 2's energy in its record.
    original = store.read(
        lambda db: db.execute("SELECT record, hash FROM passports WHERE seq = 2").fetchone()
    )
    changed = original["record"].replace('"energy_kwh":1.5', '"energy_kwh":0.5')
    assert changed != original["record"]
    tamper("UPDATE passports SET record = ? WHERE seq = 2", changed)
    assert store.read(passport.verify) == [
        "seq 2: the record does not match its hash (changed after it was written)"
    ]
    # ... and rewrites its hash too: the next record's link no longer holds.
    tamper("UPDATE passports SET hash = ? WHERE seq = 2", passport.digest(changed))
    assert store.read(passport.verify) == [
        "seq 3: its prev_hash is not the hash of seq 2 (seq 2 was rewritten)"
    ]
    # Put back; then remove a record.
    tamper("UPDATE passports SET record = ?, hash = ? WHERE seq = 2", original["record"], original["hash"])
    assert store.read(passport.verify) == []
    tamper("DELETE FROM passports WHERE seq = 3")
    assert store.read(passport.verify) == ["seq 3: missing (the next record is seq 4)"]


async def test_passport_api_and_farmctl_passport_verify(tmp_path: Path) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    path = str(tmp_path / "etc/farmctl.toml")
    # Seeded before the daemon starts: beside a running daemon, the accountant would account these
    # finished jobs anew and append passports of its own.
    config.controller.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.controller.state_dir / "farmctl.db")
    try:
        jobs = finished_jobs(store, 5)
        for job in jobs:
            append(store, job, group="default")
        queued = add_job(store, owner="bob", state="queued", printer=None, finished=None)
    finally:
        store.close()
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        viewer = farm.as_role("viewer")
        resp = await farm.api.get(f"/api/v1/jobs/{jobs[2]}/passport", headers=viewer)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["seq"], body["job_id"], body["record"]["energy_kwh"]) == (3, jobs[2], 2.5)
        assert body["hash"] == passport.digest(passport.canonical(body["record"]))
        resp = await farm.api.get(f"/api/v1/jobs/{queued}/passport", headers=viewer)
        assert resp.status_code == 404
        assert "has not finished" in resp.json()["error"]
        assert (await farm.api.get("/api/v1/jobs/99999/passport", headers=viewer)).status_code == 404
        assert (await farm.api.get("/api/v1/jobs/0/passport", headers=viewer)).status_code == 422
        page = (await farm.api.get("/api/v1/passports", params={"limit": 2}, headers=viewer)).json()
        assert [p["seq"] for p in page["passports"]] == [1, 2]
        assert page["next_after"] == 2
        page = (
            await farm.api.get("/api/v1/passports", params={"after": 4, "limit": 2}, headers=viewer)
        ).json()
        assert ([p["seq"] for p in page["passports"]], page["next_after"]) == ([5], None)
        resp = await farm.api.get("/api/v1/passports", params={"limit": 100_000}, headers=viewer)
        assert resp.status_code == 422

        run = await farmctl("passport", "verify", "--config", path)
        assert run.code == 0, run.err
        assert run.out.startswith("OK: 5 passports")
        head = (await farm.api.get("/api/v1/passports", params={"after": 4}, headers=viewer)).json()
        assert head["passports"][0]["hash"] in run.out
        run = await farmctl("passport", "show", str(jobs[0]), "--config", path)
        assert json.loads(run.out)["record"]["file"]["name"] == "part-0.gcode"

        store = farm.store()
        try:
            sql = "UPDATE passports SET record = replace(record, ?, ?) WHERE seq = 4"
            store.transact(lambda db: db.execute(sql, ('"cost":1.25', '"cost":0.25')))
        finally:
            store.close()
        run = await farmctl("passport", "verify", "--config", path)
        assert run.code == 1
        assert "broken at seq 4: the record does not match its hash" in run.err
        assert "the 3 records before it are sound" in run.err


async def test_a_real_print_gets_its_passport_with_the_gcodes_sha256(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    specs = [PrinterSpec("p1", peer.url, peer.api_key, group="prusa")]
    config = config_for(tmp_path, specs, tokens=TOKENS, sections="[accounting]\nsettle_s = 1")
    part = print_file(tmp_path / "bracket.gcode")
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.clear_all()
        (job,) = await farm.submit(part, owner="alice")
        await farm.wait_job(job["id"], {"completed"}, 60)
        async with asyncio.timeout(30):
            while (resp := await farm.api.get(f"/api/v1/jobs/{job['id']}/passport")).status_code == 404:
                await asyncio.sleep(0.2)
        assert resp.status_code == 200, resp.text
        record = resp.json()["record"]
        assert record["file"] == {
            "name": "bracket.gcode",
            "sha256": hashlib.sha256(part.read_bytes()).hexdigest(),
            "size": part.stat().st_size,
        }
        assert (record["printer"], record["group"], record["owner"], record["outcome"]) == (
            "p1",
            "prusa",
            "alice",
            "completed",
        )
        assert record["filament_estimated_g"] == 1.5
        run = await farmctl("passport", "verify", "--config", str(tmp_path / "etc/farmctl.toml"))
        assert run.code == 0, run.err
        assert run.out.startswith("OK: 1 passports")
