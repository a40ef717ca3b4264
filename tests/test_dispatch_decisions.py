"""The dispatcher's decisions against simulated printers: a real Fleet, Dispatcher and Store, no OctoPrint.

What a printer host does is scripted (devices/sim); what the farm decides is read from the store, the
printers' status and what was sent to the hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from controller.config import ControllerConfig, PrinterConfig
from controller.core.events import EventFeed
from controller.fleet.coordinator import Fleet
from controller.fleet.drivers import fleet_session
from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState, Requirements
from controller.jobs.dispatch import Dispatcher
from controller.jobs.files import FileStore
from controller.store import AsyncStore, Store
from devices.printer import PrinterDriver
from devices.sim import SimPrinter
from tests.helpers import PrinterSpec, config_for, eventually

GCODE = b"; estimated printing time (normal mode) = 1m\nG28\nG1 X10 Y10 Z0.2 E1 F1200\n"


class SimFarm:
    """The daemon's dispatch parts over simulated printers, with a store in tmp_path."""

    def __init__(self, tmp_path: Path, sims: list[SimPrinter], jobs: str = "") -> None:
        self.sims = {sim.name: sim for sim in sims}
        specs = [PrinterSpec(name, "http://127.0.0.1:9", "k") for name in self.sims]
        self.config = config_for(tmp_path, specs, sections=f"[jobs]\ndispatch_interval = 0.1\n{jobs}")
        state = self.config.controller.state_dir
        self.store = AsyncStore(Store(state / "farmctl.db"), EventFeed())
        self.files = FileStore(state / "files")
        for name in self.sims:
            self.store.sync.set_bed_clear(name, True)  # the operator starts with empty beds
        self.fleet: Fleet | None = None

    def driver(self, printer: PrinterConfig, _: ControllerConfig, __: aiohttp.ClientSession) -> PrinterDriver:
        return self.sims[printer.name]

    async def add_job(self, file_name: str = "part.gcode", printer: str | None = None) -> Job:
        async def chunks() -> AsyncIterator[bytes]:
            yield GCODE

        stored = await self.files.save(chunks(), limit=2**20)
        await self.store.call(self.store.sync.add_file, stored.sha256, stored.size, file_name)
        (job,) = await self.store.call(
            self.store.sync.add_jobs,
            file_sha256=stored.sha256,
            file_name=file_name,
            owner="ops",
            priority=0,
            requirements=Requirements(printer=printer),
            copies=1,
        )
        return job

    async def crashed_while_dispatching(self, job: Job, printer: str) -> None:
        """What a daemon killed during an upload left in the store: the job dispatching, the bed used."""
        await self.store.call(self.store.sync.transition, job.id, JobState.DISPATCHING, printer=printer)
        await self.store.call(self.store.sync.set_bed_clear, printer, False)

    async def job(self, job_id: int) -> Job:
        return await self.store.call(self.store.sync.get_job, job_id)

    async def states(self, job_id: int) -> list[JobState]:
        return [e.state for e in await self.store.call(self.store.sync.events, job_id)]

    def status(self, printer: str) -> PrinterState:
        assert self.fleet is not None
        coordinator = self.fleet.get(printer)
        assert coordinator is not None
        return coordinator.status.state

    async def clear_bed(self, printer: str) -> None:
        """The operator empties the bed (as `JobQueue.clear` records it)."""
        assert self.fleet is not None
        coordinator = self.fleet.get(printer)
        assert coordinator is not None
        assert coordinator.clear()
        await self.store.call(self.store.sync.set_bed_clear, printer, True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Dispatcher]:
        """Every coordinator and the dispatcher in one TaskGroup, as `farmctl run` has them."""
        beds = {name: self.store.sync.bed_clear(name) is True for name in self.sims}
        stop = asyncio.Event()
        async with fleet_session() as session, asyncio.TaskGroup() as tg:
            self.fleet = Fleet(
                self.config.printers,
                self.config.controller,
                session,
                beds=beds,
                feed=self.store.feed,
                driver_factory=self.driver,
            )
            dispatcher = Dispatcher(self.store, self.files, self.fleet, self.config.jobs)
            for coordinator in self.fleet.coordinators.values():
                tg.create_task(coordinator.run(stop))
            tg.create_task(dispatcher.run(stop, tg))
            try:
                yield dispatcher
            finally:
                stop.set()


MakeFarm = Callable[..., SimFarm]


@pytest.fixture
def make_farm(tmp_path: Path) -> Iterator[MakeFarm]:
    """`make_farm([sims], jobs="retry_after_error = 1")`: one farm per test, its store closed after it."""
    made: list[SimFarm] = []

    def make(sims: list[SimPrinter], jobs: str = "") -> SimFarm:
        made.append(SimFarm(tmp_path, sims, jobs))
        return made[-1]

    yield make
    for farm in made:
        farm.store.close()


async def in_state(farm: SimFarm, job_id: int, state: JobState, timeout: float = 10.0) -> None:
    """Wait until the store has the job in `state`."""
    try:
        async with asyncio.timeout(timeout):
            while (await farm.job(job_id)).state is not state:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"job {job_id} is {(await farm.job(job_id)).state}, not {state}") from None


async def test_after_a_crash_each_dispatching_job_is_resolved_by_asking_its_printer(
    make_farm: MakeFarm,
) -> None:
    printing, printed, untouched = SimPrinter("p1"), SimPrinter("p2"), SimPrinter("p3")
    farm = make_farm([printing, printed, untouched])
    jobs = [await farm.add_job(f"part{i}.gcode") for i in range(3)]
    for job, sim in zip(jobs, (printing, printed, untouched), strict=True):
        await farm.crashed_while_dispatching(job, sim.name)
    # The upload reached p1 and its print runs; p2's print ran to its end while the daemon was down;
    # p3 never got the file.
    printing.start_print(jobs[0].remote_name)
    printed.start_print(jobs[1].remote_name)
    printed.finish()
    async with farm.running():
        await in_state(farm, jobs[0].id, JobState.PRINTING)
        await in_state(farm, jobs[1].id, JobState.COMPLETED)
        await in_state(farm, jobs[2].id, JobState.QUEUED)
        queued = await farm.job(jobs[2].id)
        assert queued.error == "the upload did not start the print"
        await asyncio.sleep(0.5)  # several rounds
        # Never uploaded again: the found print is followed, and p3's bed may hold a part (only an
        # operator says it does not), so the requeued job waits instead of going back to p3.
        assert [sim.uploads for sim in (printing, printed, untouched)] == [[], [], []]
        assert (await farm.job(jobs[2].id)).state is JobState.QUEUED
        printing.finish()
        await in_state(farm, jobs[0].id, JobState.COMPLETED)
    assert await farm.states(jobs[0].id) == ["queued", "dispatching", "printing", "completed"]
    assert await farm.states(jobs[1].id) == ["queued", "dispatching", "completed"]
    assert await farm.states(jobs[2].id) == ["queued", "dispatching", "queued"]


async def test_a_printer_error_requeues_the_job_once_then_it_fails(make_farm: MakeFarm) -> None:
    sim = SimPrinter("p1")
    farm = make_farm([sim], jobs="retry_after_error = 1\n")
    job = await farm.add_job()
    async with farm.running():
        await in_state(farm, job.id, JobState.PRINTING)
        sim.fail("Thermal runaway")
        await in_state(farm, job.id, JobState.QUEUED)
        assert (await farm.job(job.id)).error == "retry 1 of 1 after: Thermal runaway"
        assert farm.status("p1") is PrinterState.ERROR
        sim.clear_error()
        await eventually(lambda: farm.status("p1") is PrinterState.AWAITING_CLEAR, 10, "p1 awaiting clear")
        await farm.clear_bed("p1")
        await in_state(farm, job.id, JobState.PRINTING)
        sim.fail("Thermal runaway")
        await in_state(farm, job.id, JobState.FAILED)
        await asyncio.sleep(0.5)  # several rounds: the budget is spent, it stays failed
        assert (await farm.job(job.id)).state is JobState.FAILED
    assert sim.uploads == [job.remote_name, job.remote_name]
    assert await farm.states(job.id) == [
        "queued",
        "dispatching",
        "printing",
        "failed",
        "queued",
        "dispatching",
        "printing",
        "failed",
    ]


async def test_a_print_farmctl_did_not_send_makes_the_printer_busy(make_farm: MakeFarm) -> None:
    sim = SimPrinter("p1")
    farm = make_farm([sim])
    sim.start_print("benchy.gcode")  # someone started it at the printer
    job = await farm.add_job()
    async with farm.running() as dispatcher:
        await eventually(lambda: farm.status("p1") is PrinterState.PRINTING, 10, "p1 printing")
        await asyncio.sleep(0.5)  # several rounds
        assert sim.uploads == []
        assert (await farm.job(job.id)).state is JobState.QUEUED
        assert dispatcher.waiting.get(job.id) == "p1 printing a file farmctl did not send"
        sim.finish()
        # Its part is on the bed now: still nothing goes there until the operator clears it.
        await eventually(lambda: farm.status("p1") is PrinterState.AWAITING_CLEAR, 10, "p1 awaiting clear")
        await asyncio.sleep(0.3)
        assert sim.uploads == []
        await farm.clear_bed("p1")
        await in_state(farm, job.id, JobState.PRINTING)
    assert sim.uploads == [job.remote_name]


async def test_a_frame_from_before_an_end_event_reopens_nothing(make_farm: MakeFarm) -> None:
    # Each event is followed by a frame built just before it (OctoPrint's `current` frames lag).
    sim = SimPrinter("p1", stale_frames=True)
    farm = make_farm([sim])
    first, second = await farm.add_job("a.gcode"), await farm.add_job("b.gcode")
    async with farm.running():
        await in_state(farm, first.id, JobState.PRINTING)
        sim.finish()  # PrintDone, then a frame that still shows the print running
        await in_state(farm, first.id, JobState.COMPLETED)
        await asyncio.sleep(0.3)  # several rounds
        assert farm.status("p1") is PrinterState.AWAITING_CLEAR  # not printing the finished job
        sim.send_frame()  # the host's frames catch up
        await farm.clear_bed("p1")
        await in_state(farm, second.id, JobState.PRINTING)
        sim.send_frame()
        sim.cancel_print()  # cancelled at the printer, then a frame that shows it printing
        await in_state(farm, second.id, JobState.CANCELLED)
        await asyncio.sleep(0.3)
        assert farm.status("p1") is PrinterState.AWAITING_CLEAR
        # A cancelled job that looked printing again would be cancelled on the printer once more.
        assert sim.commands == []
    assert await farm.states(first.id) == ["queued", "dispatching", "printing", "completed"]
    assert await farm.states(second.id) == ["queued", "dispatching", "printing", "cancelled"]


async def test_a_cancelled_print_is_asked_to_stop_once_while_the_host_cancels(make_farm: MakeFarm) -> None:
    sim = SimPrinter("p1", slow_cancel=True)  # accepts the cancel, shows "Cancelling" for a while
    farm = make_farm([sim])
    job = await farm.add_job()
    async with farm.running():
        await in_state(farm, job.id, JobState.PRINTING)
        # The operator cancels the job, as JobQueue.cancel does: recorded first, then the print stopped.
        await farm.store.call(farm.store.sync.transition, job.id, JobState.CANCELLED, detail="by ops")
        assert farm.fleet is not None
        coordinator = farm.fleet.get("p1")
        assert coordinator is not None
        # The queue and the tracker's round (woken by the cancel) often ask at the same moment.
        await asyncio.gather(coordinator.stop_print(job.remote_name), coordinator.stop_print(job.remote_name))
        await asyncio.sleep(0.5)  # several rounds, each seeing the cancelled job's file still printing
        assert sim.commands == ["cancel"]  # a second cancel would count the print failed twice
        sim.cancel_print()
        await eventually(lambda: farm.status("p1") is PrinterState.AWAITING_CLEAR, 10, "p1 awaiting clear")
    assert [(f.successes, f.failures) for f in await sim.files()] == [(0, 1)]
