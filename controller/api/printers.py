"""`/api/v1/printers`: live state of every printer, its bed-clear confirmation and the material loaded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from controller.api.auth import Caller, require
from controller.api.errors import JSON_BODY_LIMIT, TOO_LARGE, error_responses, success
from controller.api.examples import HISTORY_EXAMPLE, IDLE_EXAMPLE, PRINTER_EXAMPLE, parameter
from controller.api.services import FleetDep, QueueDep
from controller.config import Role
from controller.config.errors import NAME
from controller.core.errors import NotFound
from controller.core.events import PrinterChanged
from controller.fleet.coordinator import Fleet, PrinterCoordinator
from controller.fleet.materials import MATERIAL_PATTERN, MAX_HISTORY, MAX_MATERIALS, MaterialLoad, normalise
from controller.fleet.state import PrinterState
from controller.jobs import job_id_of

router = APIRouter(prefix="/api/v1/printers", tags=["printers"])
viewer = Depends(require(Role.VIEWER))
_BAD_NAME = "Not a printer name: letters, digits, _ . - and at most 64 characters"
_NO_PRINTER = ("No printer of that name", "no printer named 'mk4-9'")
_BAD_NAME_SAID = "path.name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'"
PrinterName = Annotated[
    str,
    Path(
        pattern=NAME,
        description="The printer's name from the config",
        openapi_examples=parameter("mk4-1", "A printer"),
    ),
]


class TemperatureOut(BaseModel):
    actual: float | None = Field(description="Measured °C", examples=[214.8])
    target: float | None = Field(description="Target °C; 0 means off", examples=[215.0])


class MaintenanceOut(BaseModel):
    """Why and since when a printer is out of service."""

    reason: str = Field(description="As the operator gave it", examples=["nozzle swap"])
    since: datetime = Field(description="When it was taken out (UTC)", examples=["2026-12-02T10:02:40+00:00"])
    by: str | None = Field(description="Name of the API token that took it out", examples=["ops"])


class PrinterOut(BaseModel):
    """One printer as the farm sees it."""

    model_config = ConfigDict(json_schema_extra={"examples": [PRINTER_EXAMPLE]})

    name: str = Field(description="Name from the config", examples=["mk4-1"])
    state: PrinterState = Field(description="offline | idle | printing | paused | error | awaiting_clear")
    detail: str = Field(description="The host's own words for its state", examples=["Printing"])
    job_id: int | None = Field(None, description="The farm job whose file is on the printer, if any")
    file: str | None = Field(None, description="File selected on the printer", examples=["job.gcode"])
    progress: float | None = Field(None, description="Print progress in percent, 0 to 100", examples=[42.5])
    temperatures: dict[str, TemperatureOut] = Field(description="tool0…, bed, chamber")
    materials: list[str] = Field(
        description="Materials loaded now (POST …/material changes them; the config's list until the first)",
        examples=[["PLA", "PETG"]],
    )
    nozzle: float = Field(description="Nozzle diameter, mm", examples=[0.4])
    group: str = Field(examples=["prusa"])
    bed_clear: bool = Field(
        description="An operator confirmed the bed is empty since the last print; jobs start only then"
    )
    error: str | None = Field(None, description="The printer's error message in state error")
    last_seen: datetime | None = Field(
        None, description="Last answer from its host (UTC)", examples=["2026-12-02T09:31:12+00:00"]
    )
    maintenance: MaintenanceOut | None = Field(
        None,
        description="Set while the printer is out of service (it takes no new job); "
        "POST/DELETE …/maintenance change it",
    )


def printer_out(coordinator: PrinterCoordinator, fleet: Fleet) -> PrinterOut:
    status, printer = coordinator.status, coordinator.printer
    return PrinterOut(
        name=status.name,
        state=status.state,
        detail=status.detail,
        job_id=job_id_of(status.file),
        file=status.file,
        progress=status.progress,
        temperatures={
            k: TemperatureOut(actual=t.actual, target=t.target) for k, t in status.temperatures.items()
        },
        materials=list(fleet.materials.of(printer.name)),
        nozzle=printer.nozzle,
        group=printer.group,
        bed_clear=coordinator.bed_clear,
        error=status.error,
        last_seen=status.last_seen,
        maintenance=_maintenance(fleet, printer.name),
    )


def _maintenance(fleet: Fleet, name: str) -> MaintenanceOut | None:
    spell = fleet.maintenance.of(name)
    return None if spell is None else MaintenanceOut(reason=spell.reason, since=spell.since, by=spell.by)


def _coordinator(fleet: Fleet, name: str) -> PrinterCoordinator:
    coordinator = fleet.get(name)
    if coordinator is None:
        raise NotFound(f"no printer named {name!r}")
    return coordinator


@router.get(
    "",
    summary="List the printers",
    dependencies=[viewer],
    response_model=list[PrinterOut],
    responses={
        **success(
            "Every printer, in the config's order", [PRINTER_EXAMPLE, {**IDLE_EXAMPLE, "name": "mk4-2"}]
        ),
        **error_responses(Role.VIEWER),
    },
)
def list_printers(fleet: FleetDep) -> list[PrinterOut]:
    """Every printer in the config, in its order: what each is doing (state, the host's own words, the
    job and its progress, temperatures), what it is loaded with, whether its bed is clear and whether it
    is out of service. The farm's picture from its last poll of each host.

    Role: viewer."""
    return [printer_out(c, fleet) for c in fleet.coordinators.values()]


@router.get(
    "/{name}",
    summary="One printer",
    dependencies=[viewer],
    response_model=PrinterOut,
    responses={
        **success("The printer"),
        **error_responses(Role.VIEWER, {404: _NO_PRINTER, 422: (_BAD_NAME, _BAD_NAME_SAID)}),
    },
)
def get_printer(name: PrinterName, fleet: FleetDep) -> PrinterOut:
    """One printer by its name in the config, as the printer list shows it.

    Role: viewer."""
    return printer_out(_coordinator(fleet, name), fleet)


@router.post(
    "/{name}/clear",
    summary="Confirm the bed is clear",
    response_model=PrinterOut,
    dependencies=[Depends(require(Role.OPERATOR))],
    responses={
        **success("The printer, its bed now clear", IDLE_EXAMPLE),
        **error_responses(
            Role.OPERATOR,
            {
                404: _NO_PRINTER,
                409: (
                    "Printing, or the bed is clear already",
                    "printer 'mk4-1' is clear already: nothing to clear",
                ),
                422: (_BAD_NAME, _BAD_NAME_SAID),
            },
        ),
    },
)
async def clear_printer(name: PrinterName, queue: QueueDep) -> PrinterOut:
    """Someone took the finished print off the bed: the printer may start the next job, and the
    scheduler runs a round at once. A printer waits in `awaiting_clear` after every print, so nothing
    prints onto a part still on the bed. No body.

    Role: operator."""
    return printer_out(await queue.clear(name), queue.fleet)  # NotFound → 404


# Documented with the pattern; checked by `normalise`, whose message says what a material name is.
MaterialName = Annotated[
    str, WithJsonSchema({"type": "string", "pattern": MATERIAL_PATTERN, "examples": ["PETG"]})
]
_LOAD_EXAMPLES: dict[str, Any] = {
    "one spool": {"summary": "A PETG spool on a single-extruder printer", "value": {"materials": ["PETG"]}},
    "multi-material": {
        "summary": "Every spool of a multi-material unit",
        "value": {"materials": ["PLA", "PETG"]},
    },
}


class MaterialsIn(BaseModel):
    """What is loaded on the printer from now on; replaces the list it had."""

    model_config = ConfigDict(extra="forbid")

    materials: list[MaterialName] = Field(
        min_length=1,
        max_length=MAX_MATERIALS,
        description="Material names, any case (kept upper-case): one word of letters, digits and + . _ -, "
        "at most 32 characters",
        examples=[["PETG"], ["PLA", "PETG"]],
    )

    @field_validator("materials")
    @classmethod
    def _materials(cls, value: list[str]) -> list[str]:
        try:
            return list(normalise(value))
        except ValueError as exc:  # our message alone, without pydantic's "Value error, " before it
            raise PydanticCustomError("material", str(exc)) from None


class MaterialLoadOut(BaseModel):
    """One recorded change of a printer's loaded materials."""

    materials: list[str] = Field(description="Loaded from then on", examples=[["PETG"]])
    at: datetime = Field(description="When it was recorded (UTC)", examples=["2026-12-01T16:20:05+00:00"])
    by: str | None = Field(description="Name of the API token that recorded it", examples=["ops"])

    @classmethod
    def of(cls, load: MaterialLoad) -> MaterialLoadOut:
        return cls(materials=list(load.materials), at=load.at, by=load.by)


@router.post(
    "/{name}/material",
    summary="Change the loaded material",
    max_body_size=JSON_BODY_LIMIT,
    response_model=PrinterOut,
    responses={
        **success("The printer with its new materials", {**PRINTER_EXAMPLE, "materials": ["PETG"]}),
        **error_responses(
            Role.OPERATOR,
            {
                400: ("The body cannot be read as text (not UTF-8)", "There was an error parsing the body"),
                404: _NO_PRINTER,
                413: TOO_LARGE,
                422: (
                    f"{_BAD_NAME}; or the body is not JSON, has no material, or not a material name",
                    "body.materials: 'P L A' is not a material name: one word of letters, digits and "
                    "+ . _ -, at most 32 characters (PLA, PETG, PA12-CF)",
                ),
            },
        ),
    },
)
async def load_material(
    name: PrinterName,
    body: Annotated[MaterialsIn, Body(openapi_examples=_LOAD_EXAMPLES)],
    fleet: FleetDep,
    caller: Annotated[Caller, Depends(require(Role.OPERATOR))],
) -> PrinterOut:
    """Record the materials loaded on the printer now, with the time and the caller's token name; queued
    jobs are matched against them from the next scheduling round, which this starts. Allowed in any
    state: a spool swapped mid-print (multi-colour) counts for the next job.

    Role: operator."""
    coordinator = _coordinator(fleet, name)
    await fleet.materials.change(name, body.materials, by=caller.name)
    # The dispatcher takes a printer change as a reason for a round: a job waiting for this material
    # starts now rather than at the next dispatch interval.
    fleet.feed.publish_nowait(PrinterChanged(coordinator.status))
    return printer_out(coordinator, fleet)


@router.get(
    "/{name}/materials/history",
    summary="Material change history",
    dependencies=[viewer],
    response_model=list[MaterialLoadOut],
    responses={
        **success("The changes, newest first", HISTORY_EXAMPLE),
        **error_responses(
            Role.VIEWER,
            {
                404: _NO_PRINTER,
                422: (
                    f"{_BAD_NAME}; or a bad limit",
                    "query.limit: Input should be greater than or equal to 1",
                ),
            },
        ),
    },
)
async def material_history(
    name: PrinterName,
    fleet: FleetDep,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_HISTORY,
            description="At most this many, newest first",
            openapi_examples=parameter(20, "The last 20 changes"),
        ),
    ] = 50,
) -> list[MaterialLoadOut]:
    """Which spools were loaded on the printer when, and who said so: every recorded change, newest
    first. Empty until the first change: until then the config's list is in use.

    Role: viewer."""
    _coordinator(fleet, name)
    return [MaterialLoadOut.of(load) for load in await fleet.materials.history(name, limit)]
