"""The job store on a real SQLite file and the content-addressed file store on disk."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.jobs import IllegalTransition, JobState, Requirements
from controller.jobs.files import EmptyFile, FileStore, FileTooLarge
from controller.store import MIGRATIONS, AsyncStore, NotFound, Store


def queue_two(store: Store) -> list[int]:
    store.add_file("a" * 64, 10, "benchy.gcode")
    jobs = store.add_jobs(
        file_sha256="a" * 64,
        file_name="benchy.gcode",
        owner="ada",
        priority=2,
        requirements=Requirements(material="PLA", nozzle=0.4, size=(60.0, 31.0, 48.0), group="prusa"),
        copies=2,
    )
    return [j.id for j in jobs]


def test_jobs_survive_reopen_with_their_history(tmp_path: Path) -> None:
    store = Store(tmp_path / "farm.db")
    first, second = queue_two(store)
    store.transition(first, JobState.DISPATCHING, printer="mk4-1")
    store.transition(first, JobState.PRINTING)
    store.set_progress(first, 42.0)
    store.close()

    reopened = Store(tmp_path / "farm.db")
    job = reopened.get_job(first)
    assert job.state is JobState.PRINTING
    assert job.printer == "mk4-1"
    assert job.progress == 42.0
    assert job.attempts == 1
    assert job.started_at is not None
    assert job.requirements == Requirements(
        material="PLA", nozzle=0.4, size=(60.0, 31.0, 48.0), group="prusa"
    )
    assert [e.state for e in reopened.events(first)] == [
        JobState.QUEUED,
        JobState.DISPATCHING,
        JobState.PRINTING,
    ]
    assert [j.id for j in reopened.list_jobs([JobState.QUEUED])] == [second]
    assert reopened.version == len(MIGRATIONS)


def test_illegal_transitions_change_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "farm.db")
    job_id, _ = queue_two(store)
    with pytest.raises(IllegalTransition, match="from queued to completed"):
        store.transition(job_id, JobState.COMPLETED)
    store.transition(job_id, JobState.CANCELLED, detail="by ada")
    with pytest.raises(IllegalTransition):
        store.transition(job_id, JobState.DISPATCHING)
    assert store.get_job(job_id).state is JobState.CANCELLED
    assert len(store.events(job_id)) == 2
    with pytest.raises(NotFound):
        store.transition(999, JobState.CANCELLED)


def test_requeue_forgets_printer_and_keeps_the_reason(tmp_path: Path) -> None:
    store = Store(tmp_path / "farm.db")
    job_id, _ = queue_two(store)
    store.transition(job_id, JobState.DISPATCHING, printer="mk4-1")
    job = store.transition(job_id, JobState.QUEUED, detail="printer busy: print did not start")
    assert job.printer is None
    assert job.error == "printer busy: print did not start"
    failed = store.transition(
        store.transition(job_id, JobState.DISPATCHING, printer="mk4-2").id,
        JobState.FAILED,
        detail="thermal runaway",
    )
    assert failed.error == "thermal runaway"
    assert failed.finished_at is not None
    assert failed.attempts == 2


def test_bed_state_is_durable_and_unknown_until_recorded(tmp_path: Path) -> None:
    store = Store(tmp_path / "farm.db")
    assert store.bed_clear("mk4-1") is None
    store.set_bed_clear("mk4-1", False)
    store.close()
    reopened = Store(tmp_path / "farm.db")
    assert reopened.bed_clear("mk4-1") is False
    reopened.set_bed_clear("mk4-1", True)
    assert reopened.bed_clear("mk4-1") is True


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    Store(tmp_path / "farm.db").close()
    with sqlite3.connect(tmp_path / "farm.db") as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this farmctl"):
        Store(tmp_path / "farm.db")


async def test_async_store_runs_calls_off_the_loop(tmp_path: Path) -> None:
    store = AsyncStore(Store(tmp_path / "farm.db"))
    try:
        ids = await store.call(queue_two, store.sync)
        job = await store.call(store.sync.get_job, ids[1])
        assert job.owner == "ada"
    finally:
        store.close()


async def chunks(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_files_are_stored_by_hash_and_limits_keep_nothing(tmp_path: Path) -> None:
    files = FileStore(tmp_path / "files")
    data = b"G28\n" + b"G1 X10 Y10 E1\n" * 200_000
    stored = await files.save(chunks(data, 65536), limit=10_000_000)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.path.read_bytes() == data
    again = await files.save(chunks(data, 65536), limit=10_000_000)
    assert again.path == stored.path
    with pytest.raises(FileTooLarge):
        await files.save(chunks(data), limit=1000)
    with pytest.raises(EmptyFile):
        await files.save(chunks(b""), limit=1000)
    assert list((tmp_path / "files" / "partial").iterdir()) == []
    assert [p.name for p in (tmp_path / "files").rglob("*.gcode")] == [f"{stored.sha256}.gcode"]
