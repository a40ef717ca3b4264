"""Job scheduler: which queued job goes to which free printer. Pure: no I/O, no clock, no asyncio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.config import PrinterConfig
from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState, Requirements

NOZZLE_TOLERANCE = 0.001
# Float noise (0.1 + 0.2 style) must not turn an exact 0.001 mm difference into a mismatch.
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class PrinterSlot:
    """A printer as the scheduler sees it: what it can do and whether it is free."""

    name: str
    group: str
    materials: tuple[str, ...]
    nozzle: float
    build_volume: tuple[float, float, float]
    state: PrinterState
    job_id: int | None = None  # the farm job on it, for telling why others wait
    maintenance: str | None = None  # why it is out of service; it takes no job meanwhile

    @property
    def free(self) -> bool:
        """Idle and in service: it may take a job this round."""
        return self.state is PrinterState.IDLE and self.maintenance is None

    @classmethod
    def from_config(
        cls,
        config: PrinterConfig,
        state: PrinterState,
        job_id: int | None = None,
        *,
        materials: Sequence[str] | None = None,
        maintenance: str | None = None,
    ) -> PrinterSlot:
        """The slot for a configured printer in its current state, with the `materials` loaded on it
        now (controller.fleet.materials; the config's list only where none is given) and the reason
        it is out of service, if it is."""
        return cls(
            config.name,
            config.group,
            tuple(config.materials if materials is None else materials),
            config.nozzle,
            config.build_volume,
            state,
            job_id,
            maintenance,
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """Start job `job_id` on printer `printer`."""

    job_id: int
    printer: str


def material_ok(material: str, slot: PrinterSlot) -> bool:
    wanted = material.strip().upper()
    return any(m.strip().upper() == wanted for m in slot.materials)


def nozzle_ok(nozzle: float, slot: PrinterSlot) -> bool:
    return abs(nozzle - slot.nozzle) <= NOZZLE_TOLERANCE + _EPS


def size_ok(size: tuple[float, float, float], slot: PrinterSlot) -> bool:
    x, y, z = size
    vx, vy, vz = slot.build_volume
    # A part may be rotated 90° on the bed, but never tipped over: z stays z.
    return z <= vz and ((x <= vx and y <= vy) or (y <= vx and x <= vy))


def can_print(req: Requirements, slot: PrinterSlot) -> bool:
    """True if the printer can take the job by capability alone (its state is ignored)."""
    return (
        (req.material is None or material_ok(req.material, slot))
        and (req.nozzle is None or nozzle_ok(req.nozzle, slot))
        and (req.size is None or size_ok(req.size, slot))
        and (req.printer is None or req.printer == slot.name)
        and (req.group is None or req.group == slot.group)
    )


def _mm(value: float) -> str:
    return f"{value:g}"


def explain_unprintable(req: Requirements, slots: Sequence[PrinterSlot]) -> str | None:
    """None if some configured printer could ever take the job; else a message saying why none can."""
    if any(can_print(req, slot) for slot in slots):
        return None
    if not slots:
        return "no printers are configured"
    single: list[str] = []  # constraints no printer meets even on their own
    joint: list[str] = []  # every constraint the job sets, for when only the combination fails
    if req.material is not None:
        material = req.material.strip().upper()
        joint.append(f"material {material}")
        if not any(material_ok(material, s) for s in slots):
            loaded = ", ".join(dict.fromkeys(m.strip().upper() for s in slots for m in s.materials))
            single.append(f"no printer has material {material!r} (loaded: {loaded})")
    if req.nozzle is not None:
        joint.append(f"{_mm(req.nozzle)} mm nozzle")
        if not any(nozzle_ok(req.nozzle, s) for s in slots):
            single.append(f"no printer with a {_mm(req.nozzle)} mm nozzle")
    if req.size is not None:
        dims = " x ".join(_mm(d) for d in req.size)
        joint.append(f"build volume for {dims} mm")
        if not any(size_ok(req.size, s) for s in slots):
            single.append(f"the print ({dims} mm) fits no build volume")
    if req.printer is not None:
        joint.append(f"printer {req.printer}")
        if not any(s.name == req.printer for s in slots):
            single.append(f"no printer named {req.printer!r}")
    if req.group is not None:
        joint.append(f"group {req.group}")
        if not any(s.group == req.group for s in slots):
            single.append(f"no printer in group {req.group!r}")
    if single:
        return "; ".join(single)
    return "no printer offers all of: " + ", ".join(joint)


def _served_key(owner: str, history: Mapping[str, float], this_round: Mapping[str, int]) -> tuple[int, float]:
    # Three tiers so that "served in this round" sorts after any recorded time, even one from a clock
    # that runs ahead of `now`: never served, served before (by time), served this round (in order).
    if owner in this_round:
        return (2, float(this_round[owner]))
    if owner in history:
        return (1, history[owner])
    return (0, 0.0)


def _next_job(pending: list[Job], history: Mapping[str, float], this_round: Mapping[str, int]) -> Job | None:
    """Highest priority first; within it the least recently served owner's oldest job."""
    if not pending:
        return None
    top = max(job.priority for job in pending)
    heads: dict[str, Job] = {}
    for job in pending:
        if job.priority != top:
            continue
        head = heads.get(job.owner)
        if head is None or (job.created_at, job.id) < (head.created_at, head.id):
            heads[job.owner] = job
    return min(
        heads.values(),
        key=lambda j: (_served_key(j.owner, history, this_round), j.created_at, j.id, j.owner),
    )


def schedule(
    queued: Sequence[Job],
    slots: Sequence[PrinterSlot],
    *,
    now: float,
    last_start: float | None,
    min_gap_s: float = 0.0,
    owner_last_served: Mapping[str, float] | None = None,
) -> list[Assignment]:
    """Assign queued jobs to free capable printers for one round; deterministic for the same input."""
    limit: int | None = None
    if min_gap_s > 0:
        if last_start is not None and now - last_start < min_gap_s:
            return []
        limit = 1  # staggered start: spread print starts, and their heat-up load, across the farm

    free = {slot.name: slot for slot in sorted(slots, key=lambda s: s.name) if slot.free}
    pending = [job for job in queued if job.state is JobState.QUEUED]
    # Capability is fixed for the round, so work it out once; printers only ever leave `free`.
    capable = {
        job.id: {name for name, slot in free.items() if can_print(job.requirements, slot)} for job in pending
    }
    history = owner_last_served or {}
    this_round: dict[str, int] = {}
    assignments: list[Assignment] = []

    while free and (limit is None or len(assignments) < limit):
        job = _next_job(pending, history, this_round)
        if job is None:
            break
        pending.remove(job)
        options = capable[job.id] & free.keys()
        if not options:
            # Skipped, not waited for: later jobs may use other printers, and since printers are only
            # taken from here on, none of them could have suited this job anyway.
            continue
        # Most constrained fit: leave versatile printers for the jobs still waiting.
        printer = min(options, key=lambda name: (sum(name in capable[j.id] for j in pending), name))
        del free[printer]
        this_round[job.owner] = len(assignments)
        assignments.append(Assignment(job.id, printer))
    return assignments
