"""ConfigError, exit codes, and pydantic's validation errors reworded as plain sentences naming the key."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

EX_CONFIG = 78  # sysexits: bad configuration
EX_UNAVAILABLE = 69  # sysexits: a service (port, daemon) is not available

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
URL = r"^https?://[^/\s]+(/\S*)?$"
# What each pattern means, for people who do not read regular expressions.
_PATTERN_HINTS = {
    NAME: "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    IDENTIFIER: "must be 1-64 letters, digits or '_', starting with a letter or '_'",
    URL: "must be an http:// or https:// URL, e.g. http://127.0.0.1:5000",
}
_KEY_ERROR = "config_key"
_TYPE_HINTS = {
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text in quotes",
    "path_type": "must be a file path in quotes",
    "list_type": "must be a list in brackets, e.g. [1, 2]",
    "tuple_type": "must be a list in brackets, e.g. [1, 2]",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
}
_BOUNDS = (("gt", "greater than"), ("ge", "at least"), ("lt", "less than"), ("le", "at most"))


class ConfigError(Exception):
    """Bad configuration; the message names the file and the key."""


def key_error(key: str | tuple[str | int, ...], message: str) -> PydanticCustomError:
    """The error a model validator raises about `key` (a path below its own model), as a plain sentence."""
    # A plain ValueError in a model validator is reported at the model itself ("(top level)" for
    # Config); carrying the key lets describe() name the key the problem is about.
    return PydanticCustomError(
        _KEY_ERROR, "{message}", {"key": (key,) if isinstance(key, str) else key, "message": message}
    )


def describe(
    exc: ValidationError,
    root: type[BaseModel],
    raw: Mapping[str, Any],
    path: Path,
    origins: Mapping[str, str],
) -> str:
    """One line per problem, `<file>: <key>: <sentence>`, noting keys that came from the environment."""
    lines: list[str] = []
    for err in exc.errors():
        loc, message = _sentence(err, root)
        key = key_name(loc, raw)
        origin = origins.get(key)
        where = f" (from env {origin})" if origin else ""
        line = f"{path}: {key}{where}: {message}" if key else f"{path}: {message}"
        if line not in lines:  # a short tuple reports each missing item; say it once
            lines.append(line)
    return "\n".join(lines)


def key_name(loc: Sequence[int | str], raw: Mapping[str, Any]) -> str:
    """('printers', 1, 'nozzle') → printers['mk4'].nozzle (entries by name or id), else printers[1].nozzle."""
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            entry = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            name = entry.get("name", entry.get("id")) if isinstance(entry, dict) else None
            out += f"[{name!r}]" if isinstance(name, str) else f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out


def _sentence(err: ErrorDetails, root: type[BaseModel]) -> tuple[tuple[int | str, ...], str]:
    """The location to name and the sentence for one pydantic error."""
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    got = f" (got {_show(err['input'])})"
    if kind == _KEY_ERROR:
        return (*loc, *ctx["key"]), str(ctx["message"])
    if kind == "extra_forbidden":
        return loc, _unknown(loc, root)
    if kind == "missing" and loc and isinstance(loc[-1], int):  # a fixed-length list given too few items
        loc = loc[:-1]
        kind = "too_short"
    info, annotation = _field(root, loc)
    if kind == "missing":
        return loc, "missing required key"
    if kind == "string_pattern_mismatch":
        return loc, _PATTERN_HINTS.get(ctx["pattern"], "does not have the expected form") + got
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        number = "a whole number" if annotation is int else "a number"
        return loc, f"must be {number} {_range(info, ctx)}{got}"
    if kind in ("literal_error", "enum"):
        return loc, "must be one of: " + ", ".join(re.findall(r"'([^']*)'", ctx["expected"])) + got
    if kind in ("too_short", "too_long"):
        return loc, _length(kind, annotation, ctx) + got
    if kind == "string_too_short":
        n = ctx["min_length"]
        return loc, ("must not be empty" if n == 1 else f"must be at least {n} characters") + got
    if kind == "string_too_long":
        return loc, f"must be at most {ctx['max_length']} characters{got}"
    if kind in ("value_error", "assertion_error"):
        return loc, f"{ctx['error']}{got}"
    return loc, _TYPE_HINTS.get(kind, err["msg"]) + got


def _unknown(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    _, model = _field(root, loc[:-1])
    known = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    close = difflib.get_close_matches(str(loc[-1]).lower(), known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key (keys here: {', '.join(known)})" if known else "unknown key"


def _field(root: type[BaseModel], loc: Sequence[int | str]) -> tuple[FieldInfo | None, Any]:
    """The field at `loc` and its type (list items' type for an index), or (None, None) if not a field."""
    info: FieldInfo | None = None
    annotation: Any = root
    for part in loc:
        annotation = _unwrap_optional(annotation)
        if isinstance(part, int):
            items = [a for a in get_args(annotation) if a is not Ellipsis]
            annotation = items[min(part, len(items) - 1)] if items else None
            info = None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(part)
            annotation = info.annotation if info else None
        else:
            return None, None
    return info, _unwrap_optional(annotation)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _range(info: FieldInfo | None, ctx: Mapping[str, Any]) -> str:
    """'greater than 0 and at most 3600' from the field's bounds (or just the one broken)."""
    bounds: dict[str, Any] = {}
    for item in info.metadata if info else []:
        bounds.update({name: getattr(item, name) for name, _ in _BOUNDS if hasattr(item, name)})
    bounds = bounds or dict(ctx)
    return " and ".join(f"{words} {_number(bounds[name])}" for name, words in _BOUNDS if name in bounds)


def _length(kind: str, annotation: Any, ctx: Mapping[str, Any]) -> str:
    items = get_args(annotation)
    if get_origin(annotation) is tuple and items and Ellipsis not in items:
        return f"must have exactly {len(items)} items"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    n = ctx["max_length"]
    return f"must have at most {n} item{'s' if n != 1 else ''}"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _show(value: Any, limit: int = 60) -> str:
    """A value as it would look in TOML, shortened; never used for unknown keys, which may hold a secret."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(_show(v, limit) for v in value) + "]"
    elif isinstance(value, float):
        text = _number(value)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
