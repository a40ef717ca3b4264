"""The job scheduler: ordering, fairness, capability matching, staggered start, and why a job cannot print."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import PrinterConfig
from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState, Requirements
from controller.jobs.scheduler import Assignment, PrinterSlot, can_print, explain_unprintable, schedule

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = 1000.0


def job(
    id: int,
    *,
    owner: str = "alice",
    priority: int = 0,
    age: float | None = None,
    req: Requirements | None = None,
    state: JobState = JobState.QUEUED,
) -> Job:
    """A job created `age` seconds before the others' reference time (default: later ids are newer)."""
    created = T0 - timedelta(seconds=age) if age is not None else T0 + timedelta(seconds=id)
    return Job(
        id=id,
        state=state,
        file_sha256="0" * 64,
        file_name=f"part{id}.gcode",
        owner=owner,
        priority=priority,
        requirements=req or Requirements(),
        created_at=created,
    )


def slot(
    name: str,
    *,
    group: str = "default",
    materials: tuple[str, ...] = ("PLA",),
    nozzle: float = 0.4,
    volume: tuple[float, float, float] = (220.0, 220.0, 250.0),
    state: PrinterState = PrinterState.IDLE,
) -> PrinterSlot:
    return PrinterSlot(name, group, materials, nozzle, volume, state)


def run(
    jobs: list[Job],
    slots: list[PrinterSlot],
    served: dict[str, float] | None = None,
) -> list[tuple[int, str]]:
    """schedule() with staggering off, as (job id, printer) pairs for compact asserts."""
    result = schedule(jobs, slots, now=NOW, last_start=None, owner_last_served=served)
    return [(a.job_id, a.printer) for a in result]


# --- order ------------------------------------------------------------------------------------------


def test_priority_beats_age() -> None:
    jobs = [job(1, age=3600, priority=0), job(2, age=1, priority=5)]
    assert run(jobs, [slot("p1")]) == [(2, "p1")]


def test_oldest_first_within_priority_then_lower_id() -> None:
    assert run([job(1, age=10), job(2, age=20)], [slot("p1")]) == [(2, "p1")]
    assert run([job(7, age=5), job(3, age=5)], [slot("p1")]) == [(3, "p1")]


def test_all_priorities_in_order() -> None:
    jobs = [job(1, priority=1), job(2, priority=3), job(3, priority=2)]
    assert run(jobs, [slot("p1"), slot("p2"), slot("p3")]) == [(2, "p1"), (3, "p2"), (1, "p3")]


def test_owner_fairness_across_rounds() -> None:
    # Alice's jobs are all older, yet once she has been served Bob goes next, then Alice again.
    jobs = [job(1, owner="alice", age=30), job(2, owner="alice", age=20), job(3, owner="bob", age=10)]
    assert run(jobs, [slot("p1")]) == [(1, "p1")]
    rest = jobs[1:]
    assert run(rest, [slot("p1")], {"alice": 100.0}) == [(3, "p1")]
    assert run(rest[:1], [slot("p1")], {"alice": 100.0, "bob": 200.0}) == [(2, "p1")]


def test_least_recently_served_owner_first() -> None:
    jobs = [job(1, owner="alice", age=30), job(2, owner="bob", age=20), job(3, owner="carol", age=10)]
    served = {"alice": 50.0, "bob": 10.0}
    # Carol was never served, Bob longest ago, Alice most recently.
    assert run(jobs, [slot("p1"), slot("p2"), slot("p3")], served) == [(3, "p1"), (2, "p2"), (1, "p3")]


def test_owner_fairness_within_a_round() -> None:
    jobs = [job(i, owner="alice") for i in range(1, 6)] + [job(9, owner="bob")]
    assert run(jobs, [slot("p1"), slot("p2"), slot("p3")]) == [(1, "p1"), (9, "p2"), (2, "p3")]


def test_fairness_within_a_round_with_history() -> None:
    jobs = [job(i, owner="alice") for i in range(1, 4)] + [job(i, owner="bob") for i in range(4, 7)]
    slots = [slot(f"p{i}") for i in range(1, 6)]
    got = run(jobs, slots, {"bob": 900.0, "alice": 950.0})
    assert [j for j, _ in got] == [4, 1, 5, 2, 6]


def test_fairness_does_not_override_priority() -> None:
    jobs = [job(1, owner="alice", priority=2), job(2, owner="alice", priority=2), job(3, owner="bob")]
    assert run(jobs, [slot("p1"), slot("p2")]) == [(1, "p1"), (2, "p2")]


# --- capability -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "ok"),
    [
        (Requirements(), True),
        (Requirements(material="PETG"), True),
        (Requirements(material="petg "), True),
        (Requirements(material="ABS"), False),
        (Requirements(nozzle=0.4), True),
        (Requirements(nozzle=0.4005), True),
        (Requirements(nozzle=0.401), True),
        (Requirements(nozzle=0.402), False),
        (Requirements(nozzle=0.6), False),
        (Requirements(size=(200.0, 300.0, 250.0)), True),
        (Requirements(size=(300.0, 200.0, 250.0)), True),  # rotated 90° in XY
        (Requirements(size=(300.0, 300.0, 10.0)), False),
        (Requirements(size=(200.0, 200.0, 251.0)), False),
        (Requirements(size=(250.0, 10.0, 300.0)), False),  # never tipped over: z stays z
        (Requirements(printer="mk4"), True),
        (Requirements(printer="MK4"), False),
        (Requirements(group="east"), True),
        (Requirements(group="west"), False),
        (Requirements(material="pla", nozzle=0.4, size=(1.0, 1.0, 1.0), printer="mk4", group="east"), True),
    ],
)
def test_can_print(req: Requirements, ok: bool) -> None:
    for state in (PrinterState.IDLE, PrinterState.OFFLINE):  # capability ignores state
        mk4 = slot("mk4", group="east", materials=("PLA", "PETG"), volume=(300.0, 200.0, 250.0), state=state)
        assert can_print(req, mk4) is ok


def test_jobs_go_to_matching_printers() -> None:
    slots = [
        slot("a", materials=("PETG",)),
        slot("b", nozzle=0.6),
        slot("c", volume=(350.0, 350.0, 350.0)),
        slot("d", group="west"),
    ]
    jobs = [
        job(1, req=Requirements(group="west")),
        job(2, req=Requirements(size=(340.0, 10.0, 10.0))),
        job(3, req=Requirements(nozzle=0.6)),
        job(4, req=Requirements(material="petg")),
        job(5, req=Requirements(printer="c")),  # c is taken by job 2 before job 5's turn
    ]
    assert run(jobs, slots) == [(1, "d"), (2, "c"), (3, "b"), (4, "a")]


@pytest.mark.parametrize("state", [s for s in PrinterState if s is not PrinterState.IDLE])
def test_only_idle_printers_get_jobs(state: PrinterState) -> None:
    assert run([job(1), job(2)], [slot("p1", state=state)]) == []
    assert run([job(1)], [slot("p1", state=state), slot("p2")]) == [(1, "p2")]


@pytest.mark.parametrize("state", [s for s in JobState if s is not JobState.QUEUED])
def test_only_queued_jobs_are_scheduled(state: JobState) -> None:
    assert run([job(1, state=state), job(2)], [slot("p1"), slot("p2")]) == [(2, "p1")]


# --- placement --------------------------------------------------------------------------------------


def test_no_head_of_line_blocking() -> None:
    slots = [slot("petg", materials=("PETG",), state=PrinterState.PRINTING), slot("pla")]
    jobs = [job(1, priority=9, req=Requirements(material="PETG")), job(2, priority=0)]
    assert run(jobs, slots) == [(2, "pla")]


def test_waiting_high_priority_job_is_not_starved() -> None:
    # The low-priority job could use the only free printer, but the high-priority one comes first.
    jobs = [job(1, priority=0, age=100), job(2, priority=9, req=Requirements(material="PLA"))]
    assert run(jobs, [slot("p1")]) == [(2, "p1")]


def test_one_job_per_printer_and_one_printer_per_job() -> None:
    assert run([job(1), job(2), job(3)], [slot("p1")]) == [(1, "p1")]
    assert run([job(1)], [slot("p1"), slot("p2"), slot("p3")]) == [(1, "p1")]
    assert run([job(1), job(2)], [slot("p1"), slot("p2")]) == [(1, "p1"), (2, "p2")]


def test_most_constrained_printer_preferred() -> None:
    # "alpha" would win on name, but it is the only printer for the PETG job that comes next.
    slots = [slot("alpha", materials=("PLA", "PETG")), slot("zeta")]
    jobs = [job(1, priority=1), job(2, req=Requirements(material="PETG"))]
    assert run(jobs, slots) == [(1, "zeta"), (2, "alpha")]


def test_most_constrained_counts_remaining_jobs() -> None:
    slots = [slot("a", materials=("PLA", "PETG")), slot("b", materials=("PLA", "ABS")), slot("c")]
    jobs = [job(1), job(2, req=Requirements(material="PETG")), job(3, req=Requirements(material="PETG"))]
    # a is wanted by both PETG jobs still waiting, b and c by none: b wins on name.
    assert run(jobs, slots) == [(1, "b"), (2, "a")]


def test_printer_tie_broken_by_name() -> None:
    assert run([job(1)], [slot("zz"), slot("mm"), slot("aa")]) == [(1, "aa")]


# --- staggered start --------------------------------------------------------------------------------


def test_staggered_start_one_per_call() -> None:
    jobs = [job(1), job(2), job(3)]
    slots = [slot("p1"), slot("p2")]
    assert schedule(jobs, slots, now=NOW, last_start=None, min_gap_s=60) == [Assignment(1, "p1")]
    assert schedule(jobs, slots, now=NOW, last_start=NOW - 60, min_gap_s=60) == [Assignment(1, "p1")]
    assert schedule(jobs, slots, now=NOW, last_start=NOW - 1000, min_gap_s=60) == [Assignment(1, "p1")]


def test_staggered_start_respects_gap() -> None:
    jobs = [job(1)]
    assert schedule(jobs, [slot("p1")], now=NOW, last_start=NOW - 59.9, min_gap_s=60) == []
    assert schedule(jobs, [slot("p1")], now=NOW, last_start=NOW, min_gap_s=60) == []


def test_staggering_off_assigns_all_and_ignores_last_start() -> None:
    jobs = [job(1), job(2)]
    got = schedule(jobs, [slot("p1"), slot("p2")], now=NOW, last_start=NOW, min_gap_s=0)
    assert got == [Assignment(1, "p1"), Assignment(2, "p2")]


def test_staggered_start_skips_unplaceable_jobs() -> None:
    jobs = [job(1, priority=5, req=Requirements(material="ABS")), job(2)]
    assert schedule(jobs, [slot("p1")], now=NOW, last_start=None, min_gap_s=30) == [Assignment(2, "p1")]


def test_nothing_to_do() -> None:
    assert run([], [slot("p1")]) == []
    assert run([job(1)], []) == []


# --- explain_unprintable ----------------------------------------------------------------------------

FARM = [
    slot("mk4", group="east", materials=("PLA", "PETG"), nozzle=0.4, volume=(250.0, 210.0, 220.0)),
    slot("xl", group="west", materials=("PLA", "ASA"), nozzle=0.6, volume=(360.0, 360.0, 360.0)),
]


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (Requirements(material="nylon"), "no printer has material 'NYLON' (loaded: PLA, PETG, ASA)"),
        (Requirements(printer="x"), "no printer named 'x'"),
        (Requirements(group="g"), "no printer in group 'g'"),
        (Requirements(nozzle=0.8), "no printer with a 0.8 mm nozzle"),
        (Requirements(size=(400.0, 300.0, 10.0)), "the print (400 x 300 x 10 mm) fits no build volume"),
        (
            Requirements(material="PETG", nozzle=0.6, group="west"),
            "no printer offers all of: material PETG, 0.6 mm nozzle, group west",
        ),
        (
            Requirements(size=(300.0, 300.0, 10.0), printer="mk4"),
            "no printer offers all of: build volume for 300 x 300 x 10 mm, printer mk4",
        ),
        (
            Requirements(material="nylon", nozzle=0.8),
            "no printer has material 'NYLON' (loaded: PLA, PETG, ASA); no printer with a 0.8 mm nozzle",
        ),
    ],
)
def test_explain_unprintable(req: Requirements, message: str) -> None:
    assert explain_unprintable(req, FARM) == message


@pytest.mark.parametrize(
    "req",
    [
        Requirements(),
        Requirements(material="asa", nozzle=0.6, size=(350.0, 10.0, 350.0), group="west"),
        Requirements(size=(210.0, 250.0, 220.0), printer="mk4"),
    ],
)
def test_explain_printable_is_none(req: Requirements) -> None:
    assert explain_unprintable(req, FARM) is None
    # A printer that could ever take the job counts, whatever it is doing now.
    busy = [
        PrinterSlot(s.name, s.group, s.materials, s.nozzle, s.build_volume, PrinterState.ERROR) for s in FARM
    ]
    assert explain_unprintable(req, busy) is None


def test_explain_with_no_printers() -> None:
    assert explain_unprintable(Requirements(), []) == "no printers are configured"


def test_slot_from_config() -> None:
    config = PrinterConfig(
        name="mk4", url="http://mk4.local", api_key_file=Path("k"), group="east", materials=["pla", "petg"]
    )
    assert PrinterSlot.from_config(config, PrinterState.IDLE) == slot(
        "mk4", group="east", materials=("PLA", "PETG"), nozzle=0.4, volume=(220.0, 220.0, 250.0)
    )


# --- properties -------------------------------------------------------------------------------------

MATERIALS = ("PLA", "PETG", "ASA")
GROUPS = ("east", "west")
NOZZLES = (0.4, 0.6)
VOLUMES = ((180.0, 180.0, 180.0), (250.0, 210.0, 220.0), (360.0, 360.0, 360.0))
NAMES = tuple(f"p{i}" for i in range(8))


@st.composite
def slots_strategy(draw: st.DrawFn) -> list[PrinterSlot]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=6))
    return [
        PrinterSlot(
            name,
            draw(st.sampled_from(GROUPS)),
            tuple(draw(st.lists(st.sampled_from(MATERIALS), min_size=1, max_size=3, unique=True))),
            draw(st.sampled_from(NOZZLES)),
            draw(st.sampled_from(VOLUMES)),
            # Mostly idle, so rounds with several assignments are common.
            draw(st.sampled_from([PrinterState.IDLE] * 4 + list(PrinterState))),
        )
        for name in names
    ]


requirements_strategy = st.builds(
    Requirements,
    material=st.none() | st.sampled_from((*MATERIALS, "pla", "NYLON")),
    nozzle=st.none() | st.sampled_from((*NOZZLES, 0.8)),
    size=st.none()
    | st.tuples(
        st.floats(1, 400, allow_nan=False),
        st.floats(1, 400, allow_nan=False),
        st.floats(1, 400, allow_nan=False),
    ),
    printer=st.none() | st.sampled_from(NAMES),
    group=st.none() | st.sampled_from(GROUPS),
)


@st.composite
def jobs_strategy(draw: st.DrawFn) -> list[Job]:
    ids = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=12))
    return [
        job(
            i,
            owner=draw(st.sampled_from(("alice", "bob", "carol"))),
            priority=draw(st.integers(0, 2)),
            age=draw(st.integers(0, 5)),
            req=draw(requirements_strategy),
            state=draw(st.sampled_from([JobState.QUEUED] * 4 + list(JobState))),
        )
        for i in ids
    ]


@settings(max_examples=300, database=None, deadline=None)
@given(
    jobs=jobs_strategy(),
    slots=slots_strategy(),
    served=st.dictionaries(st.sampled_from(("alice", "bob", "carol")), st.floats(0, 2000, allow_nan=False)),
    data=st.data(),
)
def test_schedule_properties(
    jobs: list[Job], slots: list[PrinterSlot], served: dict[str, float], data: st.DataObject
) -> None:
    result = schedule(jobs, slots, now=NOW, last_start=None, min_gap_s=0, owner_last_served=served)
    by_job = {j.id: j for j in jobs}
    by_name = {s.name: s for s in slots}

    assert len({a.job_id for a in result}) == len(result)
    assert len({a.printer for a in result}) == len(result)
    for a in result:
        j, s = by_job[a.job_id], by_name[a.printer]
        assert j.state is JobState.QUEUED
        assert s.state is PrinterState.IDLE
        assert can_print(j.requirements, s)

    assigned_jobs = {a.job_id for a in result}
    taken = {a.printer for a in result}
    left_free = [s for s in slots if s.state is PrinterState.IDLE and s.name not in taken]
    for j in jobs:
        if j.state is not JobState.QUEUED or j.id in assigned_jobs:
            continue
        # Nothing placeable is left behind...
        assert not any(can_print(j.requirements, s) for s in left_free)
        # ...and no lower-priority job took a printer this one could have used.
        for a in result:
            if by_job[a.job_id].priority < j.priority:
                assert not can_print(j.requirements, by_name[a.printer])

    # Deterministic, and independent of the order the caller lists jobs and printers in.
    shuffled_jobs = data.draw(st.permutations(jobs))
    shuffled_slots = data.draw(st.permutations(slots))
    again = schedule(shuffled_jobs, shuffled_slots, now=NOW, last_start=None, owner_last_served=dict(served))
    assert again == result


@settings(max_examples=100, database=None, deadline=None)
@given(jobs=jobs_strategy(), slots=slots_strategy(), gap=st.floats(1, 100), since=st.floats(0, 200))
def test_staggered_properties(jobs: list[Job], slots: list[PrinterSlot], gap: float, since: float) -> None:
    last_start = NOW - since
    result = schedule(jobs, slots, now=NOW, last_start=last_start, min_gap_s=gap)
    unlimited = schedule(jobs, slots, now=NOW, last_start=None)
    if NOW - last_start < gap:
        assert result == []
    else:
        assert result == unlimited[:1]
