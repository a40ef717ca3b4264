"""The one place that turns errors into HTTP answers, the one error body they all carry, and its entries
in the OpenAPI document.

Our own errors (controller.core.errors.FarmError) carry their status on the class; a driver's errors
(devices.errors.DeviceError) get theirs from DEVICE_STATUS below, since devices/ knows nothing of HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.config import Role
from controller.core.errors import FarmError
from devices.errors import DeviceAuthError, DeviceBadRequest, DeviceBusy, DeviceError, DeviceUnavailable

Responses = dict[int | str, dict[str, Any]]

# A driver's error as the API answers it, first match wins. Auth comes before unavailable: the
# database writers' auth error is both (it is retried like an outage).
DEVICE_STATUS: list[tuple[type[DeviceError], int]] = [
    (DeviceBusy, 409),
    (DeviceBadRequest, 422),
    (DeviceAuthError, 502),  # the device refused *our* credentials: a server-side problem
    (DeviceUnavailable, 503),
]
DEVICE_OTHER = 502


class ErrorOut(BaseModel):
    """What every 4xx and 5xx answer carries."""

    error: str = Field(description="What went wrong, in plain words", examples=["no job 9999"])


def error_body(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"error": message}` with `status`."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def device_status(exc: DeviceError) -> int:
    """The status the API answers a driver's error with."""
    return next((code for kind, code in DEVICE_STATUS if isinstance(exc, kind)), DEVICE_OTHER)


class TooLargeAsJson:
    """ASGI wrapper: the 413 that a route's `max_body_size` answers (Starlette sends it as plain text,
    from inside the route where no exception handler sees it) goes out as ErrorOut like every error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_json(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the plain text body of the start replaced below
            if message["type"] == "http.response.start" and message["status"] == 413:
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if kind.startswith(b"text/plain"):
                    replaced = True
                    body = json.dumps({"error": TOO_LARGE_MESSAGE}).encode()
                    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
                    await send({"type": "http.response.start", "status": 413, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
            await send(message)

        await self.app(scope, receive, send_json)


def install(app: FastAPI) -> None:
    """Answer every error `app` raises with ErrorOut and its status."""
    app.add_middleware(TooLargeAsJson)

    @app.exception_handler(FarmError)
    async def farm_error(request: Request, exc: FarmError) -> JSONResponse:
        return error_body(exc.status, str(exc))

    @app.exception_handler(DeviceError)
    async def device_error(request: Request, exc: DeviceError) -> JSONResponse:
        return error_body(device_status(exc), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route on the path only (GET or POST
            # on /api/v1/jobs); a client should learn every method the path takes. FastAPI keeps its
            # routes in private nested types, so the public OpenAPI document is the map.
            headers = {**(headers or {}), "Allow": _allowed(app, request, (headers or {}).get("Allow", ""))}
        if exc.status_code == 413 and exc.detail == _STARLETTE_TOO_LARGE:  # a body without a length
            return error_body(413, TOO_LARGE_MESSAGE, headers)
        return error_body(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_body(422, f"{where}: {first.get('msg')}" if where else str(first.get("msg")))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still re-raises it after this answer, so uvicorn logs the traceback: a bug stays
        # visible in the log while the client gets the same JSON shape as for every other error.
        return error_body(500, "internal error; the daemon's log has the details")


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


def success(
    description: str, example: Any = None, *, status: int = 200, media: str = "application/json"
) -> Responses:
    """OpenAPI `responses` entry of a route's success answer: what it carries and, where the model's own
    example does not show this route's answer (a list, a job in another state), an example of it."""
    answer: dict[str, Any] = {"description": description}
    if example is not None:
        answer["content"] = {media: {"example": example}}
    return {status: answer}


# A status's description, or its description and an example `error` message in the daemon's words.
Described = str | tuple[str, str]


# A JSON body of the API (a material list, a move, a reason, a new token or member) is a few hundred
# bytes: anything past this is refused with 413 before it is read into memory. The upload has its own
# limit ([api] max_upload_mb) and streams.
JSON_BODY_LIMIT = 64 * 1024
TOO_LARGE_MESSAGE = f"the body is larger than {JSON_BODY_LIMIT} bytes"
TOO_LARGE: Described = (
    f"The JSON body is larger than {JSON_BODY_LIMIT // 1024} KiB (refused before it is read)",
    TOO_LARGE_MESSAGE,
)
_STARLETTE_TOO_LARGE = "Content Too Large"  # the detail of the limit's own 413 (plain text or raised)


def error_responses(
    role: Role | None, codes: Mapping[int, Described] | None = None, *, inline: bool = False
) -> Responses:
    """OpenAPI `responses` for a route: 401 (and 403 above viewer) for `role`, plus `codes`.

    `inline` spells the schema out under application/json, for routes whose own answers are not JSON:
    FastAPI files a `model` under the route's media type (text/plain for /metrics).
    """
    described: dict[int, Described] = {}
    if role is not None:
        described[401] = (
            "No bearer token (nor a web page session), or a token the daemon does not know",
            "missing bearer token",
        )
        if role.rank > Role.VIEWER.rank:
            # Every known token is at least a viewer: only routes above viewer can answer 403.
            described[403] = (
                f"The token's role is below {role} (or a web page request without its CSRF header)",
                f"role viewer may not do this; needs {role}",
            )
    described.update(codes or {})
    schema: dict[str, Any] = ErrorOut.model_json_schema() if inline else {}

    def entry(what: Described) -> dict[str, Any]:
        text, example = what if isinstance(what, tuple) else (what, None)
        media: dict[str, Any] = {"schema": schema} if inline else {}
        if example is not None:  # without one, Swagger UI shows ErrorOut's field example
            media["example"] = {"error": example}
        content = {"content": {"application/json": media}} if media else {}
        answer = {"description": text, **content}
        return answer if inline else {"model": ErrorOut, **answer}

    return {code: entry(what) for code, what in described.items()}
