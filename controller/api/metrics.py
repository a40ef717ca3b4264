"""`/metrics`: Prometheus text exposition of ingest, writer, spool, queue and printer state."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from controller.api.auth import require
from controller.api.collector import CONTENT_TYPE, MetricSources
from controller.api.errors import success
from controller.api.services import MetricsDep
from controller.config import Role

__all__ = ["MetricSources", "router"]

router = APIRouter(tags=["metrics"])


# A shortened answer: the whole one has every state of every printer and job, and the ingest, writer,
# spool and event stream figures.
_EXAMPLE = """\
# HELP farmctl_printer_state 1 for each printer's current state
# TYPE farmctl_printer_state gauge
farmctl_printer_state{printer="mk4-1",state="offline"} 0.0
farmctl_printer_state{printer="mk4-1",state="idle"} 0.0
farmctl_printer_state{printer="mk4-1",state="printing"} 1.0
# HELP farmctl_jobs Jobs by state
# TYPE farmctl_jobs gauge
farmctl_jobs{state="queued"} 3.0
farmctl_jobs{state="printing"} 1.0
# HELP farmctl_event_streams Open event streams
# TYPE farmctl_event_streams gauge
farmctl_event_streams 2.0
"""


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(require(Role.VIEWER))],
    responses=success(
        "The figures in Prometheus' text format (the example is shortened)", _EXAMPLE, media="text/plain"
    ),
)
async def metrics(farm_metrics: MetricsDep) -> PlainTextResponse:
    """The farm's health for Prometheus or VictoriaMetrics to scrape (with a bearer token): printers by
    state, jobs by state, sensor readings taken and refused, database writes, the spool, the event feed
    and open event streams.

    Role: viewer."""
    return PlainTextResponse(await farm_metrics.exposition(), media_type=CONTENT_TYPE)
