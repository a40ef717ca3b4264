"""The submit form's fields: parsed and checked by one pydantic model, which also writes their part of
the OpenAPI document.

What needs the config (copies up to jobs.max_copies, a printer or group that exists) is checked by
JobQueue.check_options; everything else about a field is here.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from controller.api.multipart import FormError
from controller.core.errors import Unprocessable
from controller.jobs.queue import SubmitOptions


class BadField(Unprocessable):
    """A form field's value is not acceptable; the message names the field (422)."""


def _printable(text: str | None) -> str | None:
    if text is not None and any(unicodedata.category(c)[0] == "C" for c in text):
        raise ValueError("control characters")
    return text


class SubmitForm(BaseModel):
    """The fields sent with a G-code file. A blank field counts as not sent."""

    # Field order is the order the parts are documented in; the file part comes last.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    copies: int = Field(
        1,
        description="How many jobs (at most jobs.max_copies)",
        json_schema_extra={"minimum": 1},  # the range, with the config's top, is check_options'
    )
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first")
    material: str | None = Field(
        None, max_length=32, description="Required material; default: the slicer's", examples=["PETG"]
    )
    nozzle: float | None = Field(
        None,
        gt=0,
        le=5,
        allow_inf_nan=False,
        description="Required nozzle diameter, mm; default: the slicer's",
        examples=[0.4],
    )
    printer: str | None = Field(None, description="Only this printer may take it", examples=["mk4-1"])
    group: str | None = Field(None, description="Only printers of this group may take it")
    owner: Annotated[str | None, AfterValidator(_printable)] = Field(
        None, max_length=64, description="Member the print is for; default: the token's name"
    )

    @classmethod
    def parse(cls, fields: dict[str, str]) -> SubmitForm:
        """The form from the multipart reader's text fields; FormError (400) for an unknown field,
        BadField (422) for a value that is not acceptable."""
        for name in fields:
            if name not in cls.model_fields:
                raise FormError(f"unknown form field {name!r}")
        try:
            return cls.model_validate({name: text for name, text in fields.items() if text.strip()})
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0])
            raise BadField(f"{name} must be {_MUST[name]}, not {str(first['input'])[:40]!r}") from None

    def options(self) -> SubmitOptions:
        """What the queue takes."""
        return SubmitOptions(**self.model_dump())


# What each field must be, as the error for a bad value says it.
_MUST = {
    "copies": "a whole number",
    "priority": "a whole number between -1000 and 1000",
    "material": "a short name such as PLA or PETG (at most 32 characters)",
    "nozzle": "a number in mm, 0 < nozzle <= 5",
    "printer": "a printer's name",
    "group": "a group's name",
    "owner": "at most 64 printable characters",
}


class _MultipartSchema(GenerateJsonSchema):
    """A multipart field is text that is sent or not: no `null` type, no `null` default, no titles."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default") is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def submit_body() -> dict[str, Any]:
    """The OpenAPI requestBody of POST /api/v1/jobs: the form's fields, then the file.

    The route reads the multipart stream itself (a 500 MB file never sits in memory), so FastAPI cannot
    derive the body; this is what generated clients and Swagger UI's "Try it out" send. The property
    order is the order the parts must arrive in: every field before the file.
    """
    form = SubmitForm.model_json_schema(schema_generator=_MultipartSchema)
    properties = dict(form["properties"])
    properties["file"] = {
        "type": "string",
        "description": "The G-code, with a plain ASCII file name; the last part",
        "format": "binary",
        "contentMediaType": "application/octet-stream",
    }
    schema = {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,  # an unknown field is refused (400)
        "properties": properties,
    }
    media = {
        "schema": schema,
        "example": _EXAMPLE,
        "encoding": {"file": {"contentType": "application/octet-stream"}},
    }
    return {"requestBody": {"required": True, "content": {"multipart/form-data": media}}}


# Two copies of a PETG part; the G-code shortened to its first lines.
_EXAMPLE = {
    "copies": 2,
    "priority": 0,
    "material": "PETG",
    "file": "; generated by PrusaSlicer 2.7.1\nM104 S240\nM140 S80\nG28\nG1 Z0.2 F720\n",
}
