"""Slicer metadata from a G-code file: material, nozzle, time, filament and print bounds for the job queue."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

# Slicers put their metadata in a header (Cura, Bambu/Orca) or a trailing block (Prusa family).
_HEAD_BYTES = 64 * 1024
_TAIL_BYTES = 64 * 1024
_CHUNK = 1 << 20

_DENSITY_G_CM3 = {"PLA": 1.24, "PETG": 1.27, "ABS": 1.04, "ASA": 1.07, "TPU": 1.21}
_DEFAULT_DENSITY = 1.24

_COMMAND_LINE = re.compile(rb"^[ \t]*[GMTgmt][0-9]", re.MULTILINE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_DURATION_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_LEADING_WORD = re.compile(r"[A-Z]+")

_MOVES = frozenset({b"G0", b"G1", b"G00", b"G01", b"G2", b"G3", b"G02", b"G03"})
# Metadata keys (lower-cased) in order of preference for each field.
_TIME_KEYS = ("total estimated time", "estimated printing time (normal mode)", "time", "print.time")
_GRAMS_KEYS = ("total filament used [g]", "filament used [g]", "total filament weight [g]")
_MM_KEYS = ("filament used [mm]", "total filament length [mm]")
_NOZZLE_KEYS = ("nozzle_diameter", "extruder_train.0.nozzle.diameter")
_BOUNDS_KEYS = (
    ("minx", "miny", "minz", "maxx", "maxy", "maxz"),
    tuple(f"print.size.{end}.{axis}" for end in ("min", "max") for axis in "xyz"),
)

Bounds = tuple[float, float, float, float, float, float]
_T = TypeVar("_T")


class GcodeError(ValueError):
    """The file is not G-code: empty, binary, or without a single G/M/T command."""


@dataclass(frozen=True, slots=True)
class GcodeInfo:
    """What the slicer (or, failing that, the moves) say about a print. None means unknown."""

    material: str | None
    nozzle: float | None
    estimated_s: float | None
    filament_g: float | None
    filament_mm: float | None
    bounds: Bounds | None
    slicer: str | None

    @property
    def size(self) -> tuple[float, float, float] | None:
        """(max_x, max_y, max_z): what must fit a build volume that starts at the origin."""
        if self.bounds is None:
            return None
        return self.bounds[3], self.bounds[4], self.bounds[5]


def read_gcode_info(
    path: Path, *, filament_diameter_mm: float = 1.75, display_name: str | None = None
) -> GcodeInfo:
    """Metadata from the head and tail of `path`; moves are scanned only if bounds or filament are missing.

    Errors name `display_name` (the user's file name) rather than the stored file's.
    """
    name = display_name or path.name
    if not filament_diameter_mm > 0:
        raise ValueError(f"filament diameter must be positive, got {filament_diameter_mm}")
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(_HEAD_BYTES)
        if not head:
            raise GcodeError(f"{name}: file is empty")
        if b"\0" in head:
            raise GcodeError(f"{name}: binary file (NUL bytes), not G-code text")
        if not _COMMAND_LINE.search(head):
            f.seek(head.rfind(b"\n") + 1)  # re-read a command line that straddles the head's end
            if not any(_COMMAND_LINE.search(b"\n".join(batch)) for batch in _line_batches(f)):
                raise GcodeError(f"{name}: no G, M or T command anywhere; not G-code")
        tail = _read_tail(f, size)
        if size > len(head):
            # The last line may be cut mid-value ("12.3" of "12.34"); the tail covers what matters.
            head = head[: head.rfind(b"\n") + 1]
        meta = _metadata(head.decode("utf-8", "replace"))
        for key, value in _metadata(tail.decode("utf-8", "replace")).items():
            meta.setdefault(key, value)

        # Only the Prusa family names the material; Cura's ";MATERIAL:" (UltiGCode) is a volume in mm³.
        material = _material(meta.get("filament_type"))
        bounds = _meta_bounds(meta)
        grams = _first(meta, _GRAMS_KEYS, _sum_numbers)
        length = _first(meta, _MM_KEYS, _sum_numbers)
        if length is None and "filament used" in meta:
            metres = _sum_numbers(meta["filament used"])  # Cura writes metres: "1.2m, 0.5m"
            length = None if metres is None else metres * 1000.0
        if bounds is None or (grams is None and length is None):
            f.seek(0)
            scanned_bounds, scanned_length = _scan_moves(f)
            bounds = bounds or scanned_bounds
            if length is None and scanned_length > 0:
                length = scanned_length
        if grams is None and length is not None:
            area = math.pi * (filament_diameter_mm / 2.0) ** 2
            grams = length * area / 1000.0 * _density(material)

    return GcodeInfo(
        material=material,
        nozzle=_first(meta, _NOZZLE_KEYS, _first_number),
        estimated_s=_first(meta, _TIME_KEYS, _duration),
        filament_g=grams,
        filament_mm=length,
        bounds=bounds,
        slicer=_slicer(head.lower()),
    )


def _read_tail(f: BinaryIO, size: int) -> bytes:
    """The last lines of the file, starting on a line boundary."""
    if size <= _TAIL_BYTES:
        f.seek(0)
        return f.read()
    # Start one byte early so a tail that begins exactly on a line start keeps that line.
    f.seek(size - _TAIL_BYTES - 1)
    data = f.read()
    return data[data.find(b"\n") + 1 :]


def _metadata(text: str) -> dict[str, str]:
    """Comment lines as lower-cased key → raw value; the first occurrence of a key wins."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith(";"):
            continue
        body = line.lstrip("; \t")
        # Bambu/Orca: "; model printing time: 1h 2m 3s; total estimated time: 1h 5m 0s".
        marker = body.find("total estimated time:")
        if marker >= 0:
            found.setdefault("total estimated time", body[marker + len("total estimated time:") :].strip())
            continue
        # Prusa writes "key = value", Cura "KEY:value", Bambu "key : value": split at whichever comes first.
        eq, colon = body.find("="), body.find(":")
        cut = min(i for i in (eq, colon, len(body)) if i >= 0)
        if cut == len(body):
            continue
        found.setdefault(body[:cut].strip().lower(), body[cut + 1 :].strip())
    return found


def _first(meta: dict[str, str], keys: tuple[str, ...], parse: Callable[[str], _T | None]) -> _T | None:
    """The first of `keys` present whose value parses."""
    for key in keys:
        if key in meta and (value := parse(meta[key])) is not None:
            return value
    return None


def _numbers(value: str) -> list[float]:
    return [n for n in (float(m) for m in _NUMBER.findall(value)) if math.isfinite(n)]


def _sum_numbers(value: str) -> float | None:
    """Per-extruder lists ("12.3, 4.5") add up to the whole print."""
    numbers = _numbers(value)
    return sum(numbers) if numbers else None


def _first_number(value: str) -> float | None:
    numbers = _numbers(value)
    return numbers[0] if numbers else None


def _duration(value: str) -> float | None:
    """Seconds from "1d 2h 3m 4s" (any subset of parts) or a bare number of seconds (Cura)."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        return sum(float(n) * _DURATION_UNIT[unit] for n, unit in parts) if parts else None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _material(value: str | None) -> str | None:
    """First extruder's material, upper-case: "pla;PETG" → "PLA"."""
    if value is None:
        return None
    first = re.split(r"[;,]", value, maxsplit=1)[0].strip().strip("\"'").upper()
    return first or None


def _density(material: str | None) -> float:
    """g/cm³; variants like "PLA+" or "PETG-CF" take their base material's density."""
    base = _LEADING_WORD.match(material or "")
    return _DENSITY_G_CM3.get(base.group() if base else "", _DEFAULT_DENSITY)


def _meta_bounds(meta: dict[str, str]) -> Bounds | None:
    """Bounds only when the header gives all six coordinates."""
    for keys in _BOUNDS_KEYS:
        values = [_first_number(meta.get(k, "")) for k in keys]
        if None not in values:
            x0, y0, z0, x1, y1, z1 = (v for v in values if v is not None)
            return x0, y0, z0, x1, y1, z1
    return None


def _slicer(head: bytes) -> str | None:
    """Which slicer wrote the file, from the lower-cased header."""
    for name in (b"prusaslicer", b"orcaslicer", b"superslicer"):
        if b"generated by " + name in head:
            return name.decode()
    if b"cura_steamengine" in head or head.startswith(b";flavor:") or b"\n;flavor:" in head:
        return "cura"
    return None


def _line_batches(f: BinaryIO) -> Iterator[list[bytes]]:
    """The file's lines a megabyte at a time: far faster than line-by-line reads, and memory stays bounded."""
    rest = b""
    while chunk := f.read(_CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if len(rest) > _CHUNK:
            rest = b""  # a megabyte without a newline is no command line; drop it rather than grow
        yield lines
    yield [rest]


def _scan_moves(f: BinaryIO) -> tuple[Bounds | None, float]:
    """Bounds of the extruding moves and the net filament length (mm) they push."""
    x = y = z = e = 0.0
    rel_xyz = rel_e = False  # G91 makes E relative too; M83 makes only E relative (Marlin 1.x / Prusa)
    length = 0.0
    lo_x = lo_y = lo_z = math.inf
    hi_x = hi_y = hi_z = -math.inf
    last_extruded = False  # the previous move extruded, so this move's start point is already in the bounds
    for lines in _line_batches(f):
        for line in lines:
            head = line[:3]
            if head == b"G1 " or head == b"G0 ":  # the bulk of any file: plain moves
                if b";" in line:
                    line = line[: line.index(b";")]
                words = line.split()
            else:
                if head[:1] in b"; \t\r" and line.lstrip()[:1] in (b";", b""):
                    continue
                words = line.split(b";", 1)[0].upper().split()
                cmd = words[0] if words else b""
                if cmd not in _MOVES:
                    if cmd == b"G90":
                        rel_xyz = False
                    elif cmd == b"G91":
                        rel_xyz = True
                    elif cmd == b"M82":
                        rel_e = False
                    elif cmd == b"M83":
                        rel_e = True
                    elif cmd in (b"G92", b"G28"):
                        x, y, z, e = _set_position(words, x, y, z, e)
                        last_extruded = False  # the old position is in another coordinate frame
                    continue
            nx, ny, nz, de = x, y, z, 0.0
            for word in words:  # the command word itself ("G1") matches no axis
                axis = word[0]  # an int: cheaper to compare than a one-byte slice
                try:
                    if axis == 88:  # X
                        nx = x + float(word[1:]) if rel_xyz else float(word[1:])
                    elif axis == 89:  # Y
                        ny = y + float(word[1:]) if rel_xyz else float(word[1:])
                    elif axis == 90:  # Z
                        nz = z + float(word[1:]) if rel_xyz else float(word[1:])
                    elif axis == 69:  # E
                        de = float(word[1:]) if rel_xyz or rel_e else float(word[1:]) - e
                except ValueError:
                    continue  # junk such as "Y" then a separate "20": skip the word, keep the move
            # Net length: a retraction and its unretraction cancel instead of both counting.
            e += de
            length += de
            if nx == x and ny == y and nz == z:
                continue  # a pure-E move (prime, unretract) deposits nothing that widens the print
            if de > 0:
                if not last_extruded:  # the segment starts at the end of a travel: include that point
                    lo_x, lo_y, lo_z = min(lo_x, x), min(lo_y, y), min(lo_z, z)
                    hi_x, hi_y, hi_z = max(hi_x, x), max(hi_y, y), max(hi_z, z)
                if nx < lo_x:
                    lo_x = nx
                if nx > hi_x:
                    hi_x = nx
                if ny < lo_y:
                    lo_y = ny
                if ny > hi_y:
                    hi_y = ny
                if nz < lo_z:
                    lo_z = nz
                if nz > hi_z:
                    hi_z = nz
            last_extruded = de > 0
            x, y, z = nx, ny, nz
    bounds = None if lo_x == math.inf else (lo_x, lo_y, lo_z, hi_x, hi_y, hi_z)
    return bounds, max(length, 0.0)


def _set_position(
    words: list[bytes], x: float, y: float, z: float, e: float
) -> tuple[float, float, float, float]:
    """G92 sets the named axes (all to 0 when none is named); G28 homes the named axes (all if none) to 0."""
    named = {w[:1]: w[1:] for w in words[1:] if w[:1] in (b"X", b"Y", b"Z", b"E")}
    if words[0] == b"G28":
        named = {axis: b"0" for axis in named if axis != b"E"} or {b"X": b"0", b"Y": b"0", b"Z": b"0"}
    elif not named:
        return 0.0, 0.0, 0.0, 0.0
    pos = {b"X": x, b"Y": y, b"Z": z, b"E": e}
    for axis, value in named.items():
        with contextlib.suppress(ValueError):  # "G92 Xjunk" leaves X alone rather than failing the file
            pos[axis] = float(value)
    return pos[b"X"], pos[b"Y"], pos[b"Z"], pos[b"E"]
