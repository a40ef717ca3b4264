"""Async OctoPrint REST client on aiohttp: a timeout on every call, typed results, our error types."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from devices.errors import DeviceAuthError, DeviceBadRequest, DeviceBusy, DeviceUnavailable, DeviceUnreachable
from devices.octoprint import parse
from devices.octoprint.models import (
    ConnectionInfo,
    RemoteFile,
    Snapshot,
    UploadResult,
    VersionInfo,
)
from devices.urls import redact_url, redact_urls_in

# Uploads may be large; beyond the base timeout allow this many seconds per MB sent.
_UPLOAD_S_PER_MB = 2.0


class OctoPrintClient:
    """One OctoPrint instance. Use as `async with OctoPrintClient(url, key) as client:`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # For errors and logs: a user and password in the URL stay out of them.
        self.display_url = redact_url(self.base_url)
        self._headers = {"X-Api-Key": api_key}
        self.timeout = timeout
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No cookie jar: the API key authenticates every request; cookies would mix sessions.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
            self._own_session = True
        return self._session

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        limit_s: float | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.base_url}{path}"
        where = f"{method} {self.display_url}{path.split('?')[0]}"
        try:
            async with asyncio.timeout(limit_s or self.timeout):
                async with self.session.request(
                    method, url, json=json_body, data=data, headers=self._headers, params=params
                ) as resp:
                    text = await resp.text(errors="replace")
                    status = resp.status
        except TimeoutError:
            raise DeviceUnavailable(f"{where}: timed out") from None
        except aiohttp.ClientConnectorError as exc:
            raise DeviceUnreachable(f"{where}: {_describe(exc)}") from None
        except aiohttp.ClientError as exc:
            raise DeviceUnavailable(f"{where}: {_describe(exc)}") from None
        return _check(where, status, text)

    async def version(self) -> VersionInfo:
        """GET /api/version."""
        return parse.version_from(await self._request("GET", "/api/version"))

    async def connection(self) -> ConnectionInfo:
        """GET /api/connection: the serial link state."""
        return parse.connection_from(await self._request("GET", "/api/connection"))

    async def connect(self) -> None:
        """Ask OctoPrint to (re)connect to the printer with its saved settings."""
        await self._request("POST", "/api/connection", json_body={"command": "connect"})

    async def disconnect(self) -> None:
        """Ask OctoPrint to drop the serial link to the printer."""
        await self._request("POST", "/api/connection", json_body={"command": "disconnect"})

    async def snapshot(self) -> Snapshot:
        """State, job, progress and temperatures by REST (`/api/job` + `/api/printer`)."""
        job = await self._request("GET", "/api/job")
        try:
            printer = await self._request("GET", "/api/printer", params={"history": "false"})
        except DeviceBusy:
            printer = None  # 409: printer not operational; /api/job still says why
        return parse.snapshot_from_rest(job, printer)

    async def _job_command(self, command: str, **extra: str) -> None:
        await self._request("POST", "/api/job", json_body={"command": command, **extra})

    async def start(self) -> None:
        """Start the selected file. DeviceBusy (409) if not possible."""
        await self._job_command("start")

    async def cancel(self) -> None:
        """Cancel the running print. DeviceBusy (409) if nothing is printing."""
        await self._job_command("cancel")

    async def pause(self) -> None:
        """Pause the running print. DeviceBusy (409) if nothing is printing."""
        await self._job_command("pause", action="pause")

    async def resume(self) -> None:
        """Resume a paused print. DeviceBusy (409) if not paused."""
        await self._job_command("pause", action="resume")

    async def send_commands(self, commands: list[str]) -> None:
        """Send raw commands to the printer (G-code, or `!!DEBUG:` to a virtual printer)."""
        await self._request("POST", "/api/printer/command", json_body={"commands": commands})

    async def files(self) -> list[RemoteFile]:
        """Every G-code file stored on the printer host."""
        body = await self._request("GET", "/api/files/local", params={"recursive": "true"})
        return parse.files_from(body)

    async def delete_file(self, path: str) -> None:
        """Delete a stored file. DeviceBusy (409) while it is being printed."""
        await self._request("DELETE", f"/api/files/local/{path}")

    async def upload(
        self, source: Path, remote_name: str, *, select: bool = True, start: bool = True
    ) -> UploadResult:
        """Stream `source` to the printer host as `remote_name`; report whether the print started."""
        loop = asyncio.get_running_loop()
        try:
            stream = await loop.run_in_executor(None, source.open, "rb")
        except OSError as exc:
            raise DeviceBadRequest(f"cannot read {source.name}: {exc.strerror}") from None
        try:
            size = await loop.run_in_executor(None, lambda: source.stat().st_size)
            form = aiohttp.MultipartWriter("form-data")
            part = form.append(stream, {"Content-Type": "application/octet-stream"})
            part.set_content_disposition("form-data", name="file", filename=remote_name)
            for key, value in (("select", select), ("print", start)):
                field = form.append("true" if value else "false")
                field.set_content_disposition("form-data", name=key)
            if form.size is None:  # OctoPrint needs Content-Length; every part must be sized
                raise DeviceBadRequest(f"cannot size upload of {source.name}")
            body = await self._request(
                "POST",
                "/api/files/local",
                data=form,
                limit_s=self.timeout + _UPLOAD_S_PER_MB * size / 1e6,
            )
        finally:
            await loop.run_in_executor(None, stream.close)
        return parse.upload_from(body)

    async def passive_login(self) -> tuple[str, str]:
        """POST /api/login passive: the (user name, session) pair the push socket authenticates with."""
        body = await self._request("POST", "/api/login", json_body={"passive": True})
        if not isinstance(body, dict) or not body.get("name") or not body.get("session"):
            raise DeviceAuthError(f"{self.display_url}: passive login returned no session")
        return str(body["name"]), str(body["session"])


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    # aiohttp puts the request URL, userinfo included, into some of its messages.
    return type(exc).__name__ + (f": {redact_urls_in(str(exc))}" if str(exc) else "")


def _message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:200]
    return str(body)[:200]


def _check(where: str, status: int, text: str) -> Any:
    if status in (401, 403):
        raise DeviceAuthError(f"{where}: {status} access denied (check the API key)")
    if status == 409:
        raise DeviceBusy(f"{where}: 409 {_message(text)}")
    if status >= 500:
        raise DeviceUnavailable(f"{where}: {status} {_message(text)}")
    if status >= 400:
        raise DeviceBadRequest(f"{where}: {status} {_message(text)}")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise DeviceUnavailable(f"{where}: {status} answer is not JSON") from None
