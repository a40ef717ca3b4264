"""The submit form's fields: one model parses and checks them, and the OpenAPI document it writes says
exactly what the daemon refuses, field by field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from controller.api.forms import BadField, SubmitForm
from controller.api.multipart import FormError
from controller.jobs.queue import SubmitOptions
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import closed_port_printers, config_for


def test_fields_become_the_queues_options_and_blank_ones_count_as_not_sent() -> None:
    form = SubmitForm.parse(
        {"copies": " 3 ", "priority": "-5", "material": " PETG ", "nozzle": "0.6", "owner": "", "group": " "}
    )
    assert form.options() == SubmitOptions(copies=3, priority=-5, material="PETG", nozzle=0.6)
    assert SubmitForm.parse({}).options() == SubmitOptions()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"copies": "two"}, "copies must be a whole number, not 'two'"),
        ({"copies": "1.5"}, "copies must be a whole number"),
        ({"priority": "1001"}, "priority must be a whole number between -1000 and 1000, not '1001'"),
        ({"priority": "high"}, "priority must be a whole number"),
        ({"nozzle": "0"}, "nozzle must be a number in mm, 0 < nozzle <= 5, not '0'"),
        ({"nozzle": "5.01"}, "nozzle must be a number in mm"),
        ({"nozzle": "nan"}, "nozzle must be a number in mm"),
        ({"nozzle": "wide"}, "nozzle must be a number in mm"),
        ({"material": "P" * 33}, "material must be a short name such as PLA or PETG"),
        ({"owner": "o" * 65}, "owner must be at most 64 printable characters"),
        ({"owner": "alice\x1b[2J"}, "owner must be at most 64 printable characters"),
    ],
)
def test_a_bad_value_is_a_422_that_names_the_field(fields: dict[str, str], message: str) -> None:
    with pytest.raises(BadField, match="^" + re.escape(message)) as caught:
        SubmitForm.parse(fields)
    assert caught.value.status == 422


def test_an_unknown_field_is_a_400() -> None:
    with pytest.raises(FormError, match="unknown form field 'colour'") as caught:
        SubmitForm.parse({"copies": "1", "colour": "red"})
    assert caught.value.status == 400


def _past(part: dict[str, Any]) -> str | None:
    """A value just outside the part's documented limits, or None when it documents none."""
    if "maxLength" in part:
        return "x" * (int(part["maxLength"]) + 1)
    if "maximum" in part:
        return str(part["maximum"] + 1)
    if "exclusiveMinimum" in part:
        return str(part["exclusiveMinimum"])
    if "minimum" in part:
        return str(part["minimum"] - 1)
    return None


async def test_the_documented_limits_are_the_ones_the_daemon_enforces(tmp_path: Path) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS, sections="[jobs]\nmax_copies = 5\n")
    gcode = print_file(tmp_path / "cube.gcode").read_bytes()
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        schema = (await farm.api.get("/openapi.json")).json()
        form = schema["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
        parts = form["schema"]["properties"]
        assert (parts["material"]["maxLength"], parts["owner"]["maxLength"]) == (32, 64)
        assert (parts["nozzle"]["exclusiveMinimum"], parts["nozzle"]["maximum"]) == (0, 5)
        checked = []
        for name, part in parts.items():
            value = _past(part)
            if value is None:
                continue
            resp = await farm.api.post(
                "/api/v1/jobs", data={name: value}, files={"file": ("cube.gcode", gcode)}
            )
            assert resp.status_code == 422, (name, value, resp.text)
            assert resp.json()["error"].startswith(f"{name} must be"), resp.text
            checked.append(name)
        assert checked == ["copies", "priority", "material", "nozzle", "owner"]
        assert await farm.jobs() == []
