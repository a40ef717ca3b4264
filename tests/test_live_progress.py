"""Progress and temperatures pushed on `GET /api/v1/events` while a job prints (a real daemon, a real
OctoPrint virtual printer), without waking the dispatcher for each of them."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.core.events import EventFeed, PrinterProgress
from controller.jobs.dispatch import Dispatcher
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, config_for

# Long enough that a round every DISPATCH_S is a handful while progress comes about once a second.
DISPATCH_S = 10.0
PRINT_S = 20.0

Frame = tuple[float, dict[str, Any]]


async def read_printer_frames(base: str, token: str, frames: list[Frame]) -> None:
    """An EventSource-like client: each `event: printer` object, with when it arrived."""
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(10.0, read=None)
    async with (
        httpx.AsyncClient(base_url=base, timeout=timeout) as client,
        client.stream("GET", "/api/v1/events", headers=headers) as resp,
    ):
        assert resp.status_code == 200
        kind = ""
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "printer":
                frames.append((time.monotonic(), json.loads(line[6:])))


def stepped_print(path: Path, seconds: float) -> Path:
    """A print whose hot end target drops 5 °C every 2 s (from the peer's ambient 250 °C): its
    temperatures move the whole time it prints."""
    print_file(path, seconds=seconds)
    lines, target = [], 240
    for i, line in enumerate(path.read_text().splitlines()):
        lines.append(line)
        if line.startswith("G4 ") and i % 8 == 0:
            lines.append(f"M104 S{target}")
            target -= 5
    path.write_text("\n".join(lines) + "\n")
    return path


def settled(printer: dict[str, Any]) -> dict[str, Any]:
    """What of a printer object holds still once a print is over."""
    return {k: v for k, v in printer.items() if k not in ("last_seen", "temperatures")}


def tool(frame: dict[str, Any]) -> tuple[float | None, float | None]:
    heater = frame["temperatures"].get("tool0", {})
    return heater.get("actual"), heater.get("target")


@pytest.mark.peers
async def test_a_printing_job_pushes_progress_and_temperatures_without_a_dispatch_round_each(
    octoprint: OctoPrintFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[float] = []
    real_round = Dispatcher.round

    async def counted_round(self: Dispatcher, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        rounds.append(time.monotonic())
        await real_round(self, stop, tg)

    monkeypatch.setattr(Dispatcher, "round", counted_round)
    feeds: list[EventFeed] = []
    real_init = EventFeed.__init__

    def kept_init(self: EventFeed) -> None:
        real_init(self)
        feeds.append(self)

    monkeypatch.setattr(EventFeed, "__init__", kept_init)
    (peer,) = octoprint(1)
    specs = [PrinterSpec("p1", peer.url, peer.api_key)]
    config = config_for(tmp_path, specs, tokens=TOKENS, sections=f"[jobs]\ndispatch_interval = {DISPATCH_S}")
    frames: list[Frame] = []
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.clear_all()
        base, viewer = str(farm.api.base_url), farm.tokens["viewer"]
        reader = asyncio.create_task(read_printer_frames(base, viewer, frames))
        try:
            async with asyncio.timeout(30):
                while not frames:  # the snapshot: the stream is open
                    await asyncio.sleep(0.1)
            (job,) = await farm.submit(stepped_print(tmp_path / "part.gcode", PRINT_S))
            await farm.wait_job(job["id"], {"completed"}, timeout=120)
            # After the print ends the host's words and progress settle within a second or two of the
            # state change (held by the throttle, then sent at the window's end): the last pushed
            # object must then say what REST says. (The temperatures keep moving for a minute, back
            # to the peer's ambient; they are checked while it prints.)
            async with asyncio.timeout(60):
                while True:
                    quiet_from = settled((await farm.printers())["p1"])
                    await asyncio.sleep(2.5)
                    last = settled(next(f for _, f in reversed(frames) if f["name"] == "p1"))
                    if settled((await farm.printers())["p1"]) == quiet_from:
                        break
            assert last == quiet_from, (last, quiet_from)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    # Progress is the live view's alone: no other part of the daemon subscribes to it (the notifier
    # and the InfluxDB sink, which this config has not, subscribe to other kinds).
    (feed,) = feeds
    kinds = {sub.name: sub.kinds for sub in feed.subscriptions}
    assert {"dispatcher", "printer-timeline", "accounting", "live-updates"} <= set(kinds), kinds
    assert [name for name, k in kinds.items() if PrinterProgress in k] == ["live-updates"], kinds

    p1 = [(t, f) for t, f in frames if f["name"] == "p1"]
    printing = [(t, f) for t, f in p1 if f["state"] == "printing" and f["job_id"] == job["id"]]
    assert printing, p1
    start, end = printing[0][0], printing[-1][0]
    span = end - start
    # (None while OctoPrint is still starting the print.)
    progress = [f["progress"] for _, f in printing if f["progress"] is not None]
    temps = [tool(f) for _, f in printing]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(printing)]
    during = [t for t in rounds if start < t <= end]
    print(
        f"{len(printing)} printing frames over {span:.1f}s, gaps {min(gaps):.2f}..{max(gaps):.2f}s; "
        f"progress {progress[0]}..{progress[-1]}; tool0 {len(set(temps))} readings; "
        f"{len(during)} dispatch rounds meanwhile"
    )
    assert span > PRINT_S * 0.6, span
    # Increasing progress, pushed about once a second (the host sends a frame a second; one a second
    # per printer is the daemon's cap), never more than a few seconds apart.
    assert progress == sorted(progress), progress
    assert len(set(progress)) >= span / 2, progress
    assert max(gaps) < 4.0, gaps
    assert len(printing) <= span / 1.0 + 4, "more than one progress frame a second"
    assert len({target for _, target in temps}) >= span / 4, temps
    assert len({actual for actual, _ in temps}) >= span / 4, temps
    # The dispatcher took none of them: its rounds are its own interval's, not one per frame. The print's
    # start wakes a burst of rounds (OctoPrint's three start events, the job's own changes, the first
    # frame that agrees) within a few ms of the first printing frame, some just before it and some just
    # after: the count starts a second later.
    settled_rounds = [t for t in during if t > start + 1.0]
    assert len(settled_rounds) <= span / DISPATCH_S + 2, (len(settled_rounds), len(during), len(printing))
    assert len(during) < len(printing) / 2, (len(during), len(printing))
