"""Bed state has one owner (controller.jobs.beds.Beds), written through to the store at once; a dispatch
records the job and its bed in one transaction."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from controller.config import ControllerConfig, PrinterConfig
from controller.core.events import EventFeed
from controller.fleet.coordinator import PrinterCoordinator
from controller.fleet.drivers import fleet_session
from controller.jobs import JobState, Requirements
from controller.jobs.beds import Beds
from controller.store import AsyncStore, Store
from devices.printer import EventKind, PrinterEvent

REPO = Path(__file__).resolve().parent.parent


def _add_job(store: Store) -> int:
    store.add_file("ab" * 32, 10, "part.gcode")
    (job,) = store.add_jobs(
        file_sha256="ab" * 32,
        file_name="part.gcode",
        owner="ops",
        priority=0,
        requirements=Requirements(),
        copies=1,
    )
    return job.id


async def test_bed_changes_survive_a_reopen_of_the_store(tmp_path: Path) -> None:
    db = tmp_path / "farmctl.db"
    store = AsyncStore(Store(db))
    store.sync.set_bed_clear("a", True)
    beds = await Beds.load(store, ["a", "b", "c"])
    # Recorded clear, never recorded (counts as used), and a third cleared now.
    assert [beds.is_clear(p) for p in "abc"] == [True, False, False]
    assert beds.mark_used("a")
    assert beds.clear("c")
    assert not beds.mark_used("b")  # already used: nothing to write
    await beds.written()
    store.close()

    reopened = AsyncStore(Store(db))
    try:
        again = await Beds.load(reopened, ["a", "b", "c"])
        assert [again.is_clear(p) for p in "abc"] == [False, False, True]
    finally:
        reopened.close()


async def test_the_last_of_quick_changes_is_what_the_store_keeps(tmp_path: Path) -> None:
    store = AsyncStore(Store(tmp_path / "farmctl.db"))
    try:
        beds = await Beds.load(store, ["a", "b"])
        beds.clear("a")
        beds.mark_used("a")  # no await between: both writes are still on their way
        beds.clear("b")
        beds.mark_used("b")
        beds.clear("b")
        await beds.written()
        assert (store.sync.bed_clear("a"), store.sync.bed_clear("b")) == (False, True)
    finally:
        store.close()


async def test_a_print_the_coordinator_sees_marks_the_bed_used_durably(tmp_path: Path) -> None:
    """A print started on the printer itself leaves a part: recorded at once, with no round between."""
    db = tmp_path / "farmctl.db"
    store = AsyncStore(Store(db))
    store.sync.set_bed_clear("p1", True)
    beds = await Beds.load(store, ["p1"])
    printer = PrinterConfig(name="p1", url="http://127.0.0.1:9", api_key_file=Path("k"))
    async with fleet_session() as session:
        coord = PrinterCoordinator(printer, ControllerConfig(), session, EventFeed(), beds=beds)
        coord.on_event(PrinterEvent(kind=EventKind.PRINT_STARTED, file_name="by-hand.gcode"))
        assert not coord.bed_clear
        await beds.written()
    store.close()
    reopened = Store(db)
    try:
        assert reopened.bed_clear("p1") is False
    finally:
        reopened.close()


def test_start_dispatch_records_the_job_and_its_bed_together(tmp_path: Path) -> None:
    store = Store(tmp_path / "farmctl.db")
    try:
        store.set_bed_clear("p1", True)
        job = store.start_dispatch(_add_job(store), "p1")
        assert (job.state, job.printer, job.attempts) == (JobState.DISPATCHING, "p1", 1)
        assert store.bed_clear("p1") is False
        assert [e.state for e in store.events(job.id)] == [JobState.QUEUED, JobState.DISPATCHING]
    finally:
        store.close()


def test_a_crash_inside_start_dispatch_leaves_neither_change(tmp_path: Path) -> None:
    """SIGKILLed between writing the job and writing its bed: after a reopen the job is still queued
    and the bed still clear, so the job goes out again and no dispatching job sits on a clear bed."""
    db = tmp_path / "farmctl.db"
    store = Store(db)
    store.set_bed_clear("p1", True)
    job_id = _add_job(store)
    store.close()
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        import controller.store.db as db

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        db._write_bed = killed  # dies after the job's row and event, before the bed
        db.Store(Path(sys.argv[1])).start_dispatch({job_id}, "p1")
        """
    )
    proc = subprocess.run([sys.executable, "-c", child, str(db)], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    reopened = Store(db)
    try:
        job = reopened.get_job(job_id)
        assert (job.state, job.printer, job.attempts) == (JobState.QUEUED, None, 0)
        assert [e.state for e in reopened.events(job_id)] == [JobState.QUEUED]
        assert reopened.bed_clear("p1") is True
    finally:
        reopened.close()
