"""The parts of the daemon the API works with, as one typed value per app, and the dependencies that
hand them to routes (`queue: QueueDep`) instead of untyped `request.app.state` lookups."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request

from controller.api.collector import FarmMetrics
from controller.api.tokens import TokenRegistry
from controller.config import Config
from controller.fleet.coordinator import Fleet
from controller.jobs.queue import JobQueue

if TYPE_CHECKING:  # events.py imports this module
    from controller.api.events import LiveUpdates


@dataclass(slots=True)
class Services:
    """What one app serves: made once by create_app. `stopping` is the daemon's stop event (None in
    tests that build an app without one); `live_updates` the event streams, once the daemon runs them."""

    config: Config
    queue: JobQueue
    fleet: Fleet
    metrics: FarmMetrics
    tokens: TokenRegistry
    stopping: asyncio.Event | None = None
    live_updates: LiveUpdates | None = None

    def attach(self, app: FastAPI) -> None:
        """Make these the services `app`'s routes get."""
        app.state.services = self


def services(request: Request) -> Services:
    """The services of the app serving `request`."""
    return services_of(request.app)


def services_of(app: FastAPI) -> Services:
    """The services create_app attached to `app` (for the daemon's wiring)."""
    found: Services = app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def _queue(farm: ServicesDep) -> JobQueue:
    return farm.queue


def _fleet(farm: ServicesDep) -> Fleet:
    return farm.fleet


def _metrics(farm: ServicesDep) -> FarmMetrics:
    return farm.metrics


def _tokens(farm: ServicesDep) -> TokenRegistry:
    return farm.tokens


QueueDep = Annotated[JobQueue, Depends(_queue)]
FleetDep = Annotated[Fleet, Depends(_fleet)]
MetricsDep = Annotated[FarmMetrics, Depends(_metrics)]
TokensDep = Annotated[TokenRegistry, Depends(_tokens)]
