"""The FastAPI app of one daemon: its services, its routers and its one error mapping."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from controller.accounting.roster import Roster
from controller.api import admin, docs, errors, jobs, metrics, operations, printers
from controller.api import events as live_events
from controller.api import reports as reports_api
from controller.api import utilisation as utilisation_report
from controller.api.collector import FarmMetrics, MetricSources
from controller.api.errors import error_responses
from controller.api.services import Services
from controller.api.tokens import TokenRegistry
from controller.config import Config, Role
from controller.jobs.queue import JobQueue
from controller.web import routes as web

# The top of /docs: what every route has in common, as OctoPrint's API docs start.
_DESCRIPTION = """\
The print farm's API: printers, jobs, operations, reports, live updates.

**Authorization.** Every route but `/healthz` needs a token: `Authorization: Bearer <token>` (a token
from `[[api.tokens]]` in farmctl.toml, or one an admin added through `/api/v1/admin/tokens`). The web
page's session cookie counts as well. Each token has a
role, and each route names the role it needs: a *viewer* reads everything; an *operator* also queues,
cancels, pauses, resumes, moves and reprints jobs, confirms beds clear, changes materials and takes
printers out of service; an *admin* also manages tokens and members. No token or an unknown one: 401;
a role too low: 403.

**Errors.** Every 4xx and 5xx answer carries `{"error": "<what went wrong>"}`; each route lists the
statuses it answers and why.

**Times** are ISO 8601; the daemon answers in UTC unless a route says otherwise."""


def create_app(
    config: Config,
    queue: JobQueue,
    sources: MetricSources | None = None,
    *,
    stopping: asyncio.Event | None = None,
) -> FastAPI:
    """The API app for one daemon: its queue, fleet, tokens and what /metrics reports.

    Once `stopping` is set, uploads still arriving end at once with 503 instead of holding the stop.
    """
    # docs.install serves /docs and /openapi.json as [api] docs says; FastAPI's own would be open.
    # Swagger UI's default validatorUrl is an online service; null turns it off.
    app = FastAPI(
        title="farmctl",
        version="1",
        description=_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    services = Services(
        config=config,
        queue=queue,
        fleet=queue.fleet,
        metrics=FarmMetrics(sources or MetricSources(queue.fleet, queue.store)),
        # Read before any task uses the store: the daemon builds the app before its tasks start.
        tokens=TokenRegistry(config.api.tokens, Roster(config, queue.store).load_at_start()),
        stopping=stopping,
    )
    services.attach(app)
    errors.install(app)

    @app.get(
        "/healthz",
        tags=["health"],
        summary="Is the daemon up?",
        responses=errors.success("The daemon serves", {"status": "ok"}),
    )
    def healthz() -> dict[str, str]:
        """Liveness for systemd, a load balancer or a monitor: answers `{"status": "ok"}` while the
        daemon serves, without a token.

        Role: none (no token)."""
        return {"status": "ok"}

    app.include_router(printers.router)
    app.include_router(jobs.router)
    app.include_router(operations.jobs_router)
    app.include_router(operations.printers_router)
    app.include_router(reports_api.router)
    app.include_router(utilisation_report.router)
    app.include_router(live_events.router)
    app.include_router(admin.router)
    app.include_router(metrics.router, responses=error_responses(Role.VIEWER, inline=True))
    docs.install(app, config.api.docs, services.tokens)
    web.install(app, services)  # the page at /, its fragments and /static
    return app
