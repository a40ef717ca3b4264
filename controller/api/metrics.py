"""`/metrics`: Prometheus text exposition of ingest, writer, spool, queue and printer state."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from controller.api.auth import require
from controller.api.collector import CONTENT_TYPE, MetricSources
from controller.api.services import MetricsDep
from controller.config import Role

__all__ = ["MetricSources", "router"]

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require(Role.VIEWER))])
async def metrics(farm_metrics: MetricsDep) -> PlainTextResponse:
    """Prometheus text format. Role: viewer (scrape with a bearer token)."""
    return PlainTextResponse(await farm_metrics.exposition(), media_type=CONTENT_TYPE)
