"""Pure logic of the fleet monitor: state normalization and back-off."""

from __future__ import annotations

import pytest

from controller.fleet import Backoff
from controller.printers import PrinterState, normalize
from devices.octoprint import PrinterFlags, Snapshot
from devices.octoprint.parse import flags_from_text, snapshot_from_push, snapshot_from_rest


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        (PrinterFlags(operational=True, ready=True, closed=False), PrinterState.IDLE),
        (PrinterFlags(operational=True, printing=True, closed=False), PrinterState.PRINTING),
        (PrinterFlags(operational=True, finishing=True, closed=False), PrinterState.PRINTING),
        (PrinterFlags(operational=True, cancelling=True, closed=False), PrinterState.PRINTING),
        (PrinterFlags(operational=True, paused=True, closed=False), PrinterState.PAUSED),
        (PrinterFlags(operational=True, pausing=True, printing=True, closed=False), PrinterState.PAUSED),
        (PrinterFlags(error=True, closed=False), PrinterState.ERROR),
        (PrinterFlags(closed=True), PrinterState.OFFLINE),
    ],
)
def test_normalize(flags: PrinterFlags, state: PrinterState) -> None:
    assert normalize(Snapshot(state_text="x", flags=flags)) is state


def test_rest_snapshot_when_printer_answers_409() -> None:
    job = {"state": "Offline after error", "error": "Printer halted. kill() called!", "job": {}}
    snap = snapshot_from_rest(job, None)
    assert normalize(snap) is PrinterState.ERROR
    assert snap.error == "Printer halted. kill() called!"
    assert normalize(snapshot_from_rest({"state": "Offline"}, None)) is PrinterState.OFFLINE
    assert flags_from_text("Error: Too many consecutive timeouts").error


def test_push_frame_tolerates_junk() -> None:
    frame = {
        "state": {"text": "Printing", "flags": {"printing": True, "operational": True}},
        "job": {"file": {"name": "j.gcode", "path": "j.gcode"}},
        "progress": {"completion": float("nan"), "printTime": "12"},
        "temps": [{"tool0": {"actual": 200.0, "target": 210}, "bed": "hot", "time": 1}],
    }
    snap = snapshot_from_push(frame)
    assert normalize(snap) is PrinterState.PRINTING
    assert snap.file_name == "j.gcode"
    assert snap.progress is None
    assert snap.print_time_s is None
    assert set(snap.temperatures) == {"tool0"}
    assert snap.temperatures["tool0"].target == 210.0
    assert normalize(snapshot_from_push(None)) is PrinterState.OFFLINE


def test_push_offline_after_error_is_error_plain_offline_is_not() -> None:
    flags = {"closedOrError": True, "error": False, "operational": False}
    after_error = {"state": {"text": "Offline after error", "flags": flags, "error": "kill() called"}}
    assert normalize(snapshot_from_push(after_error)) is PrinterState.ERROR
    offline = {"state": {"text": "Offline", "flags": flags, "error": ""}}
    assert normalize(snapshot_from_push(offline)) is PrinterState.OFFLINE


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(1.0, 5.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 1.0
