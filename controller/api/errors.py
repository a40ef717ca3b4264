"""The one error body every failing request gets, and its entries in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from controller.config import Role

Responses = dict[int | str, dict[str, Any]]


class ErrorOut(BaseModel):
    """What every 4xx and 5xx answer carries."""

    error: str = Field(description="What went wrong, in plain words", examples=["no job 9999"])


def error_responses(
    role: Role | None, codes: dict[int, str] | None = None, *, inline: bool = False
) -> Responses:
    """OpenAPI `responses` for a route: 401 (and 403 above viewer) for `role`, plus `codes`.

    `inline` spells the schema out under application/json, for routes whose own answers are not JSON:
    FastAPI files a `model` under the route's media type (text/plain for /metrics).
    """
    described: dict[int, str] = {}
    if role is not None:
        described[401] = "No bearer token, or a token the daemon does not know"
        if role.rank > Role.VIEWER.rank:
            # Every known token is at least a viewer: only routes above viewer can answer 403.
            described[403] = f"The token's role is below {role}"
    described.update(codes or {})
    if inline:
        content = {"application/json": {"schema": ErrorOut.model_json_schema()}}
        return {code: {"description": text, "content": content} for code, text in described.items()}
    return {code: {"model": ErrorOut, "description": text} for code, text in described.items()}
