"""The web page at `/`: sign-in and sign-out, the page, the htmx fragments it refreshes, the usage CSV,
and its vendored scripts under /static (nothing comes from the internet).

The page reads through its own routes here (server-rendered fragments); everything that changes the farm
goes to the JSON API with the session cookie and the CSRF header, so the API's roles and checks are the
only ones there are.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from controller.api.services import Services
from controller.config import Role
from controller.config.errors import NAME
from controller.web import admin, views
from controller.web.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    LIFETIME_S,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    MemberPasswords,
    SessionStore,
    SignInLimiter,
    WebSession,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC_URL = "/static"
_FORM_LIMIT = 8192  # a sign-in form: a name, a token or password, the CSRF value
# The page loads scripts, styles and data from this daemon only; a browser enforces it as well.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_NONE = "\N{EN DASH}"  # an empty figure
_SIGNED_OUT = {"HX-Redirect": "/"}  # htmx follows it: a fragment asked for after expiry shows sign-in
Month = Annotated[str | None, Query(max_length=16, description="YYYY-MM")]
PrinterName = Annotated[str, PathParam(pattern=NAME)]


def install(app: FastAPI, farm: Services) -> None:
    """Serve the page, its fragments and /static on `app`; sessions go on `app.state.web_sessions`."""
    store = SessionStore()
    app.state.web_sessions = store
    page = _Page(app, farm, store)
    app.include_router(page.router())
    admin.install(app, page, _form)  # /admin: tokens and members, for admins
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="static")


class _Page:
    def __init__(self, app: FastAPI, farm: Services, store: SessionStore) -> None:
        self.app, self.farm, self.store = app, farm, store
        self.limiter = SignInLimiter()
        self.members = MemberPasswords(farm.config.members, farm.tokens.roster)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(num=_num, duration=_duration, when=self._when)
        self._actions: frozenset[str] | None = None

    def actions(self) -> frozenset[str]:
        # Read on first use: by then every router of the app is mounted, whatever order they came in.
        if self._actions is None:
            self._actions = views.available_actions(self.app)
        return self._actions

    def render(self, name: str, status: int = 200, **ctx: Any) -> Response:
        body = self.env.get_template(name).render(static=STATIC_URL, **ctx)
        return HTMLResponse(body, status_code=status, headers=_HEADERS)

    def session(self, request: Request) -> WebSession | None:
        return self.store.get(request.cookies.get(SESSION_COOKIE))

    def signed_in(self, request: Request) -> WebSession:
        session = self.session(request)
        if session is None:
            raise HTTPException(401, "signed out: sign in again on /", headers=_SIGNED_OUT)
        return session

    def context(self, session: WebSession) -> dict[str, Any]:
        operator = session.caller.role.rank >= Role.OPERATOR.rank
        return {
            "me": session.caller,
            "via": session.via,
            "csrf": session.csrf,
            "csrf_header": CSRF_HEADER,
            "can": self.actions() if operator else frozenset(),
        }

    def _when(self, moment: datetime | None) -> str:
        if moment is None:
            return _NONE
        return moment.astimezone(self.farm.config.costs.zone).strftime("%Y-%m-%d %H:%M")

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/", self.index, methods=["GET"])
        router.add_api_route("/login", self.login, methods=["POST"])
        router.add_api_route("/logout", self.logout, methods=["POST"])
        router.add_api_route("/ui/printers", self.printers, methods=["GET"])
        router.add_api_route("/ui/printers/{name}", self.printer, methods=["GET"])
        router.add_api_route("/ui/queue", self.queue, methods=["GET"])
        router.add_api_route("/ui/history", self.history, methods=["GET"])
        router.add_api_route("/ui/usage", self.usage, methods=["GET"])
        router.add_api_route("/ui/usage.csv", self.usage_csv, methods=["GET"])
        return router

    # --- sign-in -------------------------------------------------------------------------------------

    def sign_in_page(self, request: Request, message: str | None, status: int = 200) -> Response:
        # Double submit: the form's hidden value must match this cookie, which another site's page can
        # neither read nor send (SameSite=Strict), so nobody can sign a browser in to their own account.
        value = secrets.token_urlsafe(24)
        answer = self.render("login.html", status, csrf=value, message=message, members=bool(self.members))
        answer.set_cookie(LOGIN_COOKIE, value, max_age=3600, httponly=True, samesite="strict",
                          secure=request.url.scheme == "https")  # fmt: skip
        return answer

    async def index(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return self.sign_in_page(request, None)
        farm = self.farm
        month, report = await views.usage(farm, session.caller, None)
        return self.render(
            "index.html",
            cards=await views.cards(farm),
            jobs=await views.queue(farm),
            finished=await views.history(farm),
            month=month,
            report=report,
            printers=views.printers(farm),
            owners=farm.tokens.roster.member_names(),
            **self.context(session),
        )

    async def login(self, request: Request) -> Response:
        fields = await _form(request)
        address = request.client.host if request.client else "unknown"
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(fields.get(CSRF_FIELD, "").encode(), expected.encode()):
            return self.sign_in_page(request, "The sign-in form had expired: please try again.", 403)
        if self.limiter.blocked(address):
            return self.sign_in_page(request, "Too many refused sign-ins from here: wait a minute.", 429)
        member, secret = fields.get("member", "").strip(), fields.get("secret", "").strip()
        caller = await self.members.caller(member, secret) if member else self.farm.tokens.caller(secret)
        if caller is None:
            self.limiter.failed(address)
            log.info("web: a sign-in from %s was refused", address)
            what = "That name and password were" if member else "That token was"
            return self.sign_in_page(request, f"{what} refused.", 401)
        self.limiter.succeeded(address)
        via = "member" if member else "token"
        session = self.store.open(caller, via)
        log.info("web: %s signed in with a %s as %s", caller.name, via, caller.role)
        done = RedirectResponse("/", status_code=303)
        done.set_cookie(SESSION_COOKIE, session.id, max_age=LIFETIME_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")  # fmt: skip
        done.delete_cookie(LOGIN_COOKIE, httponly=True, samesite="strict")
        return done

    async def logout(self, request: Request) -> Response:
        fields = await _form(request)
        session = self.session(request)
        if session is not None:
            if not hmac.compare_digest(fields.get(CSRF_FIELD, "").encode(), session.csrf.encode()):
                raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
            self.store.close(session.id)
            log.info("web: %s signed out", session.caller.name)
        done = RedirectResponse("/", status_code=303)
        done.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return done

    # --- fragments ------------------------------------------------------------------------------------

    async def printers(self, request: Request) -> Response:
        session = self.signed_in(request)
        return self.render("printers.html", cards=await views.cards(self.farm), **self.context(session))

    async def printer(self, request: Request, name: PrinterName) -> Response:
        session = self.signed_in(request)
        found = await views.cards(self.farm, only=name)
        if not found:
            raise HTTPException(404, f"no printer named {name!r}")
        return self.render("card.html", card=found[0], **self.context(session))

    async def queue(self, request: Request) -> Response:
        session = self.signed_in(request)
        return self.render("queue.html", jobs=await views.queue(self.farm), **self.context(session))

    async def history(self, request: Request) -> Response:
        session = self.signed_in(request)
        return self.render("history.html", finished=await views.history(self.farm), **self.context(session))

    async def usage(self, request: Request, month: Month = None) -> Response:
        session = self.signed_in(request)
        month, report = await self._usage(session, month)
        return self.render("usage.html", month=month, report=report, **self.context(session))

    async def usage_csv(self, request: Request, month: Month = None) -> Response:
        session = self.signed_in(request)
        month, report = await self._usage(session, month)
        return Response(
            views.usage_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="usage-{month}.csv"'},
        )

    async def _usage(self, session: WebSession, month: str | None) -> tuple[str, Any]:
        try:
            return await views.usage(self.farm, session.caller, month)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form's fields (the first value of each); 413 past _FORM_LIMIT."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_LIMIT:
            raise HTTPException(413, f"the form is larger than {_FORM_LIMIT} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "send the form as application/x-www-form-urlencoded") from None
    return {k: v[0] for k, v in fields.items()}


def _num(value: float | None, digits: int = 1) -> str:
    return _NONE if value is None else f"{value:,.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return _NONE
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
