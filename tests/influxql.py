"""Reading back what farmctl wrote to an InfluxDB 1.x peer, over InfluxQL."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.peers.servers import InfluxPeer

Auth = tuple[str, str]  # InfluxDB user and password


async def influxql(influx: InfluxPeer, query: str, auth: Auth | None = None) -> list[dict[str, Any]]:
    """Every row of `query` in database farm as a dict, with its series' tags (GROUP BY *)."""
    params = {"db": "farm", "q": query, "epoch": "ns"}  # integer times: RFC 3339 strings do not sort
    if auth is not None:
        params |= {"u": auth[0], "p": auth[1]}
    async with aiohttp.ClientSession() as http, http.get(f"{influx.url}/query", params=params) as resp:
        body = await resp.json()
    rows: list[dict[str, Any]] = []
    for series in body["results"][0].get("series", []):
        for values in series["values"]:
            rows.append({**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))})
    return rows


async def wait_rows(
    influx: InfluxPeer, query: str, count: int, timeout: float = 20, auth: Auth | None = None
) -> list[dict[str, Any]]:
    """The rows of `query` once there are at least `count`."""
    async with asyncio.timeout(timeout):
        while True:
            rows = await influxql(influx, query, auth)
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.2)


async def create_db(influx: InfluxPeer) -> None:
    params = {"q": "CREATE DATABASE farm"}
    async with aiohttp.ClientSession() as http, http.post(f"{influx.url}/query", params=params) as resp:
        assert resp.status == 200
