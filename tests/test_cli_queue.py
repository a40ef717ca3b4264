"""`farmctl queue` and `farmctl clear` against the real daemon, and the streamed multipart upload body."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from controller.api.multipart import StreamingForm
from controller.cli.upload import UPLOAD_CHUNK, LocalFileError, MultipartBody
from controller.config import load_config
from controller.jobs.queue import check_file_name
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, write_config
from tests.peers.base import free_port


@dataclass
class Run:
    code: int
    out: str
    err: str


async def farmctl(*args: str, env: dict[str, str] | None = None) -> Run:
    """The CLI as a subprocess, so the daemon in this test's event loop keeps serving while it runs.

    It sees none of this process's FARMCTL_* variables, only those in `env`.
    """
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FARMCTL_")}, **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controller",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def padded_print_file(path: Path, size: int) -> Path:
    """A valid G-code file of about `size` bytes (comment padding), so the upload spans several chunks."""
    print_file(path)
    with path.open("a") as f:
        line = "; padding to make the upload span more than one chunk\n"
        f.write(line * (size // len(line)))
    return path


async def test_queue_add_list_cancel_and_clear(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    (peer,) = octoprint(1)
    path = write_config(
        tmp_path,
        [PrinterSpec("p1", peer.url, peer.api_key)],
        tokens=TOKENS,
        sections="[jobs]\nupload_limit_mb = 2",
    )
    config = load_config(path, env={})
    viewer = ("--config", str(path))
    ops = (*viewer, "--token-file", str(tmp_path / "etc/secrets/ops.token"))
    bracket = print_file(tmp_path / "bracket.gcode")
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        # The config's first token is the viewer's: it may list but not add.
        refused = await farmctl("queue", "add", str(bracket), *viewer)
        assert refused.code == 77, refused
        assert "needs operator" in refused.err

        missing = await farmctl("queue", "add", str(tmp_path / "nope.gcode"), *ops)
        assert missing.code == 66, missing
        assert "nope.gcode: No such file or directory" in missing.err
        (tmp_path / "notes.txt").write_text("buy more PLA\n")
        not_gcode = await farmctl("queue", "add", str(tmp_path / "notes.txt"), *ops)
        assert not_gcode.code == 65, not_gcode
        assert not_gcode.err.startswith("farmctl: 'notes.txt' is not G-code")
        too_big = await farmctl(
            "queue", "add", str(padded_print_file(tmp_path / "huge.gcode", 3 << 20)), *ops
        )
        assert too_big.code == 65, too_big
        assert "larger than the limit of 2 MiB" in too_big.err
        assert await farm.jobs() == []

        # A fresh farm does not know its printer's bed is clear, so every job stays queued.
        added = await farmctl(
            "queue",
            "add",
            str(bracket),
            "--copies",
            "2",
            "--owner",
            "alice",
            "--priority",
            "3",
            "--json",
            *ops,
        )
        assert added.code == 0, added
        jobs = json.loads(added.out)
        assert [(j["state"], j["file"], j["owner"], j["priority"]) for j in jobs] == [
            ("queued", "bracket.gcode", "alice", 3)
        ] * 2
        assert (jobs[0]["material"], jobs[0]["nozzle"], jobs[0]["printer"]) == ("PLA", 0.4, None)
        big = await farmctl(
            "queue", "add", str(padded_print_file(tmp_path / "big.gcode", 3 << 19)), "--material", "PLA", *ops
        )
        assert big.code == 0, big
        assert "big.gcode" in big.out
        assert "queued" in big.out
        ids = [j["id"] for j in await farm.jobs()]
        assert ids[:2] == [j["id"] for j in jobs]
        assert len(ids) == 3

        for listing in (["queue"], ["queue", "list"]):
            table = await farmctl(*listing, *viewer)
            assert table.code == 0, table
            assert "bracket.gcode" in table.out
            assert "alice" in table.out
            assert "big.gcode" in table.out

        cancelled = await farmctl("queue", "cancel", str(ids[0]), *ops)
        assert cancelled.code == 0, cancelled
        assert cancelled.out.strip() == f"job {ids[0]} (bracket.gcode): cancelled"
        again = await farmctl("queue", "cancel", str(ids[0]), *ops)
        assert again.code == 1, again
        assert f"job {ids[0]} is already cancelled" in again.err
        assert (await farmctl("queue", "cancel", "9999", *ops)).code == 1

        queued = await farmctl("queue", "list", "--json", "--state", "queued", *viewer)
        assert queued.code == 0, queued
        assert [j["id"] for j in json.loads(queued.out)] == ids[1:]
        both = await farmctl("queue", "--state", "cancelled", "--state", "queued", "--json", *viewer)
        assert [j["id"] for j in json.loads(both.out)] == ids

        # Nothing queued any more, so clearing the bed starts nothing and a second clear has nothing to do.
        for job_id in ids[1:]:
            assert (await farmctl("queue", "cancel", str(job_id), "--json", *ops)).code == 0
        async with asyncio.timeout(30):
            while (await farm.printers())["p1"]["state"] != "awaiting_clear":
                await asyncio.sleep(0.2)
        cleared = await farmctl("clear", "p1", *ops)
        assert cleared.code == 0, cleared
        assert cleared.out.strip() == "p1: idle"
        twice = await farmctl("clear", "p1", "--json", *ops)
        assert twice.code == 1, twice
        assert "printer 'p1' is clear already" in twice.err
        unknown = await farmctl("clear", "nope", *ops)
        assert unknown.code == 1, unknown
        assert "no printer named 'nope'" in unknown.err


async def test_an_unreachable_daemon_is_exit_69(tmp_path: Path) -> None:
    token = tmp_path / "ops.token"
    token.write_text("token\n")
    down = ("--api", f"http://127.0.0.1:{free_port()}", "--token-file", str(token))
    result = await farmctl("queue", *down)
    assert result.code == 69, result
    assert "cannot reach the farmctl daemon" in result.err
    added = await farmctl("queue", "add", str(print_file(tmp_path / "a.gcode")), *down)
    assert added.code == 69, added


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / 'part "v2".gcode'
    path.write_bytes(bytes(range(256)) * (5 * UPLOAD_CHUNK // 2 // 256))
    return path


async def _aiter(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_multipart_body_length_and_server_parse(upload: Path) -> None:
    fields = {"copies": "2", "owner": "zoë", "material": "PETG"}
    sent: list[int] = []
    with upload.open("rb") as f:
        body = MultipartBody(fields, f, "part.gcode")
        chunks = list(body.chunks(sent.append))
    assert sum(len(c) for c in chunks) == body.content_length
    assert chunks[0] == body.head
    assert chunks[-1] == body.tail
    assert sent == [len(c) for c in chunks[1:-1]]
    assert sum(sent) == upload.stat().st_size
    assert max(sent) == UPLOAD_CHUNK

    # The daemon's own streaming parser reads back every field (before the file) and the file intact.
    form = StreamingForm(body.content_type, _aiter(iter(chunks)), on_file=check_file_name)
    received = b"".join([c async for c in form.file_chunks()])
    assert form.fields == fields
    assert form.file_name == "part.gcode"
    assert received == upload.read_bytes()


async def test_multipart_body_quotes_the_file_name(upload: Path) -> None:
    with upload.open("rb") as f:
        body = MultipartBody({}, f, upload.name)
        form = StreamingForm(body.content_type, _aiter(body.chunks()))
        assert len(b"".join([c async for c in form.file_chunks()])) == upload.stat().st_size
    assert form.fields == {}
    assert form.file_name == 'part "v2".gcode'


def test_httpx_sends_the_explicit_length_not_chunked(upload: Path) -> None:
    with upload.open("rb") as f:
        body = MultipartBody({"owner": "alice"}, f, "part.gcode")
        request = httpx.Request(
            "POST",
            "http://farm/api/v1/jobs",
            content=body.chunks(),
            headers={"Content-Type": body.content_type, "Content-Length": str(body.content_length)},
        )
    assert request.headers["content-length"] == str(body.content_length)
    assert "transfer-encoding" not in request.headers


def test_a_file_that_grows_while_sent_is_an_error(upload: Path) -> None:
    with upload.open("rb") as f:
        body = MultipartBody({}, f, "part.gcode")
        with upload.open("ab") as writer:
            writer.write(b"; more\n")
        with pytest.raises(LocalFileError, match="grew while it was sent"):
            list(body.chunks())
