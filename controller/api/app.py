"""The FastAPI app and the one place that maps errors to HTTP status codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from controller.api import docs, jobs, metrics, printers
from controller.api.auth import TokenRegistry
from controller.api.errors import error_responses
from controller.api.multipart import FormError
from controller.config import Config, Role
from controller.files import EmptyFile, FileTooLarge
from controller.jobs import IllegalTransition
from controller.queue import BadSubmission, JobConflict, JobQueue, NotGcode, Unprintable
from controller.store import NotFound
from devices.errors import DeviceAuthError, DeviceBadRequest, DeviceBusy, DeviceError, DeviceUnavailable

_DEVICE_STATUS: list[tuple[type[DeviceError], int]] = [
    (DeviceBusy, 409),
    (DeviceBadRequest, 422),
    (DeviceAuthError, 502),  # the printer host refused *our* key: a server-side problem
    (DeviceUnavailable, 503),
]


# Our own errors, most specific first; every message is written for the operator.
_OUR_STATUS: list[tuple[type[Exception], int]] = [
    (FormError, 400),
    (BadSubmission, 400),
    (EmptyFile, 400),
    (NotFound, 404),
    (JobConflict, 409),
    (IllegalTransition, 409),
    (FileTooLarge, 413),
    (NotGcode, 415),
    (Unprintable, 422),
]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(
    config: Config,
    queue: JobQueue,
    sources: metrics.MetricSources | None = None,
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
        description="Print-farm controller API. Every endpoint but /healthz needs a bearer token.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.fleet = queue.fleet
    app.state.queue = queue
    app.state.metrics = sources or metrics.MetricSources(queue.fleet, queue.store)
    app.state.tokens = TokenRegistry(config.api.tokens)
    app.state.stopping = stopping

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route on the path only (GET or POST
            # on /api/v1/jobs); a client should learn every method the path takes. FastAPI keeps its
            # routes in private nested types, so the public OpenAPI document is the map.
            headers = {**(headers or {}), "Allow": _allowed(app, request, (headers or {}).get("Allow", ""))}
        return _error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg')}" if where else str(first.get("msg")))

    @app.exception_handler(DeviceError)
    async def device_error(request: Request, exc: DeviceError) -> JSONResponse:
        status = next((code for kind, code in _DEVICE_STATUS if isinstance(exc, kind)), 502)
        return _error(status, str(exc))

    for kind, status in _OUR_STATUS:
        app.add_exception_handler(kind, _handler(status))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still re-raises it after this answer, so uvicorn logs the traceback: a bug stays
        # visible in the log while the client gets the same JSON shape as for every other error.
        return _error(500, "internal error; the daemon's log has the details")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: open, no token. `{"status": "ok"}` while the daemon serves."""
        return {"status": "ok"}

    app.include_router(printers.router)
    app.include_router(jobs.router)
    app.include_router(metrics.router, responses=error_responses(Role.VIEWER, inline=True))
    docs.install(app, config.api.docs, app.state.tokens)
    return app


def _allowed(app: FastAPI, request: Request, fallback: str) -> str:
    """Every method the request's path takes, as the OpenAPI document lists them."""
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        regex, _, _ = compile_path(template)
        if regex.match(request.url.path):
            methods.update(m.upper() for m in operations)
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(sorted(methods)) or fallback


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return _error(status, str(exc))

    return handle
