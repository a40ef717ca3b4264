"""A bounded on-disk spool of line-protocol lines, kept while the database is unreachable.

Segments `<seq>.lp` are appended in order and replayed oldest first; when the spool is over its size
limit the oldest segments are dropped, and counted. Replaying a line twice is harmless: a point with
the same series and timestamp overwrites itself in InfluxDB.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT_BYTES = 1 << 20


class Spool:
    """Synchronous (run it in a thread); one writer task owns it."""

    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes, max(max_bytes // 4, 4096))
        self.dropped = 0
        directory.mkdir(parents=True, exist_ok=True)
        # segment path → (bytes, lines), oldest first
        self._segments: dict[Path, tuple[int, int]] = {}
        for path in sorted(directory.glob("*.lp")):
            data = path.read_bytes()
            if not data:
                path.unlink()
                continue
            if not data.endswith(b"\n"):  # a crash mid-append: keep the whole lines
                data = data[: data.rfind(b"\n") + 1]
                path.write_bytes(data)
            self._segments[path] = (len(data), data.count(b"\n"))
        self._open: Path | None = None  # the segment appends go to; never the one being replayed

    @property
    def lines(self) -> int:
        return sum(n for _, n in self._segments.values())

    @property
    def size(self) -> int:
        return sum(b for b, _ in self._segments.values())

    def __bool__(self) -> bool:
        return bool(self._segments)

    def append(self, lines: list[str]) -> None:
        """Add lines durably (fsync), then drop the oldest segments while over the size limit."""
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode()
        path = self._open
        if path is None or self._segments.get(path, (0, 0))[0] + len(data) > self.segment_bytes:
            path = self._open = self._next_path()
        with path.open("ab") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        size, count = self._segments.get(path, (0, 0))
        self._segments[path] = (size + len(data), count + len(lines))
        self._enforce_limit()

    def oldest(self) -> tuple[Path, list[str]] | None:
        """The oldest segment's lines; appends move on to a new segment if this was the open one."""
        if not self._segments:
            return None
        path = next(iter(self._segments))
        if path == self._open:
            self._open = None
        text = path.read_text(encoding="utf-8", errors="replace")
        return path, text.splitlines()

    def remove(self, path: Path) -> None:
        """A replayed segment is written: forget it."""
        self._segments.pop(path, None)
        path.unlink(missing_ok=True)

    def _next_path(self) -> Path:
        last = max((int(p.stem) for p in self._segments), default=0)
        return self.directory / f"{last + 1:012d}.lp"

    def _enforce_limit(self) -> None:
        dropped_now = 0
        while self.size > self.max_bytes and len(self._segments) > 1:
            path = next(iter(self._segments))
            if path == self._open:
                break
            dropped_now += self._segments[path][1]
            self.remove(path)
        if dropped_now:
            self.dropped += dropped_now
            log.warning(
                "telemetry spool full (%d bytes): dropped the %d oldest points (%d in all)",
                self.max_bytes,
                dropped_now,
                self.dropped,
            )
