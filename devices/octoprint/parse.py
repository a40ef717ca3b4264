"""Pure decoding of OctoPrint JSON into the driver's typed results. Tolerant of missing fields."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from devices.errors import DeviceBadRequest
from devices.octoprint.models import (
    ConnectionInfo,
    EventKind,
    PrinterEvent,
    PrinterFlags,
    RemoteFile,
    Snapshot,
    Temperature,
    UploadResult,
    VersionInfo,
)
from devices.printer import HostState

_EVENTS = {
    "Connected": EventKind.CONNECTED,
    "Disconnected": EventKind.DISCONNECTED,
    "PrintStarted": EventKind.PRINT_STARTED,
    "PrintDone": EventKind.PRINT_DONE,
    "PrintFailed": EventKind.PRINT_FAILED,
    "PrintCancelled": EventKind.PRINT_CANCELLED,
    "PrintPaused": EventKind.PRINT_PAUSED,
    "PrintResumed": EventKind.PRINT_RESUMED,
    "PrinterStateChanged": EventKind.STATE_CHANGED,
    "Error": EventKind.ERROR,
}
# PrinterStateChanged's `state_id`s; the ones not listed (connecting, detecting, …) report no state.
_STATE_IDS = {
    "OPERATIONAL": HostState.IDLE,
    "STARTING": HostState.PRINTING,
    "PRINTING": HostState.PRINTING,
    "RESUMING": HostState.PRINTING,
    "FINISHING": HostState.PRINTING,
    "CANCELLING": HostState.PRINTING,
    "PAUSING": HostState.PAUSED,
    "PAUSED": HostState.PAUSED,
    "ERROR": HostState.ERROR,
    "CLOSED_WITH_ERROR": HostState.ERROR,
    "OFFLINE_AFTER_ERROR": HostState.ERROR,
    "OFFLINE": HostState.OFFLINE,
    "CLOSED": HostState.OFFLINE,
}


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def flags_from(raw: object, text: str = "", error: str | None = None) -> PrinterFlags:
    """Decode OctoPrint's `state.flags`.

    Push frames of "Offline after error" carry `error: false, closedOrError: true`; only the state
    text and error message say it was an error, so those count too.
    """
    f = _obj(raw)
    closed_after_error = bool(f.get("closedOrError")) and (bool(error) or "error" in text.lower())
    errored = bool(f.get("error")) or closed_after_error
    return PrinterFlags(
        operational=bool(f.get("operational")),
        ready=bool(f.get("ready")),
        printing=bool(f.get("printing")),
        paused=bool(f.get("paused")),
        pausing=bool(f.get("pausing")),
        cancelling=bool(f.get("cancelling")),
        finishing=bool(f.get("finishing")),
        error=errored,
        closed=bool(f.get("closedOrError")) and not errored,
    )


def flags_from_text(text: str) -> PrinterFlags:
    """Flags for a printer OctoPrint reports as not operational (when /api/printer answers 409)."""
    lowered = text.lower()
    if "error" in lowered:
        return PrinterFlags(error=True, closed=False)
    return PrinterFlags(closed=True)


def temperatures_from(raw: object) -> dict[str, Temperature]:
    """Decode `{"tool0": {"actual": .., "target": ..}, "bed": {..}}`; other keys are ignored."""
    temps: dict[str, Temperature] = {}
    for name, value in _obj(raw).items():
        if (name.startswith("tool") or name in ("bed", "chamber")) and isinstance(value, Mapping):
            temps[name] = Temperature(_num(value.get("actual")), _num(value.get("target")))
    return temps


def _job_fields(job: Mapping[str, Any], progress: Mapping[str, Any]) -> dict[str, Any]:
    file = _obj(job.get("file"))
    return {
        "file_name": _str(file.get("name")),
        "file_path": _str(file.get("path")),
        "progress": _num(progress.get("completion")),
        "print_time_s": _num(progress.get("printTime")),
        "print_time_left_s": _num(progress.get("printTimeLeft")),
    }


def snapshot_from_rest(job_body: object, printer_body: object | None) -> Snapshot:
    """Combine `/api/job` with `/api/printer` (None when it answered 409: not operational)."""
    job = _obj(job_body)
    text = _str(job.get("state")) or "Unknown"
    printer = _obj(printer_body)
    error = _str(job.get("error"))
    flags = flags_from(_obj(printer.get("state")).get("flags"), text, error) if printer_body else None
    return Snapshot(
        state_text=text,
        flags=flags if flags is not None else flags_from_text(text),
        error=error,
        temperatures=temperatures_from(printer.get("temperature")),
        **_job_fields(_obj(job.get("job")), _obj(job.get("progress"))),
    )


def snapshot_from_push(current: object) -> Snapshot:
    """Decode a push `current` or `history` frame body."""
    body = _obj(current)
    state = _obj(body.get("state"))
    temps_list = body.get("temps")
    last_temps = temps_list[-1] if isinstance(temps_list, list) and temps_list else {}
    text = _str(state.get("text")) or "Unknown"
    error = _str(state.get("error"))
    return Snapshot(
        state_text=text,
        flags=flags_from(state.get("flags"), text, error),
        error=error,
        temperatures=temperatures_from(last_temps),
        **_job_fields(_obj(body.get("job")), _obj(body.get("progress"))),
    )


def event_from_push(event: object) -> PrinterEvent | None:
    """Decode a push `event` frame body; None for events the controller does not use."""
    body = _obj(event)
    kind = _EVENTS.get(str(body.get("type")))
    if kind is None:
        return None
    payload = _obj(body.get("payload"))
    return PrinterEvent(
        kind=kind,
        file_name=_str(payload.get("name")),
        file_path=_str(payload.get("path")),
        reason=_str(payload.get("reason")),
        error=_str(payload.get("error")),
        elapsed_s=_num(payload.get("time")),
        state=_STATE_IDS.get((_str(payload.get("state_id")) or "").upper()),
    )


def version_from(body: object) -> VersionInfo:
    b = _obj(body)
    return VersionInfo(str(b.get("server", "")), str(b.get("api", "")), str(b.get("text", "")))


def connection_from(body: object) -> ConnectionInfo:
    current = _obj(_obj(body).get("current"))
    baud = current.get("baudrate")
    return ConnectionInfo(
        state=_str(current.get("state")) or "Unknown",
        port=_str(current.get("port")),
        baudrate=baud if isinstance(baud, int) and not isinstance(baud, bool) else None,
    )


def upload_from(body: object) -> UploadResult:
    b = _obj(body)
    local = _obj(_obj(b.get("files")).get("local"))
    name = _str(local.get("name"))
    if name is None:
        raise DeviceBadRequest("upload answer names no stored file")
    return UploadResult(
        name=name,
        path=_str(local.get("path")) or name,
        selected=b.get("effectiveSelect") is True,
        started=b.get("effectivePrint") is True,
    )


def files_from(body: object) -> list[RemoteFile]:
    """Flatten `/api/files/local?recursive=true` into machine-code files."""
    out: list[RemoteFile] = []
    stack = list(_obj(body).get("files") or [])
    while stack:
        entry = _obj(stack.pop())
        children = entry.get("children")
        if isinstance(children, list):
            stack.extend(children)
        elif entry.get("type") == "machinecode" and _str(entry.get("name")):
            size = entry.get("size")
            prints = _obj(entry.get("prints"))
            out.append(
                RemoteFile(
                    name=str(entry["name"]),
                    path=_str(entry.get("path")) or str(entry["name"]),
                    size=size if isinstance(size, int) else None,
                    successes=_count(prints.get("success")),
                    failures=_count(prints.get("failure")),
                )
            )
    return out
