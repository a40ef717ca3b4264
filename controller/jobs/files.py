"""Content-addressed G-code storage: uploads are streamed to disk, hashed on the way, never held whole."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from controller.core.errors import BadInput, TooLarge

_FLUSH_BYTES = 1 << 20  # hand the disk 1 MiB at a time, off the event loop


class FileTooLarge(TooLarge):
    """The upload is larger than the configured limit; nothing was kept (413)."""


class EmptyFile(BadInput):
    """The upload has no content (400)."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    size: int
    path: Path


class FileStore:
    """Files as `root/<sha256>.gcode`; the original name is metadata elsewhere."""

    # One flat folder: a farm keeps thousands of files, not millions, which ext4 and f2fs index well.
    # Sharding by hash prefix left an empty folder behind whenever the queue refused a file it had
    # just stored (a binary upload, a job no printer can take).
    def __init__(self, root: Path) -> None:
        self.root = root
        self._partial = root / "partial"
        self._partial.mkdir(parents=True, exist_ok=True)
        for leftover in self._partial.iterdir():  # uploads cut off by a crash
            leftover.unlink(missing_ok=True)
        _unshard(root)

    def path_of(self, sha256: str) -> Path:
        return self.root / f"{sha256}.gcode"

    async def save(self, chunks: AsyncIterator[bytes], *, limit: int) -> StoredFile:
        """Stream `chunks` to disk; raise FileTooLarge past `limit` bytes, EmptyFile for no bytes."""
        partial = self._partial / f"{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_len = 0
        out = await asyncio.to_thread(partial.open, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(f"file is larger than the limit of {limit} bytes")
                pending.append(chunk)
                pending_len += len(chunk)
                if pending_len >= _FLUSH_BYTES:
                    await asyncio.to_thread(_write, out, digest, pending)
                    pending, pending_len = [], 0
            await asyncio.to_thread(_write, out, digest, pending)
            await asyncio.to_thread(_sync_close, out)
            if size == 0:
                raise EmptyFile("file is empty")
            sha = digest.hexdigest()
            final = self.path_of(sha)
            await asyncio.to_thread(_publish, partial, final)
            return StoredFile(sha, size, final)
        finally:
            if not out.closed:
                await asyncio.to_thread(out.close)
            await asyncio.to_thread(partial.unlink, missing_ok=True)


def _write(out: BinaryIO, digest: hashlib._Hash, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)
        out.write(chunk)


def _sync_close(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()


def _publish(partial: Path, final: Path) -> None:
    os.replace(partial, final)  # atomic: a file under its hash is always complete


def _unshard(root: Path) -> None:
    """Move files from the earlier `root/<sha256[:2]>/` folders up into `root` and drop the folders."""
    for shard in root.iterdir():
        if shard.is_dir() and len(shard.name) == 2 and all(c in "0123456789abcdef" for c in shard.name):
            for stored in shard.glob("*.gcode"):
                os.replace(stored, root / stored.name)
            with contextlib.suppress(OSError):  # not empty: something that is not ours stays
                shard.rmdir()
