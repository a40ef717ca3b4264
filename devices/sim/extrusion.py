"""How much filament a G-code file has pulled off the spool by a given byte offset (a pure parse).

OctoPrint reports how far into the file it has sent (`progress.filepos`, bytes); the scale turns that
into millimetres of filament with this profile, and millimetres into grams with `grams`.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

FILAMENT_DIAMETER_MM = 1.75
# g/cm³ of the common materials (shared/notes/devices.md).
DENSITY_G_CM3 = {"PLA": 1.24, "PETG": 1.27, "ABS": 1.04, "ASA": 1.07, "TPU": 1.21}

_MOVES = frozenset({b"0", b"00", b"1", b"01", b"2", b"02", b"3", b"03"})
_WORD = re.compile(rb"([A-Z])\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))")


def grams(length_mm: float, material: str, diameter_mm: float = FILAMENT_DIAMETER_MM) -> float:
    """The weight of `length_mm` of filament; ValueError for a material without a known density."""
    density = DENSITY_G_CM3.get(material.upper())
    if density is None:
        raise ValueError(f"no density for material {material!r}; known: {', '.join(DENSITY_G_CM3)}")
    area_mm2 = math.pi * (diameter_mm / 2.0) ** 2
    return length_mm * area_mm2 / 1000.0 * density


@dataclass(frozen=True, slots=True)
class ExtrusionProfile:
    """Filament (mm) drawn from the spool by the end of each line that extrudes, with its end offset."""

    offsets: tuple[int, ...]
    drawn_mm: tuple[float, ...]
    size: int

    @property
    def total_mm(self) -> float:
        return self.drawn_mm[-1] if self.drawn_mm else 0.0

    def drawn_at(self, filepos: int) -> float:
        """Filament drawn once the first `filepos` bytes have been sent."""
        i = bisect.bisect_right(self.offsets, filepos)
        return self.drawn_mm[i - 1] if i else 0.0


def profile(gcode: bytes) -> ExtrusionProfile:
    """Parse E moves (G0-G3), `G92 E`, absolute/relative extrusion (M82/M83, G90/G91).

    What a retraction pulls back is pushed out again before it counts anew: the spool only unwinds, so
    the drawn length is the running maximum of the net extrusion.
    """
    offsets: list[int] = []
    drawn: list[float] = []
    relative = False
    position = 0.0  # E in absolute mode since the last G92
    net = 0.0
    peak = 0.0
    end = 0
    for raw in gcode.splitlines(keepends=True):
        end += len(raw)
        code = raw.split(b";", 1)[0].strip().upper()
        if not code:
            continue
        words = dict(_WORD.findall(code))
        if b"M" in words:
            if words[b"M"] in (b"82", b"83"):
                relative = words[b"M"] == b"83"
            continue
        command = words.get(b"G")
        if command in (b"90", b"91"):
            relative = command == b"91"
            continue
        if b"E" not in words or command is None:
            continue
        value = float(words[b"E"])
        if command == b"92":
            position = value
            continue
        if command not in _MOVES:
            continue
        delta = value if relative else value - position
        position = position + value if relative else value
        net += delta
        if net > peak:
            peak = net
            offsets.append(end)
            drawn.append(peak)
    return ExtrusionProfile(tuple(offsets), tuple(drawn), end)
