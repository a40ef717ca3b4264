"""Write line-protocol batches to InfluxDB: v1 `/write` (InfluxDB 1.x) or v2 through influxdb-client.

Errors are sorted for the caller's retry policy: InfluxUnavailable (retry later: connection, timeout,
5xx, 429, a database that does not exist yet), InfluxAuthError (401/403: retry later, loudly),
InfluxRejected (400-class: the batch itself is bad; split it to find the bad point).
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Protocol, cast

import aiohttp

from devices.errors import DeviceAuthError, DeviceBadRequest, DeviceUnavailable
from devices.urls import redact_url, redact_urls_in


class InfluxUnavailable(DeviceUnavailable):
    """Not written, try again later."""


class InfluxAuthError(InfluxUnavailable, DeviceAuthError):
    """The database refused our credentials (401/403). Also an InfluxUnavailable: the writer spools and
    retries as for an outage (the credentials may be fixed while it runs), only louder."""


class InfluxRejected(DeviceBadRequest):
    """The database refused the batch's content (400, 413, 422)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Writer(Protocol):
    async def write(self, lines: list[str]) -> None: ...

    async def close(self) -> None: ...


def _classify(status: int, text: str, where: str) -> Exception | None:
    if status < 300:
        return None
    try:
        message = str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        message = text
    message = f"{where}: {status} {message.strip()[:200]}"
    if status in (401, 403):
        return InfluxAuthError(message)
    if status in (400, 413, 422):
        return InfluxRejected(message, status)
    return InfluxUnavailable(message)  # 404 (no such database yet), 429, 5xx


def _failed(where: str, exc: BaseException) -> str:
    # aiohttp puts the request URL, userinfo included, into some of its messages.
    return f"{where}: {type(exc).__name__} {redact_urls_in(str(exc))}".strip()


def _conflict(where: str, exc: ValueError) -> InfluxAuthError:
    # aiohttp refuses a user and password in the URL beside an Authorization header (a v2 token, a
    # v1 username): not a crash of the writer, but an error that says which credentials to keep.
    return InfluxAuthError(
        f"{where}: {redact_urls_in(str(exc))} (give credentials in the config, not the URL)"
    )


class V1Writer:
    """InfluxDB 1.x `/write?db=&rp=&precision=ns` with Basic auth when a user is set."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = url.rstrip("/") + "/write"
        self._where = redact_url(self._url)  # for errors: no user or password from the URL
        self._params = {"db": database, "precision": "ns"}
        if retention_policy:
            self._params["rp"] = retention_policy
        self._headers: dict[str, str] = {}
        if username:
            pair = f"{username}:{password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def write(self, lines: list[str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = ("\n".join(lines) + "\n").encode()
        try:
            async with asyncio.timeout(self._timeout):
                async with self._session.post(
                    self._url, params=self._params, data=body, headers=self._headers
                ) as resp:
                    status, text = resp.status, await resp.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise InfluxUnavailable(_failed(self._where, exc)) from None
        except ValueError as exc:
            raise _conflict(self._where, exc) from None
        error = _classify(status, text, self._where)
        if error is not None:
            raise error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class V2Writer:
    """InfluxDB 2.x/3.x, 1.8+ and VictoriaMetrics through influxdb-client's async write API."""

    def __init__(self, url: str, *, token: str, org: str, bucket: str, timeout: float = 10.0) -> None:
        self._url, self._token, self._org, self._bucket = url, token, org, bucket
        self._where = redact_url(url)  # for errors: no user or password from the URL
        self._timeout_ms = int(timeout * 1000)
        self._client: object | None = None

    async def write(self, lines: list[str]) -> None:
        # Imported on first use: influxdb-client pulls in reactivex and friends (~0.3 s on a Pi),
        # which a v1 setup never needs.
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        if self._client is None:  # made inside a coroutine, as the async client requires
            self._client = InfluxDBClientAsync(
                url=self._url, token=self._token, org=self._org, timeout=self._timeout_ms
            )
        client = self._client
        assert isinstance(client, InfluxDBClientAsync)
        try:
            async with asyncio.timeout(self._timeout_ms / 1000 + 1):
                await client.write_api().write(
                    bucket=self._bucket,
                    org=self._org,
                    record="\n".join(lines),
                    write_precision=cast(WritePrecision, WritePrecision.NS),
                )
        except ApiException as exc:
            error = _classify(int(exc.status or 0), str(exc.body or exc.reason or ""), self._where)
            raise (error or InfluxUnavailable(f"{self._where}: {exc.status}")) from None
        except InfluxDBError as exc:
            raise InfluxUnavailable(f"{self._where}: {redact_urls_in(str(exc))}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise InfluxUnavailable(_failed(self._where, exc)) from None
        except ValueError as exc:
            raise _conflict(self._where, exc) from None

    async def close(self) -> None:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        if isinstance(self._client, InfluxDBClientAsync):
            await self._client.close()  # type: ignore[no-untyped-call]
        self._client = None
