"""Pure pieces of the job queue: printer-side names, file history, the streaming form reader."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api.multipart import MAX_FIELD_BYTES, FormError, StreamingForm
from controller.jobs import job_id_of, remote_name
from controller.jobs.queue import BadSubmission, NotGcode, check_file_name
from devices.octoprint.parse import files_from


def test_remote_names_carry_the_job_id_and_stay_plain_ascii() -> None:
    assert remote_name(17, "bracket v2.gcode") == "farmctl-17-bracket_v2.gcode"
    assert remote_name(3, "Halterung-groß (2).gco") == "farmctl-3-Halterung-gro_2.gcode"
    assert remote_name(4, "....gcode") == "farmctl-4-print.gcode"
    assert len(remote_name(5, "x" * 250 + ".gcode")) == len("farmctl-5-.gcode") + 40
    assert job_id_of("farmctl-17-bracket_v2.gcode") == 17
    assert job_id_of("folder/farmctl-9-a.gcode") == 9
    for other in (None, "", "bracket.gcode", "farmctl-x-a.gcode", "farmctl-1-a.gco", "my-farmctl-1-a.gcode"):
        assert job_id_of(other) is None


@given(st.integers(min_value=1, max_value=10**12), st.text(max_size=300))
def test_any_upload_name_round_trips_its_job_id(job_id: int, name: str) -> None:
    remote = remote_name(job_id, name)
    assert remote.isascii()
    assert "/" not in remote
    assert job_id_of(remote) == job_id


def test_file_names_are_checked_before_anything_is_stored() -> None:
    assert check_file_name("Bracket (v2) #3.gcode") == "Bracket (v2) #3.gcode"
    assert check_file_name("part.GCO") == "part.GCO"
    for bad in (
        "",
        "../x.gcode",
        "a/b.gcode",
        "a\\b.gcode",
        ".hidden.gcode",
        "x" * 256,
        "ä.gcode",
        "a\x00.gcode",
    ):
        with pytest.raises(BadSubmission):
            check_file_name(bad)
    for not_gcode in ("part.stl", "part.3mf", "part.bgcode", "part"):
        with pytest.raises(NotGcode):
            check_file_name(not_gcode)


def test_file_history_comes_from_octoprints_prints_block() -> None:
    body = {
        "files": [
            {"name": "a.gcode", "path": "a.gcode", "type": "machinecode", "size": 10,
             "prints": {"success": 2, "failure": 1, "last": {"success": True}}},
            {"name": "sub", "type": "folder", "children": [
                {"name": "b.gcode", "path": "sub/b.gcode", "type": "machinecode", "prints": {"success": "x"}},
            ]},
            {"name": "c.gcode", "path": "c.gcode", "type": "machinecode", "prints": {"success": True}},
            {"name": "m.stl", "type": "model"},
        ]
    }  # fmt: skip
    files = {f.path: f for f in files_from(body)}
    assert set(files) == {"a.gcode", "sub/b.gcode", "c.gcode"}
    assert (files["a.gcode"].successes, files["a.gcode"].failures) == (2, 1)
    assert files["a.gcode"].ever_printed
    # Garbage counts are no history, not a crash.
    assert not files["sub/b.gcode"].ever_printed
    assert not files["c.gcode"].ever_printed


async def _body(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _form(fields: list[tuple[str, str]], file: bytes, boundary: str = "XyZ") -> bytes:
    out = b""
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.gcode"\r\n'.encode()
    out += b"Content-Type: application/octet-stream\r\n\r\n" + file + f"\r\n--{boundary}--\r\n".encode()
    return out


@pytest.mark.parametrize("split", [1, 7, 64, 100_000])
async def test_streaming_form_hands_on_the_file_however_the_body_is_split(split: int) -> None:
    payload = b"G1 X1 Y2\r\n; --XyZ mid-line is not a boundary\r\n" * 50
    body = _form([("copies", "2"), ("owner", "Jürgen")], payload)
    chunks = [body[i : i + split] for i in range(0, len(body), split)]
    form = StreamingForm("multipart/form-data; boundary=XyZ", _body(chunks))
    received = b"".join([c async for c in form.file_chunks()])
    assert received == payload
    assert form.fields == {"copies": "2", "owner": "Jürgen"}
    assert form.file_name == "a.gcode"


async def test_streaming_form_refuses_what_it_cannot_use() -> None:
    with pytest.raises(FormError, match="multipart/form-data"):
        StreamingForm("application/json", _body([]))
    too_long = _form([("owner", "x" * (MAX_FIELD_BYTES + 1))], b"G1")
    with pytest.raises(FormError, match="longer than"):
        [c async for c in StreamingForm("multipart/form-data; boundary=XyZ", _body([too_long])).file_chunks()]
    truncated = _form([], b"G1 X1")[:-10]
    with pytest.raises(FormError, match="ended before"):
        [
            c
            async for c in StreamingForm(
                "multipart/form-data; boundary=XyZ", _body([truncated])
            ).file_chunks()
        ]
    no_file = b'--XyZ\r\nContent-Disposition: form-data; name="copies"\r\n\r\n1\r\n--XyZ--\r\n'
    with pytest.raises(FormError, match="no `file` part"):
        [c async for c in StreamingForm("multipart/form-data; boundary=XyZ", _body([no_file])).file_chunks()]
    unicode_name = _form([], b"G1").replace(b'filename="a.gcode"', 'filename="部品.gcode"'.encode())
    form = StreamingForm("multipart/form-data; boundary=XyZ", _body([unicode_name]), on_file=check_file_name)
    with pytest.raises(BadSubmission, match="ASCII"):
        [c async for c in form.file_chunks()]
