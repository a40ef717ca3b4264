"""Why a queued job waits: each reason a newcomer meets, from the scheduler's own inputs."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState, Requirements
from controller.jobs.scheduler import PrinterSlot, schedule
from controller.jobs.waiting import WaitingBoard, waiting_reasons
from tests.test_scheduler import NOW, job, slot

IDLE = PrinterState.IDLE


def reasons(
    jobs: list[Job], slots: list[PrinterSlot], *, last_start: float | None = None, gap: float = 0.0
) -> dict[int, str]:
    """One round as the dispatcher runs it: schedule, then explain the jobs it did not start."""
    plan = schedule(jobs, slots, now=NOW, last_start=last_start, min_gap_s=gap)
    started = last_start if not plan else NOW
    return waiting_reasons(jobs, slots, plan, now=NOW, last_start=started, min_gap_s=gap)


def test_nozzle_names_the_busy_printer_and_the_idle_one_that_lacks_it() -> None:
    slots = [
        replace(slot("demo-1", nozzle=0.4, state=PrinterState.PRINTING), job_id=3),
        slot("demo-2", nozzle=0.6),
    ]
    got = reasons([job(7, req=Requirements(nozzle=0.4))], slots)
    assert got == {7: "demo-1 printing job 3; no idle printer with nozzle 0.4 (demo-2 has 0.6)"}


def test_material() -> None:
    slots = [
        PrinterSlot("demo-1", "prusa", ("PLA", "PETG"), 0.4, (220, 220, 250), PrinterState.PRINTING, 1),
        slot("demo-2", materials=("PLA",)),
    ]
    got = reasons([job(3, req=Requirements(material="petg"))], slots)
    assert got == {3: "demo-1 printing job 1; no idle printer with material PETG (demo-2 has PLA)"}


def test_size() -> None:
    slots = [
        slot("big", volume=(300, 300, 300), state=PrinterState.AWAITING_CLEAR),
        slot("small", volume=(180, 180, 180)),
    ]
    got = reasons([job(4, req=Requirements(size=(250.0, 100.0, 20.0)))], slots)
    assert got == {
        4: "big awaiting bed clear; "
        "no idle printer big enough for 250 x 100 x 20 mm (small is 180 x 180 x 180)"
    }


def test_bed_awaiting_clear() -> None:
    got = reasons([job(5)], [slot("demo-1", state=PrinterState.AWAITING_CLEAR)])
    assert got == {5: "demo-1 awaiting bed clear"}


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (PrinterState.OFFLINE, "demo-1 offline"),
        (PrinterState.ERROR, "demo-1 in error"),
        (PrinterState.PAUSED, "demo-1 paused in job 9"),
    ],
)
def test_printer_states(state: PrinterState, words: str) -> None:
    busy = PrinterSlot("demo-1", "default", ("PLA",), 0.4, (220, 220, 250), state, 9)
    assert reasons([job(5)], [busy]) == {5: words}


def test_busy_printer_running_a_file_farmctl_did_not_send() -> None:
    got = reasons([job(5)], [slot("demo-1", state=PrinterState.PRINTING)])
    assert got == {5: "demo-1 printing a file farmctl did not send"}


def test_stagger_counts_down_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    slots = [slot("demo-1"), slot("demo-2")]
    # A start 20 s ago with a 60 s gap: nothing may start for another 40 s.
    got = reasons([job(1), job(2)], slots, last_start=NOW - 20, gap=60)
    assert got == {1: "min_start_gap 40 s left", 2: "min_start_gap 40 s left"}
    # Gap over: one job starts, the next waits a whole gap again.
    got = reasons([job(1), job(2)], slots, last_start=NOW - 61, gap=60)
    assert got == {2: "min_start_gap 60 s left"}

    board = WaitingBoard()
    with caplog.at_level(logging.INFO, logger="controller.jobs.waiting"):
        board.update({2: "min_start_gap 60 s left"})
        board.update({2: "min_start_gap 58 s left"})  # a tick of the countdown: not a new reason
        board.update({2: "demo-1 printing job 1"})
    assert [r.getMessage() for r in caplog.records] == [
        "job=2 waiting: min_start_gap 60 s left",
        "job=2 waiting: demo-1 printing job 1",
    ]
    assert board.get(2) == "demo-1 printing job 1"
    board.update({})
    assert board.get(2) is None


def test_printer_pin_waits_for_that_printer() -> None:
    slots = [replace(slot("demo-1", state=PrinterState.PRINTING), job_id=2), slot("demo-2")]
    got = reasons([job(6, req=Requirements(printer="demo-1"))], slots)
    assert got == {6: "demo-1 printing job 2; only printer demo-1 may take it"}


def test_group_pin_names_the_idle_printers_of_other_groups() -> None:
    slots = [
        slot("a1", group="prusa", state=PrinterState.AWAITING_CLEAR),
        slot("c1", group="creality"),
    ]
    got = reasons([job(6, req=Requirements(group="prusa"))], slots)
    assert got == {6: "a1 awaiting bed clear; no idle printer in group prusa (c1 is in creality)"}


def test_a_free_printer_taken_by_a_job_ahead() -> None:
    got = reasons([job(1, priority=5), job(2)], [slot("demo-1")])
    assert got == {2: "demo-1 went to job 1 first"}


def test_long_lists_are_cut() -> None:
    busy = [replace(slot(f"p{i}", state=PrinterState.PRINTING), job_id=i) for i in range(1, 6)]
    got = reasons([job(9)], busy)
    assert got == {9: "p1 printing job 1, p2 printing job 2, p3 printing job 3 and 2 more"}


def test_started_and_other_states_get_no_reason() -> None:
    jobs = [job(1), job(2, state=JobState.PRINTING)]
    assert reasons(jobs, [slot("demo-1")]) == {}
