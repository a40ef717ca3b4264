"""Live updates: `GET /api/v1/events` against a real daemon (a child process, so its RSS is its own) and a
real OctoPrint virtual printer; 49 clients that read and one that never does."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from controller.config import load_config
from controller.web.sessions import CSRF_FIELD, SESSION_COOKIE
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, closed_port_printers, config_for, metric_value, write_config
from tests.test_crash import Api, Daemon

READERS = 49
# Materials long enough that each printer event is ~0.9 kB: a stream that kept every event for a
# client that never reads would hold MBs after the flood below.
MATERIALS = [[f"M{i:02d}{tag}{'X' * 26}" for i in range(16)] for tag in ("A", "B")]


@dataclass
class Reader:
    """One EventSource-like client: what each event it got said, with the time it arrived."""

    # (arrival, kind, printer name or job id, state, first material): the whole objects of thousands
    # of events times 49 readers would not fit in the test's memory.
    events: list[tuple[float, str, object, object, object]] = field(default_factory=list)
    first: dict[str, Any] | None = None
    ended: bool = False

    async def run(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["content-type"].startswith("text/event-stream")
            kind, data = "", ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and data:
                    obj = json.loads(data)
                    self.first = self.first or obj
                    materials = obj.get("materials") or [None]
                    ident = obj["name"] if kind == "printer" else obj["id"]
                    self.events.append((time.monotonic(), kind, ident, obj["state"], materials[0]))
                    kind, data = "", ""
        self.ended = True

    def job_since(self, t0: float, job_id: int) -> float | None:
        """When the first event after t0 showed job `job_id`."""
        return next(
            (t for t, kind, ident, _, _ in self.events if t >= t0 and kind == "job" and ident == job_id), None
        )

    def printer_since(
        self, t0: float, name: str, *, state: str | None = None, material: str | None = None
    ) -> float | None:
        """When the first event after t0 showed printer `name` in `state` or with `material` first."""
        for t, kind, n, s, m in self.events:
            wanted = (state is None or s == state) and (material is None or m == material)
            if t >= t0 and kind == "printer" and n == name and wanted:
                return t
        return None


def stuck_client(host: str, port: int, token: str) -> socket.socket:
    """Opens a stream and never reads a byte of it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once: the daemon must cope
    sock.connect((host, port))
    sock.sendall(
        f"GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    return sock


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _flood(client: aiohttp.ClientSession, base: str, token: str, names: list[str], count: int) -> None:
    """`count` material changes, round the printers, eight at a time: each a printer event to every
    stream (the printers differ, so a batch of them is not folded into one)."""
    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with sem:
            body = {"materials": MATERIALS[i // len(names) % 2]}
            url = f"{base}/api/v1/printers/{names[i % len(names)]}/material"
            async with client.post(url, json=body, headers=headers) as r:
                assert r.status == 200, await r.text()

    await asyncio.gather(*(one(i) for i in range(count)))


@pytest.mark.peers
async def test_fifty_streams_one_stuck_changes_reach_the_rest_within_a_second_rss_bounded(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    # Four more printers whose hosts are down: changes to several printers are sent one by one.
    specs = [PrinterSpec("p1", peer.url, peer.api_key), *closed_port_printers(4)]
    names = [p.name for p in specs]
    path = write_config(tmp_path, specs, tokens=TOKENS)
    config = load_config(path, env={})
    base = f"http://{config.api.listen}"
    viewer = (tmp_path / "etc/secrets/viewer.token").read_text().strip()
    ops = (tmp_path / "etc/secrets/ops.token").read_text().strip()
    log = tmp_path / "daemon.log"
    daemon = Daemon(path, log)
    api = Api(base, ops)
    readers = [Reader() for _ in range(READERS)]
    stuck: socket.socket | None = None
    try:
        api.wait_up()
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            # No token, or a bad one: 401 before any stream opens.
            async with session.get(f"{base}/api/v1/events") as resp:
                assert resp.status == 401
            async with session.get(f"{base}/api/v1/events", headers={"Authorization": "Bearer nope"}) as resp:
                assert resp.status == 401

            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(r.run(session, f"{base}/api/v1/events", viewer)) for r in readers]
                stuck = stuck_client(config.api.host, config.api.port, viewer)
                async with asyncio.timeout(60):
                    # The snapshot: p1 as the REST route shows it, to every reader.
                    while not all(any(e[1] == "printer" for e in r.events) for r in readers):
                        await asyncio.sleep(0.1)
                    while api.client.get("/api/v1/printers/p1").json()["state"] != "awaiting_clear":
                        await asyncio.sleep(0.2)
                snap = readers[0].first
                assert snap is not None
                assert snap["name"] == "p1"
                assert set(snap) == set(api.client.get("/api/v1/printers/p1").json())

                # A printer change: the bed confirmed clear. Every reader sees p1 idle within 1 s.
                t0 = time.monotonic()
                async with session.post(
                    f"{base}/api/v1/printers/p1/clear", headers={"Authorization": f"Bearer {ops}"}
                ) as resp:
                    assert resp.status == 200, await resp.text()
                await asyncio.sleep(1.5)
                late = [r.printer_since(t0, "p1", state="idle") for r in readers]
                assert all(t is not None and t - t0 < 1.0 for t in late), late

                # Many events while the stuck client stays connected: first until what it was sent fills
                # its socket (the daemon then holds what waits for it), then 3000 more.
                for _ in range(30):
                    await _flood(session, base, ops, names, 250)
                    if metric_value(api.client.get("/metrics").text, "farmctl_event_streams_blocked") == 1:
                        break
                rss_before = rss_kib(daemon.proc.pid)
                flood_started = time.monotonic()
                await _flood(session, base, ops, names, 3000)
                flood_s = time.monotonic() - flood_started
                await asyncio.sleep(1.0)
                rss_after = rss_kib(daemon.proc.pid)
                metrics = api.client.get("/metrics").text
                assert metric_value(metrics, "farmctl_event_streams") == READERS + 1  # the stuck one too
                assert metric_value(metrics, "farmctl_event_streams_blocked") == 1
                # What waits for it is each printer's latest state, not the history of 3000 changes.
                pending = metric_value(metrics, "farmctl_event_streams_pending_bytes")
                assert pending < len(names) * 2000, pending

                # And the last change still reaches every reader within 1 s.
                t0 = time.monotonic()
                async with session.post(
                    f"{base}/api/v1/printers/p1/material",
                    json={"materials": ["PETG"]},
                    headers={"Authorization": f"Bearer {ops}"},
                ) as resp:
                    assert resp.status == 200
                await asyncio.sleep(1.5)
                late = [r.printer_since(t0, "p1", material="PETG") for r in readers]
                assert all(t is not None and t - t0 < 1.0 for t in late), late

                # A job change: a new job, queued (it then prints on p1). Every reader has it within 1 s.
                gcode = print_file(tmp_path / "part.gcode", material="PETG")
                form = aiohttp.FormData()
                form.add_field("printer", "p1")
                form.add_field("file", gcode.read_bytes(), filename=gcode.name)
                t0 = time.monotonic()
                async with session.post(
                    f"{base}/api/v1/jobs", data=form, headers={"Authorization": f"Bearer {ops}"}
                ) as resp:
                    assert resp.status == 201, await resp.text()
                    job_id = (await resp.json())["jobs"][0]["id"]
                await asyncio.sleep(1.5)
                late = [r.job_since(t0, job_id) for r in readers]
                assert all(t is not None and t - t0 < 1.0 for t in late), late

                # The stream cap: 100 open at once, the next is refused with 503.
                extra = [
                    stuck_client(config.api.host, config.api.port, viewer) for _ in range(100 - READERS - 1)
                ]
                await asyncio.sleep(1.0)
                async with session.get(
                    f"{base}/api/v1/events", headers={"Authorization": f"Bearer {viewer}"}
                ) as resp:
                    assert resp.status == 503
                for sock in extra:
                    sock.close()

                # SIGTERM ends every stream promptly, the stuck one too, and the daemon exits cleanly.
                stopped = time.monotonic()
                daemon.proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(15):
                    await asyncio.gather(*tasks)
                assert daemon.wait_exit(15) == 0
                took = time.monotonic() - stopped
        print(
            f"RSS {rss_before} -> {rss_after} KiB over 3000 events to 50 streams in {flood_s:.1f}s; "
            f"{pending:.0f} bytes pending for the stuck one; stop took {took:.2f}s"
        )
        # A stream that held the stop would keep the API server for its whole 10 s grace (daemon.py).
        assert took < 8.0, took
        assert rss_after - rss_before < 8 * 1024, (rss_before, rss_after)
        assert all(r.ended for r in readers)
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        assert "without completing" not in text, text[-3000:]
    finally:
        if stuck is not None:
            stuck.close()
        daemon.kill()
        api.client.close()


async def test_the_web_page_session_opens_a_stream_as_the_token_does(tmp_path: Path) -> None:
    """EventSource cannot send a bearer header: the page's session cookie admits it (api/auth.py)."""
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        base = str(farm.api.base_url)
        async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
            assert (await browser.get("/api/v1/events")).status_code == 401
            page = await browser.get("/")
            csrf = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', page.text)
            assert csrf is not None, page.text[:500]
            signed_in = await browser.post(
                "/login", data={CSRF_FIELD: csrf[1], "secret": farm.tokens["viewer"]}
            )
            assert signed_in.status_code == 303, signed_in.text[:500]
            assert SESSION_COOKIE in browser.cookies
            async with browser.stream("GET", "/api/v1/events") as resp:
                assert resp.status_code == 200
                first = b""
                async for chunk in resp.aiter_bytes():
                    first += chunk
                    if b"event: printer" in first:
                        break
            assert first.startswith(b"retry: 3000\n\n"), first[:200]
