"""`/api/v1/printers`: live state of every printer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from controller.api.auth import require
from controller.api.errors import error_responses
from controller.api.services import FleetDep, QueueDep
from controller.config import Role
from controller.config.errors import NAME
from controller.core.errors import NotFound
from controller.fleet.coordinator import Fleet, PrinterCoordinator
from controller.fleet.state import PrinterState
from controller.jobs import job_id_of

router = APIRouter(prefix="/api/v1/printers", tags=["printers"])
viewer = Depends(require(Role.VIEWER))
_BAD_NAME = "Not a printer name: letters, digits, _ . - and at most 64 characters"
PrinterName = Annotated[
    str, Path(pattern=NAME, description="The printer's name from the config", examples=["mk4-1"])
]


class TemperatureOut(BaseModel):
    actual: float | None = Field(description="Measured °C", examples=[214.8])
    target: float | None = Field(description="Target °C; 0 means off", examples=[215.0])


class PrinterOut(BaseModel):
    """One printer as the farm sees it."""

    name: str = Field(description="Name from the config", examples=["mk4-1"])
    state: PrinterState = Field(description="offline | idle | printing | paused | error | awaiting_clear")
    detail: str = Field(description="The host's own words for its state", examples=["Printing"])
    job_id: int | None = Field(None, description="The farm job whose file is on the printer, if any")
    file: str | None = Field(None, description="File selected on the printer", examples=["job.gcode"])
    progress: float | None = Field(None, description="Print progress in percent, 0 to 100", examples=[42.5])
    temperatures: dict[str, TemperatureOut] = Field(description="tool0…, bed, chamber")
    materials: list[str] = Field(examples=[["PLA", "PETG"]])
    nozzle: float = Field(description="Nozzle diameter, mm", examples=[0.4])
    group: str = Field(examples=["prusa"])
    bed_clear: bool = Field(
        description="An operator confirmed the bed is empty since the last print; jobs start only then"
    )
    error: str | None = Field(None, description="The printer's error message in state error")
    last_seen: datetime | None = Field(None, description="Last answer from its host (UTC)")


def printer_out(coordinator: PrinterCoordinator) -> PrinterOut:
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
        materials=printer.materials,
        nozzle=printer.nozzle,
        group=printer.group,
        bed_clear=coordinator.bed_clear,
        error=status.error,
        last_seen=status.last_seen,
    )


def _coordinator(fleet: Fleet, name: str) -> PrinterCoordinator:
    coordinator = fleet.get(name)
    if coordinator is None:
        raise NotFound(f"no printer named {name!r}")
    return coordinator


@router.get(
    "", dependencies=[viewer], response_model=list[PrinterOut], responses=error_responses(Role.VIEWER)
)
def list_printers(fleet: FleetDep) -> list[PrinterOut]:
    """Every configured printer, in config order. Role: viewer."""
    return [printer_out(c) for c in fleet.coordinators.values()]


@router.get(
    "/{name}",
    dependencies=[viewer],
    response_model=PrinterOut,
    responses=error_responses(Role.VIEWER, {404: "No printer of that name", 422: _BAD_NAME}),
)
def get_printer(name: PrinterName, fleet: FleetDep) -> PrinterOut:
    """One printer by name. Role: viewer."""
    return printer_out(_coordinator(fleet, name))


@router.post(
    "/{name}/clear",
    response_model=PrinterOut,
    dependencies=[Depends(require(Role.OPERATOR))],
    responses=error_responses(
        Role.OPERATOR, {404: "No printer of that name", 409: "Not awaiting clear", 422: _BAD_NAME}
    ),
)
async def clear_printer(name: PrinterName, queue: QueueDep) -> PrinterOut:
    """Confirm the bed is clear so the next job may start; 409 while printing or when already clear.
    Role: operator."""
    return printer_out(await queue.clear(name))  # NotFound → 404
