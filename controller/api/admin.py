"""`/api/v1/admin`: API tokens and members an admin adds, changes and removes while the daemon runs.

Those of farmctl.toml are listed as `"source": "config"` and are read-only here (409: edit the file).
A new token's secret is in the answer to its POST and nowhere else: only its sha256 is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from controller.accounting.roster import KEEP, PASSWORD_MAX, PASSWORD_MIN, MemberEntry, Roster, TokenEntry
from controller.api.auth import Caller, require
from controller.api.errors import JSON_BODY_LIMIT, TOO_LARGE, Described, Responses, error_responses
from controller.api.examples import parameter
from controller.api.services import TokensDep
from controller.config import Role
from controller.config.errors import NAME

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]
_NAME_EXAMPLE = parameter("frontdesk", "A name")
Name = Annotated[
    str, Path(pattern=NAME, description="The token's or member's name", openapi_examples=_NAME_EXAMPLE)
]

_BAD_NAME = "Not a name: letters, digits, _ . - and at most 64 characters"
_FROM_CONFIG = "Defined in farmctl.toml: edit the file to change it"
_SOURCE = "`config`: from farmctl.toml, read-only here; `store`: added at run time through this API"
_NOT_UTF8 = "The body cannot be read (not UTF-8)"
_WHEN = "2026-12-02T09:14:03+00:00"


def _roster(tokens: TokensDep) -> Roster:
    return tokens.roster


RosterDep = Annotated[Roster, Depends(_roster)]


class TokenIn(BaseModel):
    """A token to make: its name and the role it grants."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME, description="Shown as `by` on what the token does", examples=["frontdesk"]
    )
    role: Role = Field(description="viewer, operator or admin", examples=["operator"])


class TokenOut(BaseModel):
    """An API token, without its secret."""

    name: str = Field(description="The token's name", examples=["frontdesk"])
    role: Role = Field(description="viewer, operator or admin", examples=["operator"])
    source: Literal["config", "store"] = Field(description=_SOURCE, examples=["store"])
    created_at: datetime | None = Field(None, description="When it was added (UTC); null from config")
    created_by: str | None = Field(None, description="The admin token that added it", examples=["admin"])


class NewTokenOut(TokenOut):
    """The token just made, with its secret: shown this once, keep it now."""

    secret: str = Field(
        description="The bearer token itself (`Authorization: Bearer <secret>`); the daemon keeps only its "
        "sha256 and cannot show it again",
        examples=["q0p1Yl1kR3dN0bW9zdFNlY3JldEV4YW1wbGUxMjM0NTY"],
    )


class TokensOut(BaseModel):
    tokens: list[TokenOut] = Field(description="farmctl.toml's tokens first, then the run-time ones")


class MemberIn(BaseModel):
    """A member to add: the owner name jobs are submitted and billed under, quotas, a password."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="The owner name of their jobs", examples=["dana"])
    quota_g: float | None = Field(None, gt=0, description="Filament grams per calendar month", examples=[500])
    quota_cost: float | None = Field(
        None, gt=0, description="Cost per calendar month, in [costs] currency", examples=[20.0]
    )
    password: str | None = Field(
        None,
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description="Web page password (the member signs in as an operator); kept as an scrypt hash; "
        "without one the member cannot sign in",
        examples=["correct horse battery staple"],
    )


class MemberPatch(BaseModel):
    """What to change: a key left out stays as it is, `null` clears a quota or the password."""

    model_config = ConfigDict(extra="forbid")

    quota_g: float | None = Field(None, gt=0, description="New monthly grams; null: no limit", examples=[750])
    quota_cost: float | None = Field(
        None, gt=0, description="New monthly cost; null: no limit", examples=[25]
    )
    password: str | None = Field(
        None,
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description="New password; null: the member can no longer sign in (their sessions end either way)",
        examples=["another long passphrase"],
    )

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise PydanticCustomError("empty", "give at least one of quota_g, quota_cost, password")
        return self


class MemberOut(BaseModel):
    """A member: quotas and whether a password is set (never the password)."""

    name: str = Field(description="The owner name of their jobs", examples=["dana"])
    # Defaults only because the OpenAPI document drops nulls from its examples; answers always carry them.
    quota_g: float | None = Field(
        None, description="Filament grams per calendar month; null: none", examples=[500]
    )
    quota_cost: float | None = Field(None, description="Cost per calendar month; null: none", examples=[20.0])
    password: bool = Field(description="Whether the member can sign in on the web page", examples=[True])
    source: Literal["config", "store"] = Field(description=_SOURCE, examples=["store"])
    created_at: datetime | None = Field(None, description="When it was added (UTC); null from config")
    created_by: str | None = Field(None, description="The admin token that added it", examples=["admin"])
    updated_at: datetime | None = Field(None, description="Last change (UTC), if any")
    updated_by: str | None = Field(None, description="The admin token of the last change", examples=["admin"])


class MembersOut(BaseModel):
    members: list[MemberOut] = Field(description="farmctl.toml's members first, then the run-time ones")


def token_out(entry: TokenEntry) -> TokenOut:
    return TokenOut(
        name=entry.name,
        role=entry.role,
        source=entry.source,
        created_at=entry.created_at,
        created_by=entry.created_by,
    )


def member_out(entry: MemberEntry) -> MemberOut:
    return MemberOut(
        name=entry.name,
        quota_g=entry.quota_g,
        quota_cost=entry.quota_cost,
        password=entry.password,
        source=entry.source,
        created_at=entry.created_at,
        created_by=entry.created_by,
        updated_at=entry.updated_at,
        updated_by=entry.updated_by,
    )


_TOKEN: dict[str, Any] = {
    "name": "frontdesk",
    "role": "operator",
    "source": "store",
    "created_at": _WHEN,
    "created_by": "admin",
}
_CONFIG_TOKEN: dict[str, Any] = {
    "name": "ops",
    "role": "operator",
    "source": "config",
    "created_at": None,
    "created_by": None,
}
_TOKEN_IN = {"name": "frontdesk", "role": "operator"}
_MEMBER_IN = {"name": "dana", "quota_g": 500, "password": "correct horse battery staple"}
_MEMBER: dict[str, Any] = {
    "name": "dana",
    "quota_g": 500.0,
    "quota_cost": None,
    "password": True,
    "source": "store",
    "created_at": _WHEN,
    "created_by": "admin",
    "updated_at": None,
    "updated_by": None,
}


def _answer(status: int, example: dict[str, Any], codes: dict[int, Described] | None = None) -> Responses:
    """The success answer with its example, then the errors with the role (error_responses)."""
    return {
        status: {"content": {"application/json": {"example": example}}},
        **error_responses(Role.ADMIN, codes),
    }


@router.get(
    "/tokens",
    response_model=TokensOut,
    summary="List API tokens",
    responses=_answer(
        200,
        {"tokens": [_CONFIG_TOKEN, _TOKEN]},
    ),
)
async def list_tokens(roster: RosterDep, caller: Admin) -> TokensOut:
    """Every API token: those of farmctl.toml (`source: config`) and those added here (`source: store`),
    with their roles; never a secret.

    Example: `GET /api/v1/admin/tokens` → 200 `{"tokens": [...]}`. Role: admin."""
    return TokensOut(tokens=[token_out(t) for t in roster.tokens()])


@router.post(
    "/tokens",
    status_code=201,
    response_model=NewTokenOut,
    summary="Make an API token",
    max_body_size=JSON_BODY_LIMIT,
    responses=_answer(
        201,
        {**_TOKEN, "secret": "q0p1Yl1kR3dN0bW9zdFNlY3JldEV4YW1wbGUxMjM0NTY"},
        {
            400: _NOT_UTF8,
            413: TOO_LARGE,
            409: f"{_FROM_CONFIG}; or an active token of that name exists; or 256 run-time tokens exist",
            422: "The body is not JSON, or a name or role that is not allowed",
        },
    ),
)
async def add_token(
    body: Annotated[
        TokenIn,
        Body(openapi_examples={"operator": {"summary": "A front desk operator", "value": _TOKEN_IN}}),
    ],
    roster: RosterDep,
    caller: Admin,
) -> NewTokenOut:
    """Make a bearer token with a role; it works at once. The answer holds its secret, this once: the
    daemon stores only its sha256. The change is logged with the admin's token name, never the secret.

    Example: `POST /api/v1/admin/tokens` with `{"name": "frontdesk", "role": "operator"}` → 201 with
    the token and its `secret`. Role: admin."""
    entry, secret = await roster.add_token(body.name, body.role, by=caller.name)
    return NewTokenOut(**token_out(entry).model_dump(), secret=secret)


@router.delete(
    "/tokens/{name}",
    response_model=TokenOut,
    summary="Revoke an API token",
    responses=_answer(
        200,
        _TOKEN,
        {404: "No run-time token of that name", 409: _FROM_CONFIG, 422: _BAD_NAME},
    ),
)
async def revoke_token(name: Name, roster: RosterDep, caller: Admin) -> TokenOut:
    """Revoke a token added here: from the next request on it is refused (401), and web page sessions
    signed in with it end. Its name may be used again. No body.

    Example: `DELETE /api/v1/admin/tokens/frontdesk` → 200 with the token revoked. Role: admin."""
    return token_out(await roster.revoke_token(name, by=caller.name))


@router.get(
    "/members",
    response_model=MembersOut,
    summary="List members",
    responses=_answer(200, {"members": [_MEMBER]}),
)
async def list_members(roster: RosterDep, caller: Admin) -> MembersOut:
    """Every member (a job's owner): those of farmctl.toml (`source: config`) and those added here
    (`source: store`), with their monthly quotas and whether they can sign in.

    Example: `GET /api/v1/admin/members` → 200 `{"members": [...]}`. Role: admin."""
    return MembersOut(members=[member_out(m) for m in roster.members()])


@router.post(
    "/members",
    status_code=201,
    response_model=MemberOut,
    summary="Add a member",
    max_body_size=JSON_BODY_LIMIT,
    responses=_answer(
        201,
        _MEMBER,
        {
            400: _NOT_UTF8,
            413: TOO_LARGE,
            409: f"{_FROM_CONFIG}; or a member of that name exists; or 10000 run-time members exist",
            422: f"The body is not JSON; or a name that is not allowed, a quota not above 0, a password "
            f"shorter than {PASSWORD_MIN} or longer than {PASSWORD_MAX} characters",
        },
    ),
)
async def add_member(
    body: Annotated[
        MemberIn,
        Body(openapi_examples={"quota": {"summary": "With a quota and a password", "value": _MEMBER_IN}}),
    ],
    roster: RosterDep,
    caller: Admin,
) -> MemberOut:
    """Add a member: jobs may be submitted for them (`owner`), their quotas are checked at submit, and
    with a password they sign in on the web page as an operator. Logged without the password.

    Example: `POST /api/v1/admin/members` with `{"name": "dana", "quota_g": 500, "password": "…"}` →
    201 with the member. Role: admin."""
    entry = await roster.add_member(
        body.name,
        quota_g=body.quota_g,
        quota_cost=body.quota_cost,
        password=body.password,
        by=caller.name,
    )
    return member_out(entry)


@router.patch(
    "/members/{name}",
    response_model=MemberOut,
    summary="Change a member",
    max_body_size=JSON_BODY_LIMIT,
    responses=_answer(
        200,
        {**_MEMBER, "quota_g": 750.0, "updated_at": _WHEN, "updated_by": "admin"},
        {
            400: _NOT_UTF8,
            413: TOO_LARGE,
            404: "No run-time member of that name",
            409: _FROM_CONFIG,
            422: f"{_BAD_NAME}; or the body is not JSON, is empty or has an unknown key, a quota not "
            "above 0 or a password of the wrong length",
        },
    ),
)
async def change_member(
    name: Name,
    body: Annotated[
        MemberPatch,
        Body(
            openapi_examples={
                "quota": {"summary": "A new grams quota", "value": {"quota_g": 750}},
                "no password": {"summary": "No more sign-in", "value": {"password": None}},
            }
        ),
    ],
    roster: RosterDep,
    caller: Admin,
) -> MemberOut:
    """Change a member added here: a key given is set (`null` clears a quota or the password), a key
    left out stays. A new or cleared password ends the member's web page sessions.

    Example: `PATCH /api/v1/admin/members/dana` with `{"quota_g": 750}` → 200 with the member.
    Role: admin."""
    given = body.model_fields_set
    entry = await roster.change_member(
        name,
        quota_g=body.quota_g if "quota_g" in given else KEEP,
        quota_cost=body.quota_cost if "quota_cost" in given else KEEP,
        password=body.password if "password" in given else KEEP,
        by=caller.name,
    )
    return member_out(entry)


@router.delete(
    "/members/{name}",
    response_model=MemberOut,
    summary="Remove a member",
    responses=_answer(
        200, _MEMBER, {404: "No run-time member of that name", 409: _FROM_CONFIG, 422: _BAD_NAME}
    ),
)
async def remove_member(name: Name, roster: RosterDep, caller: Admin) -> MemberOut:
    """Remove a member added here. Their jobs stay, under the same owner name (no longer a member's:
    [membership] unknown_owners decides about new ones); their web page sessions end. No body.

    Example: `DELETE /api/v1/admin/members/dana` → 200 with the member removed. Role: admin."""
    return member_out(await roster.remove_member(name, by=caller.name))
