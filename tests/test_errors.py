"""One error hierarchy, mapped to HTTP in one place: every error the farm or a driver raises on purpose
reaches the client as `{"error": "<message>"}` with the status of its kind, and a bug as a plain 500."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import httpx
import pytest
from fastapi import FastAPI

from controller.api.app import create_app
from controller.api.forms import BadField
from controller.api.multipart import FormError
from controller.api.upload import ClientLeft, DaemonStopping
from controller.core.errors import FarmError
from controller.fleet.coordinator import Fleet
from controller.jobs import IllegalTransition
from controller.jobs.files import EmptyFile, FileStore, FileTooLarge
from controller.jobs.queue import BadSubmission, JobConflict, JobQueue, NotGcode, Unprintable
from controller.store import AsyncStore, NotFound, Store
from devices.errors import (
    DeviceAuthError,
    DeviceBadRequest,
    DeviceBusy,
    DeviceError,
    DeviceUnavailable,
    DeviceUnreachable,
)
from devices.influx import InfluxAuthError, InfluxRejected, InfluxUnavailable
from tests.farm import TOKENS
from tests.helpers import closed_port_printers, config_for

ROOT = Path(__file__).resolve().parent.parent

# Every error the API may see, and what the client gets.
STATUS: list[tuple[Exception, int]] = [
    (FormError("send the job as multipart/form-data"), 400),
    (BadSubmission("the file part has no file name"), 400),
    (EmptyFile("file is empty"), 400),
    (ClientLeft("client disconnected"), 400),
    (NotFound("no job 7"), 404),
    (JobConflict("job 7 is already completed"), 409),
    (IllegalTransition("job cannot go from completed to queued"), 409),
    (FileTooLarge("file is larger than the limit of 1 MiB"), 413),
    (NotGcode("notes.txt is not G-code"), 415),
    (Unprintable("no printer can take this job: no printer named 'x'"), 422),
    (BadField("copies must be a whole number, not 'two'"), 422),
    (DaemonStopping("the daemon is stopping"), 503),
    (DeviceBusy("printer is not operational"), 409),
    (DeviceBadRequest("415 unsupported file"), 422),
    (InfluxRejected("400 unable to parse", 400), 422),
    (DeviceAuthError("the host refused our key"), 502),
    (InfluxAuthError("401 authorization failed"), 502),
    (DeviceUnavailable("timed out"), 503),
    (DeviceUnreachable("connection refused"), 503),
    (InfluxUnavailable("connection refused"), 503),
    (DeviceError("something the driver did not sort"), 502),
]


@contextlib.asynccontextmanager
async def _client(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The daemon's app (as create_app builds it), called in process with an operator token."""
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    store = AsyncStore(Store(config.controller.state_dir / "farmctl.db"))
    try:
        async with aiohttp.ClientSession() as session:
            fleet = Fleet(config.printers, config.controller, session, beds={})
            queue = JobQueue(config, store, FileStore(config.controller.state_dir / "files"), fleet)
            app = create_app(config, queue)
            # Starlette re-raises an unhandled error after answering it (so uvicorn logs it).
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://farm") as client:
                yield app, client
    finally:
        store.close()


def _raising(error: Exception) -> Callable[[], None]:
    def route() -> None:
        raise error

    return route


async def test_every_error_answers_the_status_of_its_kind_with_its_message(tmp_path: Path) -> None:
    async with _client(tmp_path) as (app, client):
        for index, (error, _) in enumerate(STATUS):
            app.add_api_route(f"/fail/{index}", _raising(error))
        app.add_api_route("/bug", lambda: 1 / 0)
        for index, (error, status) in enumerate(STATUS):
            resp = await client.get(f"/fail/{index}")
            assert (resp.status_code, resp.json()) == (status, {"error": str(error)}), type(error).__name__
        bug = await client.get("/bug")
        assert bug.status_code == 500
        assert bug.json() == {"error": "internal error; the daemon's log has the details"}


def test_the_status_is_on_the_class() -> None:
    for error, status in STATUS:
        if isinstance(error, FarmError):
            assert type(error).status == status, type(error).__name__


def test_a_driver_error_is_a_device_error_of_its_kind() -> None:
    assert issubclass(InfluxUnavailable, DeviceUnavailable)
    assert issubclass(InfluxAuthError, DeviceAuthError)
    assert issubclass(InfluxRejected, DeviceBadRequest)
    # The telemetry writer spools and retries on InfluxUnavailable: a refused login is retried too.
    assert issubclass(InfluxAuthError, InfluxUnavailable)
    # Nothing in the controller catches these by a builtin base any more.
    for kind in (NotFound, IllegalTransition, JobConflict, FileTooLarge, EmptyFile, FormError):
        assert not issubclass(kind, (ValueError, LookupError, RuntimeError)), kind


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_devices_never_import_the_controller() -> None:
    for path in (ROOT / "devices").rglob("*.py"):
        assert not {m for m in _imports(path) if m.split(".")[0] == "controller"}, path


@pytest.mark.parametrize("module", sorted(p.name for p in (ROOT / "controller/api").glob("*.py")))
def test_routes_get_typed_services_not_app_state(module: str) -> None:
    text = (ROOT / "controller/api" / module).read_text()
    # services.py puts the one Services value on the app and reads it back for the dependencies.
    assert ("app.state" in text) == (module == "services.py"), module
