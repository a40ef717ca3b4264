"""The FastAPI app and the one place that maps errors to HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.api import printers
from controller.api.auth import TokenRegistry
from controller.config import Config
from controller.fleet import Fleet
from devices.errors import DeviceAuthError, DeviceBadRequest, DeviceBusy, DeviceError, DeviceUnavailable

_DEVICE_STATUS: list[tuple[type[DeviceError], int]] = [
    (DeviceBusy, 409),
    (DeviceBadRequest, 422),
    (DeviceAuthError, 502),  # the printer host refused *our* key: a server-side problem
    (DeviceUnavailable, 503),
]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(config: Config, fleet: Fleet) -> FastAPI:
    """The API app for one daemon: its fleet and its tokens."""
    app = FastAPI(
        title="farmctl",
        version="1",
        description="Print-farm controller API. Every endpoint but /healthz needs a bearer token.",
    )
    app.state.fleet = fleet
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

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: open, no token. `{"status": "ok"}` while the daemon serves."""
        return {"status": "ok"}

    app.include_router(printers.router)
    return app
