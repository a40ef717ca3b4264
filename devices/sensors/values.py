"""Defensive building blocks shared by the profiles: payload → JSON object, value → finite float."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from devices.sensors.model import PayloadError, Reading, SensorSpec

# A plain decimal number as devices print it; stricter than float() (no "nan", "1_000", "infinity").
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Device clocks that never synced report 1970-ish times; anything before 2001-09-09 counts as unknown.
_EARLIEST_EPOCH_S = 1e9
_EXCERPT = 100


def excerpt(payload: bytes) -> str:
    """The start of a payload for an error message: at most about 100 characters, always ASCII."""
    text = repr(payload[:_EXCERPT])
    return text if len(text) <= _EXCERPT and len(payload) <= _EXCERPT else text[:_EXCERPT] + "..."


def show(value: object) -> str:
    """A short ASCII rendering of a JSON value for an error message (containers by type only)."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    return ascii(value)[:40]


def text_of(spec: SensorSpec, payload: bytes) -> str:
    """The payload as text; PayloadError when it is over the spec's size limit or not UTF-8."""
    if len(payload) > spec.max_payload:
        raise PayloadError(f"payload of {len(payload)} bytes is over the {spec.max_payload}-byte limit")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(f"payload is not UTF-8 text: {excerpt(payload)}") from None


def load_object(spec: SensorSpec, payload: bytes) -> dict[str, Any]:
    """Parse a JSON object. Non-finite numbers survive parsing and are rejected when a field is read."""
    text = text_of(spec, payload)
    try:
        value = json.loads(text)
    except RecursionError:
        raise PayloadError("payload JSON is nested too deeply") from None
    except ValueError:  # JSONDecodeError, and integers beyond Python's digit limit
        raise PayloadError(f"payload is not JSON: {excerpt(payload)}") from None
    if not isinstance(value, dict):
        raise PayloadError(f"payload is JSON but not an object: {excerpt(payload)}")
    return value


def parse_number(text: str, where: str) -> float:
    """A number printed as text ("12.5", " -3 ", "1e3"); PayloadError for anything else or non-finite."""
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        raise PayloadError(f"{where} is not a number: {show(text)}")
    number = float(stripped)
    if not math.isfinite(number):
        raise PayloadError(f"{where} is out of range: {show(text)}")
    return number


def number(value: object, where: str) -> float | None:
    """A JSON value as a finite float; None when absent (null). Numeric strings count; booleans do not.

    No range rules beyond finiteness: negative power (export, idle noise), counters that reset and
    weights below zero after a tare are real data, and judging them is the controller's business.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise PayloadError(f"{where} is a boolean, not a number")
    if isinstance(value, str):
        return parse_number(value, where)
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:
            raise PayloadError(f"{where} is out of range") from None
        if not math.isfinite(result):
            raise PayloadError(f"{where} is not a finite number: {show(value)}")
        return result
    raise PayloadError(f"{where} is {show(value)}, not a number")


def fields_from(obj: Mapping[str, Any], names: Mapping[str, str], prefix: str = "") -> dict[str, float]:
    """Read `names` (payload key → our field) from `obj`; keys that are absent or null are skipped."""
    fields: dict[str, float] = {}
    for key, field in names.items():
        value = number(obj.get(key), prefix + key)
        if value is not None:
            fields[field] = value
    return fields


def utc_from_epoch(value: object, per_second: int = 1) -> datetime | None:
    """Unix time (seconds, or ms with per_second=1000) as UTC; None if not a number, unsynced or absurd."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = value / per_second
        if not math.isfinite(seconds) or seconds < _EARLIEST_EPOCH_S:
            return None
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def utc_from_iso(text: object) -> datetime | None:
    """An ISO 8601 time with a zone (`Z` or an offset) as UTC; None without a zone: local time is unknown."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    try:
        result = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return result if result.timestamp() >= _EARLIEST_EPOCH_S else None


def reading(
    spec: SensorSpec, measurement: str, fields: Mapping[str, float], time: datetime | None = None
) -> Reading:
    """A Reading tagged with the sensor id and the spec's tags."""
    return Reading(measurement, fields, spec.reading_tags, time)
