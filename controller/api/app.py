"""The FastAPI app and the one place that maps errors to HTTP status codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.api import jobs, metrics, printers
from controller.api.auth import TokenRegistry
from controller.api.multipart import FormError
from controller.config import Config
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


def create_app(config: Config, queue: JobQueue, sources: metrics.MetricSources | None = None) -> FastAPI:
    """The API app for one daemon: its queue, fleet, tokens and what /metrics reports."""
    # A workshop Pi often has no internet, so /docs takes its script, stylesheet and icon from this
    # daemon: fastapi-offline ships a current Swagger UI build and serves it under /static-offline-docs
    # (swagger-ui-bundle, the other packaged copy, last shipped Swagger UI 4 in 2023). Swagger UI's
    # default validatorUrl is an online service; null turns it off. No /redoc: ReDoc always loads its
    # maker's logo from the internet.
    app = FastAPIOffline(
        title="farmctl",
        version="1",
        description="Print-farm controller API. Every endpoint but /healthz needs a bearer token.",
        redoc_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.fleet = queue.fleet
    app.state.queue = queue
    app.state.metrics = sources or metrics.MetricSources(queue.fleet, queue.store)
    app.state.tokens = TokenRegistry(config.api.tokens)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

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

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: open, no token. `{"status": "ok"}` while the daemon serves."""
        return {"status": "ok"}

    app.include_router(printers.router)
    app.include_router(jobs.router)
    app.include_router(metrics.router)
    return app


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return _error(status, str(exc))

    return handle
