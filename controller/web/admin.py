"""The web page's Admin view at /admin: API tokens and members, with forms to add, revoke, remove and
change quotas. Admins only (403 for anyone else, who is also never shown the link).

Plain HTML forms, each carrying the session's CSRF token, posted here rather than to the JSON API: a new
token's secret has to be shown on the page once, and a page rendered by the server does that without
any script holding it. The forms are read with the API's own models and changed through the same roster,
so the checks and the audit log line are the API's.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from controller.accounting.roster import KEEP, Roster
from controller.api.admin import MemberIn, MemberPatch, TokenIn
from controller.api.services import Services
from controller.config import Role
from controller.config.errors import NAME
from controller.core.errors import FarmError
from controller.web.sessions import CSRF_FIELD, SESSION_COOKIE, SessionStore, WebSession

M = TypeVar("M", bound=BaseModel)
FormReader = Callable[[Request], Awaitable[dict[str, str]]]
ADMIN_URL = "/admin"


class PageLike(Protocol):
    farm: Services
    store: SessionStore

    def render(self, name: str, status: int = 200, **ctx: Any) -> Response: ...

    def context(self, session: WebSession) -> dict[str, Any]: ...


def install(app: FastAPI, page: PageLike, read_form: FormReader) -> None:
    """Serve /admin on `app`; a revoked token's or removed member's sessions end from now on."""
    roster = page.farm.tokens.roster
    roster.on_ended(page.store.end)
    app.include_router(_AdminPage(page, roster, read_form).router())


class _AdminPage:
    def __init__(self, page: PageLike, roster: Roster, read_form: FormReader) -> None:
        self.page, self.roster, self.read_form = page, roster, read_form

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route(ADMIN_URL, self.show, methods=["GET"])
        router.add_api_route(f"{ADMIN_URL}/tokens", self.add_token, methods=["POST"])
        router.add_api_route(f"{ADMIN_URL}/tokens/{{name}}/revoke", self.revoke_token, methods=["POST"])
        router.add_api_route(f"{ADMIN_URL}/members", self.add_member, methods=["POST"])
        router.add_api_route(f"{ADMIN_URL}/members/{{name}}", self.change_member, methods=["POST"])
        router.add_api_route(f"{ADMIN_URL}/members/{{name}}/remove", self.remove_member, methods=["POST"])
        return router

    def admin(self, request: Request) -> WebSession | None:
        """The admin's session; None when signed out; 403 for anyone else."""
        session = self.page.store.get(request.cookies.get(SESSION_COOKIE))
        if session is not None and session.caller.role is not Role.ADMIN:
            raise HTTPException(403, f"role {session.caller.role} may not do this; needs admin")
        return session

    def render(self, session: WebSession, status: int = 200, **extra: Any) -> Response:
        ctx = {"message": None, "done": None, "secret": None, **extra}
        return self.page.render(
            "admin.html",
            status,
            tokens=self.roster.tokens(),
            members=self.roster.members(),
            roles=[r.value for r in Role],
            **self.page.context(session),
            **ctx,
        )

    async def show(self, request: Request) -> Response:
        session = self.admin(request)
        if session is None:
            return RedirectResponse("/", status_code=303)  # the sign-in form
        return self.render(session)

    async def _change(
        self, request: Request, change: Callable[[dict[str, str], str], Awaitable[Any]]
    ) -> Response:
        """Check the session and its CSRF token, make `change(fields, by)`, render the page with what
        happened: its message, or the refusal with the API's status."""
        fields = await self.read_form(request)
        session = self.admin(request)
        if session is None:
            return RedirectResponse("/", status_code=303)
        if not hmac.compare_digest(fields.get(CSRF_FIELD, "").encode(), session.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        try:
            outcome = await change(fields, session.caller.name)
        except FarmError as exc:
            return self.render(session, exc.status, message=str(exc))
        except ValidationError as exc:
            return self.render(session, 422, message=_first_error(exc))
        return self.render(session, **outcome)

    async def add_token(self, request: Request) -> Response:
        async def change(fields: dict[str, str], by: str) -> dict[str, Any]:
            body = _model(TokenIn, name=fields.get("name", "").strip(), role=fields.get("role", ""))
            entry, secret = await self.roster.add_token(body.name, body.role, by=by)
            return {"done": f"Token {entry.name} ({entry.role}) made.", "secret": secret}

        return await self._change(request, change)

    async def revoke_token(self, request: Request, name: str = PathParam(pattern=NAME)) -> Response:
        async def change(fields: dict[str, str], by: str) -> dict[str, Any]:
            entry = await self.roster.revoke_token(name, by=by)
            return {"done": f"Token {entry.name} revoked."}

        return await self._change(request, change)

    async def add_member(self, request: Request) -> Response:
        async def change(fields: dict[str, str], by: str) -> dict[str, Any]:
            body = _model(
                MemberIn,
                name=fields.get("name", "").strip(),
                quota_g=_blank(fields.get("quota_g")),
                quota_cost=_blank(fields.get("quota_cost")),
                password=fields.get("password") or None,  # as typed: spaces count
            )
            entry = await self.roster.add_member(
                body.name, quota_g=body.quota_g, quota_cost=body.quota_cost, password=body.password, by=by
            )
            return {"done": f"Member {entry.name} added."}

        return await self._change(request, change)

    async def change_member(self, request: Request, name: str = PathParam(pattern=NAME)) -> Response:
        async def change(fields: dict[str, str], by: str) -> dict[str, Any]:
            # The form shows both quotas: an empty one means no limit. An empty password keeps it.
            given: dict[str, Any] = {
                "quota_g": _blank(fields.get("quota_g")),
                "quota_cost": _blank(fields.get("quota_cost")),
            }
            if fields.get("clear_password"):
                given["password"] = None
            elif fields.get("password"):
                given["password"] = fields["password"]
            body = _model(MemberPatch, **given)
            entry = await self.roster.change_member(
                name,
                quota_g=body.quota_g,
                quota_cost=body.quota_cost,
                password=body.password if "password" in given else KEEP,
                by=by,
            )
            return {"done": f"Member {entry.name} changed."}

        return await self._change(request, change)

    async def remove_member(self, request: Request, name: str = PathParam(pattern=NAME)) -> Response:
        async def change(fields: dict[str, str], by: str) -> dict[str, Any]:
            entry = await self.roster.remove_member(name, by=by)
            return {"done": f"Member {entry.name} removed; their jobs keep the owner name."}

        return await self._change(request, change)


def _model(model: type[M], **values: Any) -> M:
    return model.model_validate(values)


def _blank(value: str | None) -> str | None:
    """An empty form field as no value."""
    return value.strip() or None if value is not None else None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else str(first["msg"])
