"""Pure logic of the fleet monitor: OctoPrint's flags as a host state, the farm's state, back-off."""

from __future__ import annotations

import pytest

from controller.core.availability import Backoff
from controller.fleet.state import PrinterState, farm_state
from devices.octoprint import PrinterFlags, Snapshot, host_snapshot, host_state
from devices.octoprint.parse import event_from_push, flags_from_text, snapshot_from_push, snapshot_from_rest
from devices.printer import HostState


def normalize(snapshot: Snapshot) -> HostState:
    return host_state(snapshot.flags)


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        (PrinterFlags(operational=True, ready=True, closed=False), HostState.IDLE),
        (PrinterFlags(operational=True, printing=True, closed=False), HostState.PRINTING),
        (PrinterFlags(operational=True, finishing=True, closed=False), HostState.PRINTING),
        (PrinterFlags(operational=True, cancelling=True, closed=False), HostState.PRINTING),
        (PrinterFlags(operational=True, paused=True, closed=False), HostState.PAUSED),
        (PrinterFlags(operational=True, pausing=True, printing=True, closed=False), HostState.PAUSED),
        (PrinterFlags(error=True, closed=False), HostState.ERROR),
        (PrinterFlags(closed=True), HostState.OFFLINE),
    ],
)
def test_octoprint_flags_as_host_state(flags: PrinterFlags, state: HostState) -> None:
    snap = Snapshot(state_text="x", flags=flags, file_name="f.gcode", progress=12.5)
    assert normalize(snap) is state
    neutral = host_snapshot(snap)
    assert (neutral.state, neutral.state_text, neutral.file_name, neutral.progress) == (
        state,
        "x",
        "f.gcode",
        12.5,
    )


def test_farm_state_of_every_host_state() -> None:
    # The farm adds awaiting_clear (its bed rule); every host state has its farm state of the same name.
    assert {farm_state(s) for s in HostState} == set(PrinterState) - {PrinterState.AWAITING_CLEAR}
    assert all(farm_state(s).value == s.value for s in HostState)


def test_state_changed_event_reports_a_host_state() -> None:
    def state_of(state_id: str) -> HostState | None:
        event = event_from_push({"type": "PrinterStateChanged", "payload": {"state_id": state_id}})
        assert event is not None
        return event.state

    assert state_of("OFFLINE_AFTER_ERROR") is HostState.ERROR
    assert state_of("CANCELLING") is HostState.PRINTING
    assert state_of("PAUSING") is HostState.PAUSED
    assert state_of("OPERATIONAL") is HostState.IDLE
    assert state_of("CONNECTING") is None  # a passing state: no change


def test_rest_snapshot_when_printer_answers_409() -> None:
    job = {"state": "Offline after error", "error": "Printer halted. kill() called!", "job": {}}
    snap = snapshot_from_rest(job, None)
    assert normalize(snap) is HostState.ERROR
    assert snap.error == "Printer halted. kill() called!"
    assert normalize(snapshot_from_rest({"state": "Offline"}, None)) is HostState.OFFLINE
    assert flags_from_text("Error: Too many consecutive timeouts").error


def test_push_frame_tolerates_junk() -> None:
    frame = {
        "state": {"text": "Printing", "flags": {"printing": True, "operational": True}},
        "job": {"file": {"name": "j.gcode", "path": "j.gcode"}},
        "progress": {"completion": float("nan"), "printTime": "12"},
        "temps": [{"tool0": {"actual": 200.0, "target": 210}, "bed": "hot", "time": 1}],
    }
    snap = snapshot_from_push(frame)
    assert normalize(snap) is HostState.PRINTING
    assert snap.file_name == "j.gcode"
    assert snap.progress is None
    assert snap.print_time_s is None
    assert set(snap.temperatures) == {"tool0"}
    assert snap.temperatures["tool0"].target == 210.0
    assert normalize(snapshot_from_push(None)) is HostState.OFFLINE


def test_push_offline_after_error_is_error_plain_offline_is_not() -> None:
    flags = {"closedOrError": True, "error": False, "operational": False}
    after_error = {"state": {"text": "Offline after error", "flags": flags, "error": "kill() called"}}
    assert normalize(snapshot_from_push(after_error)) is HostState.ERROR
    offline = {"state": {"text": "Offline", "flags": flags, "error": ""}}
    assert normalize(snapshot_from_push(offline)) is HostState.OFFLINE


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(1.0, 5.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 1.0
