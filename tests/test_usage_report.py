"""The usage report for billing: sums per owner, printer, material, day and month over finished jobs,
the period's bounds in the farm's zone, the API's answers and `farmctl report` (CSV) against a daemon."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.accounting.usage import BadPeriod, GroupBy, month_of, period, total, usage
from controller.store import Store
from tests.farm import TOKENS, running_farm
from tests.helpers import closed_port_printers, config_for
from tests.jobrows import add_account, add_job
from tests.test_cli_queue import farmctl

BERLIN = ZoneInfo("Europe/Berlin")
NOVEMBER = (datetime(2026, 11, 1, tzinfo=BERLIN), datetime(2026, 12, 1, tzinfo=BERLIN))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def seed(store: Store) -> None:
    """Two owners' jobs around November 2026 (Berlin, UTC+1), with the figures the sums below use."""
    # alice: completed, weighed 40 g (estimate 42), 2 h
    j = add_job(
        store,
        owner="alice",
        state="completed",
        started=utc("2026-11-03T08:00"),
        finished=utc("2026-11-03T10:00"),
    )
    add_account(
        store, j, filament_measured_g=40.0, filament_est_g=42.0, energy_kwh=0.5, cost=3.0, co2_g=200.0
    )
    # alice: failed at 25 %: 20 g wasted (the accountant's figure), 0.5 h, on PETG
    j = add_job(
        store,
        owner="alice",
        state="failed",
        material="PETG",
        started=utc("2026-11-03T12:00"),
        finished=utc("2026-11-03T12:30"),
        progress=25.0,
    )
    add_account(
        store, j, filament_est_g=80.0, waste_g=20.0, waste_kwh=0.1, energy_kwh=0.1, cost=1.0, co2_g=40.0
    )
    # alice: finished 00:30 on 1 November in Berlin (still 31 October in UTC); estimate only
    j = add_job(
        store,
        owner="alice",
        state="completed",
        started=utc("2026-10-31T22:30"),
        finished=utc("2026-10-31T23:30"),
    )
    add_account(store, j, filament_est_g=10.0, energy_kwh=0.05, cost=0.4, co2_g=20.0)
    # alice: completed on its second attempt; the first wasted 3 g and 0.05 kWh (summed in its account)
    j = add_job(
        store,
        owner="alice",
        state="completed",
        printer="ender-2",
        started=utc("2026-11-15T10:00"),
        finished=utc("2026-11-15T13:00"),
        attempts=2,
    )
    add_account(
        store,
        j,
        filament_measured_g=12.0,
        filament_est_g=11.0,
        waste_g=3.0,
        waste_kwh=0.05,
        energy_kwh=0.3,
        cost=2.0,
        co2_g=100.0,
    )
    # bob: completed, not accounted (no plug, no scale): the slicer's 15 g; 11 November in Berlin
    add_job(
        store,
        owner="bob",
        state="completed",
        printer="ender-2",
        started=utc("2026-11-10T22:30"),
        finished=utc("2026-11-10T23:30"),
        filament_g=15.0,
    )
    # bob: cancelled on the printer, 5 g weighed
    j = add_job(
        store,
        owner="bob",
        state="cancelled",
        printer="ender-2",
        started=utc("2026-11-20T09:00"),
        finished=utc("2026-11-20T10:00"),
    )
    add_account(
        store,
        j,
        filament_measured_g=5.0,
        filament_est_g=30.0,
        waste_g=5.0,
        waste_kwh=0.2,
        energy_kwh=0.2,
        cost=0.5,
        co2_g=80.0,
    )
    # Not counted: cancelled while queued (never on a printer), finished in December in Berlin, running.
    add_job(
        store,
        owner="carol",
        state="cancelled",
        printer=None,
        finished=utc("2026-11-05T10:00"),
        filament_g=99.0,
    )
    j = add_job(
        store,
        owner="bob",
        state="completed",
        started=utc("2026-11-30T22:00"),
        finished=utc("2026-11-30T23:30"),
    )
    add_account(store, j, filament_est_g=500.0, energy_kwh=9.0, cost=50.0, co2_g=900.0)
    add_job(
        store, owner="alice", state="printing", started=utc("2026-11-20T09:00"), finished=None, filament_g=7.0
    )


Rows = list[tuple[object, ...]]
# Hand-computed: key, jobs, hours, grams, kWh, cost, CO2 g, waste g, waste kWh.
BY_OWNER: Rows = [
    ("alice", 4, 6.5, 40 + 20 + 10 + (12 + 3), 0.95, 6.4, 360.0, 23.0, 0.15),
    ("bob", 2, 2.0, 15 + 5, 0.2, 0.5, 80.0, 5.0, 0.2),
]
BY_PRINTER: Rows = [
    ("ender-2", 3, 5.0, 15 + 5 + 15, 0.5, 2.5, 180.0, 8.0, 0.25),
    ("mk4-1", 3, 3.5, 40 + 20 + 10, 0.65, 4.4, 260.0, 20.0, 0.1),
]
BY_MATERIAL: Rows = [
    ("PETG", 1, 0.5, 20.0, 0.1, 1.0, 40.0, 20.0, 0.1),
    ("PLA", 5, 8.0, 40 + 10 + 15 + 15 + 5, 1.05, 5.9, 400.0, 8.0, 0.25),
]
BY_DAY: Rows = [
    ("2026-11-01", 1, 1.0, 10.0, 0.05, 0.4, 20.0, 0.0, 0.0),
    ("2026-11-03", 2, 2.5, 60.0, 0.6, 4.0, 240.0, 20.0, 0.1),
    ("2026-11-11", 1, 1.0, 15.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    ("2026-11-15", 1, 3.0, 15.0, 0.3, 2.0, 100.0, 3.0, 0.05),
    ("2026-11-20", 1, 1.0, 5.0, 0.2, 0.5, 80.0, 5.0, 0.2),
]
BY_MONTH: Rows = [("2026-11", 6, 8.5, 105.0, 1.15, 6.9, 440.0, 28.0, 0.35)]


def approx_rows(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The rows with every float compared approximately (sums of floats)."""
    return [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in rows]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "farmctl.db")
    seed(store)
    return store


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (GroupBy.OWNER, BY_OWNER),
        (GroupBy.PRINTER, BY_PRINTER),
        (GroupBy.MATERIAL, BY_MATERIAL),
        (GroupBy.DAY, BY_DAY),
        (GroupBy.MONTH, BY_MONTH),
    ],
)
def test_usage_of_two_owners_summed_by_each_key(
    store: Store, group_by: GroupBy, expected: list[tuple[object, ...]]
) -> None:
    rows = store.read(lambda db: usage(db, group_by, *NOVEMBER, BERLIN))
    assert [astuple(r) for r in rows] == approx_rows(expected)
    assert astuple(total(rows)) == approx_rows([("total", *BY_MONTH[0][1:])])[0]


def test_since_is_inclusive_until_exclusive_and_days_are_the_farm_zones(store: Store) -> None:
    def owners(since: str, until: str, tz: ZoneInfo = BERLIN) -> dict[str, int]:
        rows = store.read(lambda db: usage(db, GroupBy.OWNER, utc(since), utc(until), tz))
        return {r.key: r.jobs for r in rows}

    # Both November 3 jobs: one finished exactly at since (in), one exactly at until (out).
    assert owners("2026-11-03T10:00", "2026-11-03T12:30") == {"alice": 1}
    assert owners("2026-11-03T10:00", "2026-11-03T12:30:00.000001") == {"alice": 2}
    assert owners("2026-11-03T10:00:00.000001", "2026-11-03T12:30") == {}
    # In UTC, November loses alice's 00:30-Berlin job and gains bob's 23:30-UTC one.
    rows = store.read(
        lambda db: usage(db, GroupBy.DAY, utc("2026-11-01T00:00"), utc("2026-12-01T00:00"), UTC)
    )
    assert [r.key for r in rows] == ["2026-11-03", "2026-11-10", "2026-11-15", "2026-11-20", "2026-11-30"]


def test_the_period_defaults_to_this_month_in_the_farms_zone_and_refuses_bad_bounds() -> None:
    now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # the day Berlin moves to summer time
    assert period(None, None, now, BERLIN) == (
        datetime(2026, 2, 28, 23, 0, tzinfo=UTC),  # 1 March 00:00 CET
        datetime(2026, 3, 31, 22, 0, tzinfo=UTC),  # 1 April 00:00 CEST
    )
    assert period("2026-11-01", "2026-11-02T06:30", now, BERLIN) == (
        datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 5, 30, tzinfo=UTC),
    )
    # Only until: from the start of its month.
    assert period(None, "2026-11-20T00:00+00:00", now, BERLIN)[0] == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    for since, until, message in [
        ("yesterday", None, "since: 'yesterday' is not a date"),
        ("2026-11-01", "2026-13-01", "until: '2026-13-01' is not a date"),
        ("2026-11-02", "2026-11-01", "must be before until"),
        ("2026-11-01", "2026-11-01", "must be before until"),
        ("0001-01-01", None, "not between the years"),
        (None, "9999-12-31T23:59", "not between the years"),
    ]:
        with pytest.raises(BadPeriod, match=message):
            period(since, until, now, BERLIN)


async def test_usage_over_the_api_and_farmctl_report_csv(tmp_path: Path) -> None:
    sections = '[costs]\ntimezone = "Europe/Berlin"\ncurrency = "CHF"\n'
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS, sections=sections)
    # Seeded before the daemon starts: its accountant then takes these jobs as history, as after an
    # upgrade, and does not account them again.
    store = Store(config.controller.state_dir / "farmctl.db")
    try:
        seed(store)
    finally:
        store.close()
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        viewer = farm.as_role("viewer")
        november = {"since": "2026-11-01", "until": "2026-12-01"}
        for group_by, expected in [
            ("owner", BY_OWNER),
            ("printer", BY_PRINTER),
            ("material", BY_MATERIAL),
            ("day", BY_DAY),
            ("month", BY_MONTH),
        ]:
            resp = await farm.api.get(
                "/api/v1/reports/usage", params={**november, "group_by": group_by}, headers=viewer
            )
            assert resp.status_code == 200, resp.text
            answer = resp.json()
            got = [tuple(row.values()) for row in answer["rows"]]
            assert got == approx_rows(expected)
        assert answer["since"] == "2026-11-01T00:00:00+01:00"
        assert answer["until"] == "2026-12-01T00:00:00+01:00"
        assert (answer["timezone"], answer["currency"]) == ("Europe/Berlin", "CHF")
        assert answer["total"]["jobs"] == 6
        # The default period is this month in the farm's zone.
        first, following = month_of(datetime.now(UTC), BERLIN)
        this_month = {"since": first.isoformat(), "until": following.isoformat()}
        resp = await farm.api.get("/api/v1/reports/usage", headers=viewer)
        assert resp.status_code == 200
        explicit = await farm.api.get("/api/v1/reports/usage", params=this_month, headers=viewer)
        assert resp.json() == explicit.json()
        assert resp.json()["since"] == first.isoformat()
        for params, message in [
            ({"group_by": "colour"}, "group_by"),
            ({"since": "last week"}, "since: 'last week' is not a date"),
            ({"since": "2026-12-01", "until": "2026-11-01"}, "must be before until"),
            ({"until": "9999-12-31T23:59:59"}, "not between the years"),
        ]:
            resp = await farm.api.get("/api/v1/reports/usage", params=params, headers=viewer)
            assert resp.status_code == 422, (params, resp.text)
            assert message in resp.json()["error"]
        nobody = {"Authorization": "Bearer not-a-token"}
        assert (await farm.api.get("/api/v1/reports/usage", headers=nobody)).status_code == 401

        path = str(tmp_path / "etc/farmctl.toml")
        run = await farmctl(
            "report",
            "--by",
            "owner",
            "--since",
            "2026-11-01",
            "--until",
            "2026-12-01",
            "--csv",
            "--config",
            path,
        )
        assert run.code == 0, run.err
        table = list(csv.reader(io.StringIO(run.out)))
        assert table[0] == [
            "owner",
            "jobs",
            "print_hours",
            "filament_g",
            "energy_kwh",
            "cost",
            "co2_g",
            "waste_g",
            "waste_kwh",
            "currency",
        ]
        assert [row[0] for row in table[1:]] == ["alice", "bob"]
        for row, want in zip(table[1:], BY_OWNER, strict=True):
            assert (int(row[1]), *(float(v) for v in row[2:9])) == approx_rows([want[1:]])[0]
            assert row[9] == "CHF"
        run = await farmctl(
            "report", "--by", "day", "--since", "2026-11-01", "--until", "2026-12-01", "--config", path
        )
        assert run.code == 0, run.err
        for shown in ("2026-11-11", "total", "Europe/Berlin"):
            assert shown in run.out
        run = await farmctl(
            "report",
            "--by",
            "month",
            "--since",
            "2026-11-01",
            "--until",
            "2026-12-01",
            "--json",
            "--config",
            path,
        )
        assert json.loads(run.out)["rows"][0]["key"] == "2026-11"
        run = await farmctl("report", "--by", "colour", "--config", path)
        assert run.code == 65
        assert "group_by" in run.err
        run = await farmctl("report", "--csv", "--json", "--config", path)
        assert run.code == 64
        # --utilisation shows the utilisation report's rows instead (by printer unless --by says).
        run = await farmctl("report", "--utilisation", "--by", "farm", "--csv", "--config", path)
        assert run.code == 0, run.err
        header, *rows = list(csv.reader(io.StringIO(run.out)))
        assert header[:3] == ["key", "period_s", "printing_h"]
        assert [row[0] for row in rows] == ["farm"]
