"""The API under odd input: ids SQLite cannot hold, uploads cut off by the client or a daemon stop,
refused files, and an OpenAPI document that says what every route answers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from controller.api.app import create_app
from controller.api.errors import JSON_BODY_LIMIT
from controller.config import Config
from controller.fleet.coordinator import Fleet
from controller.jobs import JobState
from controller.jobs.files import FileStore
from controller.jobs.queue import JobQueue
from controller.store import AsyncStore, NotFound, Store
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import closed_port_printers, config_for, eventually, write_config
from tests.peers.base import free_port

TOO_BIG = 2**63  # one past SQLite's largest integer
LARGEST = 2**63 - 1
FORM_ORDER = ["copies", "priority", "material", "nozzle", "printer", "group", "owner", "file"]


def _disk(config: Config) -> list[str]:
    """Every file and folder under the state dir's files/, relative to it."""
    root = config.controller.state_dir / "files"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_ids_sqlite_cannot_hold_get_a_plain_422_and_every_error_is_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, [], tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        for bad in (TOO_BIG, 10**40, 0, -1, "seven"):
            for method, path in (
                ("GET", f"/api/v1/jobs/{bad}"),
                ("GET", f"/api/v1/jobs/{bad}/events"),
                ("POST", f"/api/v1/jobs/{bad}/cancel"),
            ):
                resp = await farm.api.request(method, path)
                assert resp.status_code == 422, (path, resp.text)
                assert resp.json()["error"].startswith("path.job_id: "), resp.text
        for method, path in (
            ("GET", f"/api/v1/jobs/{LARGEST}"),
            ("GET", f"/api/v1/jobs/{LARGEST}/events"),
            ("POST", f"/api/v1/jobs/{LARGEST}/cancel"),
        ):
            resp = await farm.api.request(method, path)
            assert (resp.status_code, resp.json()) == (404, {"error": f"no job {LARGEST}"}), path
        unknown = await farm.api.get("/api/v1/nothing")
        assert (unknown.status_code, unknown.json()) == (404, {"error": "Not Found"})
        wrong = await farm.api.put("/api/v1/jobs")
        assert wrong.status_code == 405
        assert "error" in wrong.json()
        assert set(wrong.headers["allow"].split(", ")) >= {"GET", "POST"}  # every method of the path
    assert not _errors(caplog), [r.getMessage() for r in _errors(caplog)]


def test_the_store_answers_ids_sqlite_cannot_hold_as_unknown(tmp_path: Path) -> None:
    store = Store(tmp_path / "farmctl.db")
    try:
        for bad in (TOO_BIG, -(2**70), 0):
            with pytest.raises(NotFound):
                store.get_job(bad)
            with pytest.raises(NotFound):
                store.transition(bad, JobState.CANCELLED)
            assert store.events(bad) == []
            store.set_progress(bad, 50.0)  # nothing to update, and no OverflowError
    finally:
        store.close()


async def test_openapi_documents_auth_errors_and_an_upload_a_client_can_send(tmp_path: Path) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    gcode = print_file(tmp_path / "cube.gcode").read_bytes()
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        schema = (await farm.api.get("/openapi.json", headers=farm.as_role("viewer"))).json()
        error_ref = {"$ref": "#/components/schemas/ErrorOut"}
        checked = 0
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                if path == "/healthz":
                    assert "401" not in responses
                    continue
                checked += 1
                where = f"{method.upper()} {path}"
                body = responses["401"]["content"]["application/json"]["schema"]
                assert body == error_ref or body["required"] == ["error"], where
                # Every known token is a viewer at least: only routes above viewer can answer 403
                # (each route's role is checked against the daemon in tests/test_openapi_docs.py).
                assert ("403" in responses) == ("Role: viewer" not in operation["description"]), where
                for code, response in responses.items():
                    if code.startswith(("4", "5")):
                        assert "application/json" in response["content"], (where, code)
        assert checked >= 8
        # FastAPI's own 422 body ({"detail": [...]}) is not what the daemon sends.
        assert "HTTPValidationError" not in schema["components"]["schemas"]

        body = schema["paths"]["/api/v1/jobs"]["post"]["requestBody"]
        assert body["required"] is True
        form = body["content"]["multipart/form-data"]["schema"]
        assert list(form["properties"]) == FORM_ORDER
        assert form["required"] == ["file"]
        assert form["properties"]["file"]["format"] == "binary"
        # A client generated from the document sends the fields with defaults, then the file.
        fields = {
            name: str(part["default"]) for name, part in form["properties"].items() if "default" in part
        }
        assert fields == {"copies": "1", "priority": "0"}
        resp = await farm.api.post("/api/v1/jobs", data=fields, files={"file": ("cube.gcode", gcode)})
        assert resp.status_code == 201, resp.text
        assert len(resp.json()["jobs"]) == 1


async def _send_part_of_an_upload(
    port: int, token: str, mib: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a POST /api/v1/jobs that announces 50 MiB and send only `mib` MiB of the file."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="copies"\r\n\r\n1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="part.gcode"\r\n\r\n'
    ).encode()
    line = b"G1 X10 Y10 E0.5\n"  # 16 bytes: mib MiB of G-code exactly, less the form's head
    writer.write(
        (
            "POST /api/v1/jobs HTTP/1.1\r\nHost: farm\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {50 * 2**20}\r\n\r\n"
        ).encode()
        + head
        + line * ((mib * 2**20 - len(head)) // len(line))
    )
    await writer.drain()
    return reader, writer


async def test_a_client_gone_mid_upload_is_one_info_line_and_leaves_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        before = _disk(config)
        _, writer = await _send_part_of_an_upload(config.api.port, farm.tokens["ops"], 3)
        writer.close()
        await writer.wait_closed()
        expected = "upload of part.gcode by ops aborted: client disconnected after 3.0 MiB"
        await eventually(lambda: expected in caplog.text, timeout=15, what="the abort line")
        assert caplog.text.count("aborted") == 1
        assert _disk(config) == before == ["partial"]
        assert await farm.jobs() == []
    assert not _errors(caplog), [r.getMessage() for r in _errors(caplog)]


async def test_a_daemon_stop_mid_upload_is_one_info_line_and_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, closed_port_printers(1), api_port=port, tokens=TOKENS)
    token = (tmp_path / "etc/secrets/ops.token").read_text().strip()
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
    stderr = tmp_path / "daemon.stderr"
    with stderr.open("wb") as err:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", "run", "--config", str(path), stderr=err, env=env
        )
    try:
        async with asyncio.timeout(30):
            while "farmctl ready" not in stderr.read_text():
                await asyncio.sleep(0.05)
        reader, writer = await _send_part_of_an_upload(port, token, 2)
        await eventually(lambda: any((tmp_path / "state/files/partial").iterdir()), what="the upload")
        daemon.send_signal(signal.SIGTERM)
        # The daemon ends the upload with 503 (at once when it passes its stop event to the app;
        # else when its grace for open requests runs out) and exits.
        async with asyncio.timeout(45):
            answer = await reader.read()
            assert await daemon.wait() == 0
        writer.close()
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert answer.endswith(b'{"error":"upload aborted: the daemon is stopping"}'), answer
    log = stderr.read_text()
    assert "upload of part.gcode by ops aborted: the daemon is stopping after 2.0 MiB" in log, log
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log
    assert sorted(p.name for p in (tmp_path / "state/files").rglob("*")) == ["partial"]


@contextlib.asynccontextmanager
async def _app_with_stop_event(config: Config, stopping: asyncio.Event) -> AsyncIterator[None]:
    """The API app on a real socket, built the way the daemon builds it, with its stop event."""
    store = AsyncStore(Store(config.controller.state_dir / "farmctl.db"))
    async with aiohttp.ClientSession() as session:
        fleet = Fleet(config.printers, config.controller, session, beds={})
        queue = JobQueue(config, store, FileStore(config.controller.state_dir / "files"), fleet)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config, queue, stopping=stopping),
                host="127.0.0.1",
                port=config.api.port,
                log_config=None,
                lifespan="off",
            )
        )
        server.capture_signals = contextlib.nullcontext  # type: ignore[assignment,method-assign]
        serving = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started, what="the API")
            yield
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 20)
            store.close()


async def test_the_stop_event_ends_an_upload_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    token = (tmp_path / "etc/secrets/ops.token").read_text().strip()
    stopping = asyncio.Event()
    async with _app_with_stop_event(config, stopping):
        reader, writer = await _send_part_of_an_upload(config.api.port, token, 1)
        await eventually(
            lambda: any((config.controller.state_dir / "files/partial").iterdir()), what="upload"
        )
        stopping.set()
        async with asyncio.timeout(2):  # not the client's pace, not a grace period: now
            answer = await reader.readuntil(b"}")
        writer.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert "upload of part.gcode by ops aborted: the daemon is stopping after 1.0 MiB" in caplog.text
    assert not _errors(caplog), [r.getMessage() for r in _errors(caplog)]
    assert _disk(config) == ["partial"]


async def test_refused_uploads_leave_no_trace_on_disk(tmp_path: Path) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    wide = print_file(tmp_path / "wide.gcode", nozzle=0.8).read_bytes()  # the slicer's nozzle: 0.8 mm
    async with running_farm(config, tmp_path / "etc/secrets") as farm:

        async def post(name: str, body: bytes) -> Any:
            resp = await farm.api.post("/api/v1/jobs", files={"file": (name, body)})
            return resp.status_code, resp.json()["error"]

        # Both are refused only after the file is stored: its content decides.
        status, error = await post("image.gcode", b"\x89PNG\r\n\x1a\n\x00\x00binary")
        assert (status, "binary" in error) == (415, True), error
        status, error = await post("wide.gcode", wide)
        assert (status, "0.8 mm nozzle" in error) == (422, True), error
        assert _disk(config) == ["partial"]


def test_files_in_the_old_sharded_folders_move_up(tmp_path: Path) -> None:
    data = b"G28\n"
    sha = hashlib.sha256(data).hexdigest()
    shard = tmp_path / "files" / sha[:2]
    shard.mkdir(parents=True)
    (shard / f"{sha}.gcode").write_bytes(data)
    files = FileStore(tmp_path / "files")
    assert files.path_of(sha).read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == sorted([f"{sha}.gcode", "partial"])


async def test_a_json_body_past_its_limit_is_a_413_before_it_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        (job,) = await farm.submit(print_file(tmp_path / "cube.gcode"))
        printer = config.printers[0].name
        admin = farm.as_role("admin")
        huge = b'{"reason": "' + b"x" * (2 * JSON_BODY_LIMIT) + b'"}'

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(huge), 4096):  # no Content-Length: the limit counts as it reads
                yield huge[start : start + 4096]

        for method, path, headers in (
            ("POST", f"/api/v1/jobs/{job['id']}/move", {}),
            ("POST", f"/api/v1/printers/{printer}/maintenance", {}),
            ("POST", f"/api/v1/printers/{printer}/material", {}),
            ("POST", "/api/v1/admin/tokens", admin),
            ("POST", "/api/v1/admin/members", admin),
            ("PATCH", "/api/v1/admin/members/alice", admin),
        ):
            for body in (huge, chunks()):
                resp = await farm.api.request(
                    method, path, content=body, headers={**headers, "content-type": "application/json"}
                )
                assert resp.status_code == 413, (path, resp.status_code, resp.text[:200])
                assert resp.headers["content-type"].startswith("application/json"), path
                assert resp.json() == {"error": f"the body is larger than {JSON_BODY_LIMIT} bytes"}, path
        # A body within the limit still does what it says.
        resp = await farm.api.post(f"/api/v1/printers/{printer}/maintenance", json={"reason": "nozzle swap"})
        assert resp.status_code == 200, resp.text
    assert not _errors(caplog), [r.getMessage() for r in _errors(caplog)]
