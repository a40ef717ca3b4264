"""/docs (Swagger UI) and /openapi.json: served from this daemon, behind a token unless `[api] docs` says
"open", not at all when it says "off".

A browser cannot put a bearer header on a page it opens, and a token in the address ends up in the
history, in proxy logs and in Referer headers. So in "token" mode `/docs` shows a sign-in form to a
browser without a token: the token is POSTed once, and the daemon answers with a signed cookie that
expires after an hour and opens only these pages (the document and the page's own scripts), never the
API itself: "Try it out" still sends the token through Swagger UI's Authorize button. Scripts and curl
send `Authorization: Bearer <token>` as for any endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from importlib.resources import files
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from controller.api.tokens import TokenRegistry

log = logging.getLogger(__name__)

DocsMode = Literal["token", "open", "off"]
DOCS_URL = "/docs"
OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs/assets"
SIGN_IN_URL = "/docs/sign-in"
COOKIE = "farmctl_docs"
SESSION_S = 3600
_FORM_LIMIT = 4096  # a token and a little form encoding

# A workshop Pi often has no internet, so the page takes its script, stylesheet and icon from this
# daemon. fastapi-offline ships a current Swagger UI build (swagger-ui-bundle, the other packaged copy,
# last shipped Swagger UI 4 in 2023); only its files are used, so they can sit behind the same gate as
# the page. No ReDoc: it always loads its maker's logo from the internet.
_STATIC = Path(str(files("fastapi_offline").joinpath("static")))
_ASSETS = {name: _STATIC / name for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")}


class DocsSessions:
    """Cookie values that prove a browser presented a valid token within the last SESSION_S seconds.

    HMAC with a key made at start-up: a restart (or a changed token list) signs everyone out.
    A dozen lines of stdlib; a signing library would be a new dependency for the same.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def issue(self, now: float) -> str:
        expires = int(now) + SESSION_S
        return f"{expires}.{self._mac(expires)}"

    def valid(self, value: str, now: float) -> bool:
        expires, _, mac = value.partition(".")
        if not expires.isdigit() or len(expires) > 12:
            return False
        return int(expires) > now and hmac.compare_digest(mac, self._mac(int(expires)))

    def _mac(self, expires: int) -> str:
        return hmac.new(self._key, str(expires).encode(), hashlib.sha256).hexdigest()


def install(app: FastAPI, mode: DocsMode, tokens: TokenRegistry) -> None:
    """Add /docs, its assets and /openapi.json to `app` as `mode` says."""
    if mode == "off":
        return
    sessions = DocsSessions()

    def allowed(request: Request) -> bool:
        if mode == "open":
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and tokens.caller(token.strip()) is not None:
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and sessions.valid(cookie, time.time())

    def gate(request: Request) -> None:
        if not allowed(request):
            raise HTTPException(
                401,
                f"the API docs need a token: send Authorization: Bearer <token>, or sign in on {DOCS_URL}",
                headers={"WWW-Authenticate": "Bearer"},
            )

    router = APIRouter(include_in_schema=False)
    gated = APIRouter(include_in_schema=False, dependencies=[Depends(gate)])

    @gated.get(OPENAPI_URL)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @gated.get(ASSETS_URL + "/{name}")
    def asset(name: str) -> FileResponse:
        path = _ASSETS.get(name)
        if path is None:
            raise HTTPException(404, f"no docs asset {name!r}")
        return FileResponse(path)

    @router.get(DOCS_URL)
    def docs(request: Request) -> Response:
        if not allowed(request):
            if "text/html" not in request.headers.get("accept", ""):
                gate(request)  # a script gets the usual JSON 401
            return _sign_in_page(request, "Sign in with an API token to read the API docs.")
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def sign_in(request: Request) -> Response:
        caller = tokens.caller(await _posted_token(request))
        if caller is None:
            return _sign_in_page(request, "That token was refused. Try again.")
        log.info("docs: %s signed in", caller.name)
        root = request.scope.get("root_path", "")
        done = RedirectResponse(root + DOCS_URL, status_code=303)
        done.set_cookie(
            COOKIE,
            sessions.issue(time.time()),
            max_age=SESSION_S,
            path=root or "/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return done

    if mode == "token":
        router.add_api_route(SIGN_IN_URL, sign_in, methods=["POST"])
    app.include_router(router)
    app.include_router(gated)


async def _posted_token(request: Request) -> str:
    """The `token` field of a small urlencoded form; 413 past _FORM_LIMIT, "" when it is missing."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_LIMIT:
            raise HTTPException(413, f"the sign-in form is larger than {_FORM_LIMIT} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "send the sign-in form as application/x-www-form-urlencoded") from None
    return (fields.get("token") or [""])[0].strip()


def _sign_in_page(request: Request, message: str) -> HTMLResponse:
    action = html.escape(request.scope.get("root_path", "") + SIGN_IN_URL)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>farmctl API docs: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 38em; margin: 3em auto; padding: 0 1em">
<h1>farmctl API docs</h1>
<p>{html.escape(message)}</p>
<form method="post" action="{action}">
<label>API token (any role) <input type="password" name="token" required autofocus></label>
<button type="submit">Open the docs</button>
</form>
<p>The token goes to this daemon once; it keeps the sign-in as a cookie for an hour. Scripts and curl
send <code>Authorization: Bearer &lt;token&gt;</code> instead.</p>
</body></html>
"""
    return HTMLResponse(
        page, status_code=401, headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"}
    )
