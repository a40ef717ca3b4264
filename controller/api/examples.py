"""Example objects of the OpenAPI document: one printer, one job and what follows from them, so every
route, model and the event stream's example show the same workshop (job 17 printing on mk4-1)."""

from __future__ import annotations

from typing import Any

from fastapi.openapi.models import Example

from controller.accounting.passport import canonical, digest


def parameter(value: Any, summary: str) -> dict[str, Example]:
    """A path or query parameter's example, as Swagger UI offers it to fill in (`openapi_examples`)."""
    return {summary: Example(summary=summary, value=value)}


# A printer in the middle of job 17, as every route that answers a printer shows one.
PRINTER_EXAMPLE: dict[str, Any] = {
    "name": "mk4-1",
    "state": "printing",
    "detail": "Printing",
    "job_id": 17,
    "file": "farmctl-17-bracket.gcode",
    "progress": 42.5,
    "temperatures": {"tool0": {"actual": 214.8, "target": 215.0}, "bed": {"actual": 60.1, "target": 60.0}},
    "materials": ["PLA"],
    "nozzle": 0.4,
    "group": "prusa",
    "bed_clear": False,
    "error": None,
    "last_seen": "2026-12-02T09:31:12+00:00",
    "maintenance": None,
}
# The same printer idle with its bed cleared, ready for the next job.
IDLE_EXAMPLE: dict[str, Any] = {
    **PRINTER_EXAMPLE,
    "state": "idle",
    "detail": "Operational",
    "job_id": None,
    "file": None,
    "progress": None,
    "temperatures": {"tool0": {"actual": 24.1, "target": 0.0}, "bed": {"actual": 23.8, "target": 0.0}},
    "bed_clear": True,
    "last_seen": "2026-12-02T10:02:41+00:00",
}


HISTORY_EXAMPLE = [
    {"materials": ["PETG"], "at": "2026-12-02T08:40:00+00:00", "by": "ops"},
    {"materials": ["PLA"], "at": "2026-12-01T16:20:05+00:00", "by": "alice"},
]


# Job 17 printing on mk4-1, as every route that answers a job shows one; the others follow from it.
JOB_EXAMPLE: dict[str, Any] = {
    "id": 17,
    "state": "printing",
    "file": "bracket.gcode",
    "owner": "alice",
    "printer": "mk4-1",
    "priority": 0,
    "material": "PLA",
    "nozzle": 0.4,
    "required_printer": None,
    "required_group": None,
    "size_mm": [62.0, 41.5, 12.2],
    "created_at": "2026-12-02T09:14:03+00:00",
    "started_at": "2026-12-02T09:15:10+00:00",
    "finished_at": None,
    "progress": 42.5,
    "estimated_s": 5520.0,
    "filament_g": 18.4,
    "filament_est_g": 18.4,
    "filament_measured_g": None,
    "material_drift": False,
    "energy_kwh": None,
    "heatup_kwh": None,
    "printing_kwh": None,
    "paused_kwh": None,
    "energy_gap_s": None,
    "waste_g": None,
    "waste_kwh": None,
    "cost": None,
    "co2_g": None,
    "attempts": 1,
    "error": None,
    "waiting": None,
}
QUEUED_EXAMPLE: dict[str, Any] = {
    **JOB_EXAMPLE,
    "id": 18,
    "state": "queued",
    "printer": None,
    "started_at": None,
    "progress": None,
    "attempts": 0,
    "waiting": "mk4-1 printing job 17",
}
CANCELLED_EXAMPLE: dict[str, Any] = {
    **JOB_EXAMPLE,
    "state": "cancelled",
    "finished_at": "2026-12-02T09:52:40+00:00",
    "error": "cancelled by ops",
}


JOB_EVENTS_EXAMPLE: dict[str, Any] = {
    "events": [
        {"at": "2026-12-02T09:14:03Z", "state": "queued", "printer": None, "detail": None},
        {
            "at": "2026-12-02T09:15:08Z",
            "state": "dispatching",
            "printer": "mk4-1",
            "detail": None,
        },
        {
            "at": "2026-12-02T09:15:10Z",
            "state": "printing",
            "printer": "mk4-1",
            "detail": None,
        },
        {
            "at": "2026-12-02T09:52:40Z",
            "state": "cancelled",
            "printer": "mk4-1",
            "detail": "cancelled by ops",
        },
    ]
}

_USAGE_ROW: dict[str, Any] = {
    "key": "alice",
    "jobs": 12,
    "print_hours": 31.5,
    "filament_g": 412.3,
    "energy_kwh": 2.41,
    "cost": 18.2,
    "co2_g": 964.0,
    "waste_g": 22.0,
    "waste_kwh": 0.12,
}
USAGE_EXAMPLE: dict[str, Any] = {
    "group_by": "owner",
    "since": "2026-11-01T00:00:00+01:00",
    "until": "2026-12-01T00:00:00+01:00",
    "timezone": "Europe/Berlin",
    "currency": "EUR",
    "rows": [
        _USAGE_ROW,
        {
            **_USAGE_ROW,
            "key": "bob",
            "jobs": 3,
            "print_hours": 4.25,
            "filament_g": 61.0,
            "energy_kwh": 0.35,
            "cost": 2.9,
            "co2_g": 140.0,
            "waste_g": 0.0,
            "waste_kwh": 0.0,
        },
    ],
    "total": {
        **_USAGE_ROW,
        "key": "total",
        "jobs": 15,
        "print_hours": 35.75,
        "filament_g": 473.3,
        "energy_kwh": 2.76,
        "cost": 21.1,
        "co2_g": 1104.0,
    },
}

_RECORD: dict[str, Any] = {
    "seq": 41,
    "prev_hash": "5d0c3f6a" * 8,
    "recorded_at": "2026-12-02T11:02:15+00:00",
    "job": 17,
    "attempt": 1,
    "file": {"name": "bracket.gcode", "sha256": "9b74c9897bac770ffc029102a200c5de" * 2, "size": 1843201},
    "printer": "mk4-1",
    "group": "prusa",
    "owner": "alice",
    "outcome": "completed",
    "created_at": "2026-12-02T09:14:03+00:00",
    "started_at": "2026-12-02T09:15:10+00:00",
    "finished_at": "2026-12-02T11:02:14+00:00",
    "material": "PLA",
    "nozzle": 0.4,
    "filament_measured_g": 18.9,
    "filament_estimated_g": 18.4,
    "waste_g": 0.0,
    "energy_kwh": 0.21,
    "energy_source": "plug",
    "co2_g": 84.0,
    "cost": 1.12,
    "currency": "EUR",
}
PASSPORT_EXAMPLE: dict[str, Any] = {
    "seq": 41,
    "job_id": 17,
    "record": _RECORD,
    # The true hash of the record above, so a reader can check the example as `farmctl passport verify` would.
    "hash": digest(canonical(_RECORD)),
    "prev_hash": _RECORD["prev_hash"],
}
LEDGER_EXAMPLE: dict[str, Any] = {"passports": [PASSPORT_EXAMPLE], "next_after": 41}

_UTILISATION_ROW: dict[str, Any] = {
    "key": "mk4-1",
    "period_s": 604800.0,
    "printing_h": 61.5,
    "paused_h": 0.4,
    "awaiting_clear_h": 6.2,
    "idle_h": 92.1,
    "offline_h": 3.0,
    "error_h": 0.8,
    "off_h": 0.0,
    "unknown_h": 4.0,
    "availability": 0.977,
    "performance": 0.91,
    "quality": 0.955,
    "oee": 0.849,
    "utilisation": 0.375,
    "jobs_completed": 42,
    "jobs_failed": 2,
    "jobs_cancelled": 1,
    "bed_clear_wait_median_s": 840.0,
    "bed_clear_wait_p90_s": 3900.0,
}
UTILISATION_EXAMPLE: dict[str, Any] = {
    "since": "2026-11-25T00:00:00Z",
    "until": "2026-12-02T00:00:00Z",
    "group_by": "printer",
    "rows": [_UTILISATION_ROW],
}
