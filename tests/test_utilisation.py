"""The printers' state timeline recorded from a real virtual printer (and a dead host), its points in a
real InfluxDB 1.6.7, a crashed recorder's gap closed as unknown, and the utilisation report of a
running daemon after a real print."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.accounting.oee import TimelineState, utilisation
from controller.accounting.timeline import TimelineRecorder, append, changes_in
from controller.cli.utilisation import query_params, show
from controller.config import Config, load_config
from controller.core.events import EventFeed
from controller.fleet.coordinator import Fleet
from controller.fleet.drivers import fleet_session
from controller.fleet.state import PrinterState
from controller.store import AsyncStore, Store
from controller.telemetry.spool import Spool
from controller.telemetry.writer import TelemetryWriter
from devices.influx import V1Writer
from devices.octoprint import OctoPrintClient
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, closed_port_printers, config_for, eventually, write_config
from tests.influxql import create_db, influxql
from tests.peers.servers import InfluxPeer
from tests.test_crash import Api, Daemon
from tests.test_octoprint_driver import gcode

Timeline = list[tuple[str, str, datetime, datetime]]  # printer, state, since, seen


def timeline(path: Path, printer: str) -> Timeline:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT printer, state, since, seen FROM printer_timeline WHERE printer = ? ORDER BY id",
            (printer,),
        ).fetchall()
    finally:
        db.close()
    return [(p, s, datetime.fromisoformat(a), datetime.fromisoformat(b)) for p, s, a, b in rows]


def states(rows: Timeline) -> list[str]:
    return [row[1] for row in rows]


@contextlib.asynccontextmanager
async def recording(config: Config, store: AsyncStore, writer: TelemetryWriter | None = None) -> Any:
    """A fleet and its timeline recorder (and the writer) until the block ends, then a clean stop."""
    stop = asyncio.Event()
    async with fleet_session() as session, asyncio.TaskGroup() as tg:
        fleet = Fleet(config.printers, config.controller, session, feed=EventFeed())
        recorder = TimelineRecorder(fleet, store, writer, interval=0.3)
        tg.create_task(recorder.run(stop))
        if writer is not None:
            tg.create_task(writer.run(stop))
        for coordinator in fleet.coordinators.values():
            tg.create_task(coordinator.run(stop))
        try:
            yield fleet
        finally:
            stop.set()


def state(fleet: Fleet, name: str) -> PrinterState:
    coordinator = fleet.get(name)
    assert coordinator is not None
    return coordinator.status.state


async def test_each_state_change_is_a_row_and_a_point_and_downtime_is_unknown(
    octoprint: OctoPrintFactory, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    (peer,) = octoprint(1)
    (dead,) = closed_port_printers(1)
    config = config_for(tmp_path, [PrinterSpec("a", peer.url, peer.api_key, group="mk4"), dead])
    db_path = tmp_path / "farmctl.db"
    store = AsyncStore(Store(db_path))
    writer = TelemetryWriter(
        V1Writer(influxdb.url, "farm"), Spool(tmp_path / "spool", 1 << 20), flush_interval=0.1
    )
    try:
        async with (
            recording(config, store, writer) as fleet,
            OctoPrintClient(peer.url, peer.api_key) as client,
        ):
            await eventually(lambda: state(fleet, "a") is PrinterState.IDLE, 15, "a idle")
            await client.upload(gcode(tmp_path / "part.gcode", 300), "part.gcode")
            await eventually(lambda: state(fleet, "a") is PrinterState.AWAITING_CLEAR, 60, "a printed")
            await asyncio.sleep(0.5)
            coordinator = fleet.get("a")
            assert coordinator is not None
            assert coordinator.clear()
            await client.send_commands(["!!DEBUG:trigger_fatal_error_marlin"])
            await eventually(lambda: state(fleet, "a") is PrinterState.ERROR, 15, "a error")
            # The dead host never changes state (offline from the start): the recorder's own look
            # finds it offline once it has been tried.
            await eventually(lambda: states(timeline(db_path, dead.name))[-1:] == ["offline"], 10, "dead")
            await asyncio.sleep(0.2)
        a = timeline(db_path, "a")
        assert states(a) == ["unknown", "idle", "printing", "awaiting_clear", "idle", "error", "unknown"]
        # (unknown first unless the refused connection came before the recorder's first look)
        assert states(timeline(db_path, dead.name)) in (
            ["unknown", "offline", "unknown"],
            ["offline", "unknown"],
        )
        times = [row[2] for row in a]
        assert times == sorted(times)
        waited = (times[4] - times[3]).total_seconds()
        assert waited >= 0.5  # printed → cleared by us half a second later, at least

        # One point per change, with the state before it and how long that lasted; the stop's last.
        points = await influxql(influxdb, "SELECT * FROM printer_state WHERE printer = 'a' GROUP BY *")
        assert [(p["state"], p["previous"]) for p in points] == [
            ("unknown", "unknown"),
            ("idle", "unknown"),
            ("printing", "idle"),
            ("awaiting_clear", "printing"),
            ("idle", "awaiting_clear"),
            ("error", "idle"),
            ("unknown", "error"),
        ]
        assert {p["group"] for p in points} == {"mk4"}
        assert points[0].get("duration_s") is None
        assert points[4]["duration_s"] == pytest.approx(waited, abs=1e-6)
        assert [p["time"] for p in points] == [int(t.timestamp() * 1e9) for t in times]

        # A recorder that dies (as in a SIGKILL: no stop rows) leaves the last state open; the next
        # start closes it as unknown at the last time that state was confirmed, not at the restart.
        stop = asyncio.Event()
        async with fleet_session() as session:
            fleet = Fleet(config.printers[:1], config.controller, session, feed=EventFeed())
            crashing = TimelineRecorder(fleet, store, interval=0.3)
            tasks = [asyncio.create_task(c.run(stop)) for c in fleet.coordinators.values()]
            run = asyncio.create_task(crashing.run(stop))
            await eventually(lambda: states(timeline(db_path, "a"))[-1] == "error", 15, "error recorded")
            await asyncio.sleep(1.0)  # confirmed a few times
            run.cancel()
            stop.set()
            await asyncio.gather(run, *tasks, return_exceptions=True)
        before = timeline(db_path, "a")
        assert states(before)[-2:] == ["unknown", "error"]
        _, _, error_since, error_seen = before[-1]
        assert error_seen - error_since >= timedelta(seconds=0.5)
        await asyncio.sleep(0.5)
        restarted_at = datetime.now(UTC)
        async with recording(config, store) as fleet:
            await eventually(lambda: len(timeline(db_path, "a")) > len(before) + 1, 15, "restart recorded")
        after = timeline(db_path, "a")
        assert after[len(before)][1:3] == ("unknown", error_seen)
        assert error_seen < restarted_at
    finally:
        store.close()


def _iso(at: datetime) -> str:
    return at.isoformat()


async def test_report_of_a_running_farm_after_a_real_print(
    octoprint: OctoPrintFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (peer,) = octoprint(1)
    sections = "[jobs]\ndispatch_interval = 0.5\n"
    path = write_config(
        tmp_path, [PrinterSpec("p1", peer.url, peer.api_key, group="mk4")], tokens=TOKENS, sections=sections
    )
    config = load_config(path, env={})
    begin = datetime.now(UTC)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.clear_all()
        (job,) = await farm.submit(print_file(tmp_path / "part.gcode", seconds=2))
        job = await farm.wait_job(job["id"], {"completed"})
        async with asyncio.timeout(15):
            while (await farm.printers())["p1"]["state"] != "awaiting_clear":
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the operator takes a second to clear the bed
        assert (await farm.clear("p1")).status_code == 200
        await asyncio.sleep(0.3)
        viewer = farm.as_role("viewer")
        resp = await farm.api.get("/api/v1/reports/utilisation", headers=viewer)
        assert resp.status_code == 200, resp.text
        report = resp.json()
        until = datetime.fromisoformat(report["until"])
        assert until - datetime.fromisoformat(report["since"]) == timedelta(days=7)
        (row,) = report["rows"]
        farm_resp = await farm.api.get(
            "/api/v1/reports/utilisation",
            params=query_params(_iso(begin), _iso(until), "farm"),
            headers=viewer,
        )
        (farm_row,) = farm_resp.json()["rows"]
        group = await farm.api.get("/api/v1/reports/utilisation?group_by=group", headers=viewer)
        assert [r["key"] for r in group.json()["rows"]] == ["mk4"]

        bad: list[tuple[dict[str, str], str]] = [
            ({"since": "yesterday"}, "since"),
            ({"since": _iso(until), "until": _iso(begin)}, "since must be before until"),
            ({"since": _iso(begin), "until": _iso(begin)}, "since must be before until"),
            ({"group_by": "owner"}, "group_by"),
            ({"until": "0001-01-01T00:00:00"}, "out of range"),
            ({"until": "9999-12-31T23:00:00-05:00"}, "out of range"),
            ({"until": "0.5"}, "ISO 8601"),  # not seconds since 1970
        ]
        for query, message in bad:
            answer = await farm.api.get("/api/v1/reports/utilisation", params=query, headers=viewer)
            assert answer.status_code == 422, query
            assert message in answer.json()["error"], query
        anonymous = await farm.api.get("/api/v1/reports/utilisation", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert "error" in anonymous.json()

    rows = timeline(config.controller.state_dir / "farmctl.db", "p1")
    sequence = states(rows)
    # The print and the wait for the bed as the daemon recorded them
    printing = sequence.index("printing")
    assert sequence[printing : printing + 3] == ["printing", "awaiting_clear", "idle"]
    printed_s = (rows[printing + 1][2] - rows[printing][2]).total_seconds()
    waited_s = (rows[printing + 2][2] - rows[printing + 1][2]).total_seconds()
    assert waited_s >= 1.0

    started, finished = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    assert job["estimated_s"] == 1.0
    assert row["key"] == "p1"
    assert row["period_s"] == 7 * 86400
    assert row["jobs_completed"] == 1
    assert row["jobs_failed"] == 0
    assert row["quality"] == 1.0
    assert row["performance"] == pytest.approx(1.0 / (finished - started).total_seconds())
    assert row["printing_h"] * 3600 == pytest.approx(printed_s, abs=1e-3)
    assert row["bed_clear_wait_median_s"] == pytest.approx(waited_s, abs=1e-3)
    assert row["bed_clear_wait_p90_s"] == pytest.approx(waited_s, abs=1e-3)
    # Nothing was offline or in error: every observed moment was available.
    assert row["offline_h"] == 0.0
    assert row["error_h"] == 0.0
    assert row["availability"] == 1.0
    assert row["oee"] == pytest.approx(row["performance"])
    assert row["unknown_h"] > 7 * 24 - 1  # the farm did not exist before this test
    planned_h = 7 * 24 - row["unknown_h"]
    assert row["utilisation"] == pytest.approx(row["printing_h"] / planned_h)

    assert farm_row["key"] == "farm"
    assert farm_row["jobs_completed"] == 1
    assert farm_row["bed_clear_wait_median_s"] == pytest.approx(waited_s, abs=1e-3)

    # What `farmctl report --utilisation` prints of these rows: CSV with every field (null as empty),
    # JSON as the API gave it, and a table for a person.
    show(report["rows"], as_json=False, as_csv=True)
    (line,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert list(line) == list(row)
    assert float(line["bed_clear_wait_median_s"]) == row["bed_clear_wait_median_s"]
    assert line["off_h"] == "0.0"
    show(group.json()["rows"], as_json=True, as_csv=False)
    assert json.loads(capsys.readouterr().out) == group.json()["rows"]
    show([{**row, "availability": None}], as_json=False, as_csv=False)
    table = capsys.readouterr().out
    assert "p1" in table
    assert "100.0%" in table  # quality
    assert f"{row['performance'] * 100:.1f}%" in table


async def test_a_sigkilled_daemons_downtime_is_unknown_not_its_last_state(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    path = write_config(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    config = load_config(path, env={})
    db_path = config.controller.state_dir / "farmctl.db"
    viewer = (tmp_path / "etc/secrets/viewer.token").read_text().strip()
    api = Api(f"http://{config.api.listen}", viewer)
    log = tmp_path / "daemon.log"
    daemon = Daemon(path, log)
    try:
        api.wait_up()
        await eventually(lambda: states(timeline(db_path, "p1"))[-1:] == ["awaiting_clear"], 20, "p1 up")
        daemon.kill()
        killed_at = datetime.now(UTC)
        crashed = timeline(db_path, "p1")
        assert crashed[-1][1] == "awaiting_clear"  # no stop rows: it died
        await asyncio.sleep(2.0)
        daemon = Daemon(path, log)
        api.wait_up()
        await eventually(lambda: len(timeline(db_path, "p1")) >= len(crashed) + 2, 20, "restart recorded")
        restarted = timeline(db_path, "p1")
        gap = restarted[len(crashed)]
        assert gap[1] == "unknown"
        assert gap[2] == crashed[-1][3] <= killed_at  # from the last confirmed moment on
        back = restarted[len(crashed) + 1]
        assert back[1] == "awaiting_clear"
        assert (back[2] - gap[2]).total_seconds() >= 2.0
        answer = api.client.get("/api/v1/reports/utilisation", params={"since": _iso(crashed[0][2])})
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["rows"]
        # The two seconds and more of downtime are unknown, not time spent awaiting a clear.
        alive_s = (killed_at - crashed[0][2]).total_seconds() + (datetime.now(UTC) - back[2]).total_seconds()
        assert row["awaiting_clear_h"] * 3600 <= alive_s
        assert row["unknown_h"] * 3600 >= (back[2] - gap[2]).total_seconds() - 1e-3
    finally:
        daemon.stop()
        api.client.close()


def test_a_periods_rows_start_with_each_printers_state_at_its_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "farmctl.db")
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)

    def fill(db: sqlite3.Connection) -> None:
        for printer, state, minutes in [
            ("a", TimelineState.IDLE, 0),
            ("b", TimelineState.OFFLINE, 5),
            ("a", TimelineState.PRINTING, 10),
            ("a", TimelineState.AWAITING_CLEAR, 70),  # the period starts at 60: a prints then
            ("b", TimelineState.IDLE, 90),
            ("a", TimelineState.IDLE, 120),  # the period ends at 120: not in it
        ]:
            append(db, printer, state, t0 + timedelta(minutes=minutes))

    store.transact(fill)
    since, until = t0 + timedelta(minutes=60), t0 + timedelta(minutes=120)
    changes = store.read(lambda db: changes_in(db, since, until))
    store.close()
    assert [(c.printer, c.state, (c.since - t0).total_seconds() / 60) for c in changes] == [
        ("a", "printing", 10),
        ("a", "awaiting_clear", 70),
        ("b", "offline", 5),
        ("b", "idle", 90),
    ]
    a, b = utilisation(changes, [], since, until)
    assert a.hours[TimelineState.PRINTING] == pytest.approx(10 / 60)
    assert a.hours[TimelineState.AWAITING_CLEAR] == pytest.approx(50 / 60)
    assert b.availability == pytest.approx(30 / 60)
