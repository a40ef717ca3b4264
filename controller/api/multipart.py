"""A streaming multipart/form-data reader: small fields into a dict, one file part as a byte stream.

The file part is handed on chunk by chunk as the body arrives, so a 500 MB upload never sits in
memory (or in a temporary file) whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable

from python_multipart import MultipartParser
from python_multipart.exceptions import ParseError
from python_multipart.multipart import parse_options_header

from controller.core.errors import BadInput

MAX_FIELD_BYTES = 1024
MAX_FIELDS = 32


class FormError(BadInput):
    """The body is not acceptable multipart/form-data, or has a field the form does not know (400)."""


def boundary_of(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise FormError("send the job as multipart/form-data with a `file` part")
    return boundary


class StreamingForm:
    """Reads `body`; `fields` fill as they pass, `file_name` is set when the file part starts.

    `file_chunks()` yields the file part's bytes; call it once and drain it. Fields must come before
    the file part (curl -F and HTTP clients send them in the order given).
    """

    def __init__(
        self, content_type: str, body: AsyncIterator[bytes], *, on_file: Callable[[str], object] | None = None
    ) -> None:
        self.fields: dict[str, str] = {}
        self.file_name: str | None = None
        self._body = body
        self._on_file = on_file
        self._pending: deque[bytes] = deque()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._part: str | None = None  # field name of the current part; "" for the file part
        self._value = bytearray()
        self._files = 0
        self._ended = False
        self._parser = MultipartParser(
            boundary_of(content_type),
            {
                "on_part_begin": self._part_begin,
                "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    async def file_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            try:
                self._parser.write(chunk)
            except ParseError as exc:
                raise FormError(f"malformed multipart body: {exc}") from None
            while self._pending:
                yield self._pending.popleft()
        try:
            self._parser.finalize()
        except ParseError as exc:
            raise FormError(f"malformed multipart body: {exc}") from None
        if not self._ended:
            raise FormError("the body ended before the closing multipart boundary")
        if self._files == 0:
            raise FormError("the form has no `file` part")

    def _end(self) -> None:
        self._ended = True

    def _part_begin(self) -> None:
        self._headers.clear()
        self._part = None
        self._value.clear()

    def _header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        # latin-1 keeps the bytes as they are; names inside are UTF-8, decoded in _headers_finished.
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            self._files += 1
            if self._files > 1:
                raise FormError("send exactly one `file` part")
            self.file_name = params.get(b"filename", b"").decode("utf-8", "replace")
            self._part = ""
            if self._on_file is not None:
                self._on_file(self.file_name)  # may raise: a bad name stops before any byte is kept
            return
        if not name:
            raise FormError("every form part needs a name")
        if self._files:
            # The file is being stored as it arrives; options must be known before it is queued.
            raise FormError(f"form field {name!r} comes after the file: send fields before the `file` part")
        if len(self.fields) >= MAX_FIELDS:
            raise FormError(f"too many form fields (at most {MAX_FIELDS})")
        self._part = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "":
            self._pending.append(bytes(data[start:end]))
            return
        self._value.extend(data[start:end])
        if len(self._value) > MAX_FIELD_BYTES:
            raise FormError(f"form field {self._part!r} is longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._part:
            try:
                self.fields[self._part] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise FormError(f"form field {self._part!r} is not UTF-8 text") from None
        self._part = None
