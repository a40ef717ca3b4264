"""The streamed multipart body `farmctl queue add` sends: fields first, then the file as it is read."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from controller.cli.common import EX_NOINPUT, fail

UPLOAD_CHUNK = 1 << 20


class LocalFileError(RuntimeError):
    """The file being uploaded could not be read, or changed size while it was sent."""


def _quoted(value: str) -> str:
    # A quoted-string as python_multipart unquotes it; a line break would end the header early.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """A multipart/form-data body of form fields and then one `file` part, read from `file` as it is sent."""

    def __init__(
        self, fields: Mapping[str, str], file: BinaryIO, file_name: str, *, boundary: str | None = None
    ) -> None:
        self.boundary = boundary or secrets.token_hex(16)
        self.file_size = os.fstat(file.fileno()).st_size
        self._file = file
        dash = f"--{self.boundary}\r\n"
        head = [
            f'{dash}Content-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        ]
        # The daemon stores the file as it arrives, so it wants every field before the file part.
        head.append(
            f'{dash}Content-Disposition: form-data; name="file"; filename="{_quoted(file_name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        self.head = "".join(head).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self.head) + self.file_size + len(self.tail)

    def chunks(self, on_sent: Callable[[int], object] = lambda n: None) -> Iterator[bytes]:
        """The body, once, from the file's current position; `on_sent(n)` after each file chunk."""
        yield self.head
        sent = 0
        while True:
            try:
                chunk = self._file.read(UPLOAD_CHUNK)
            except OSError as exc:
                raise LocalFileError(f"cannot read {self._file.name}: {exc.strerror}") from None
            if not chunk:
                break
            sent += len(chunk)
            if sent > self.file_size:
                raise LocalFileError(
                    f"{self._file.name} grew while it was sent: try again once it is written"
                )
            yield chunk
            on_sent(len(chunk))
        if sent != self.file_size:
            raise LocalFileError(f"{self._file.name} shrank while it was sent: try again once it is written")
        yield self.tail


def open_input(path: Path) -> BinaryIO:
    """The local file to upload, opened; exit 66 naming it if it is missing or not a regular file."""
    try:
        file = path.open("rb")
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}", EX_NOINPUT) from None
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        raise fail(f"{path}: not a regular file", EX_NOINPUT)
    return file


def upload_progress(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
