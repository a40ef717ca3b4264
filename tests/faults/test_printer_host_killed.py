"""Fault: one of three OctoPrint hosts is SIGKILLed mid-print. Its job is failed once offline_grace has
passed (not before, and not much after), and the other printers' jobs print to the end.

tests/test_dispatch.py's offline test shows the failure and the host's return; this one times the
failure against offline_grace and watches two printers carry on.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.faults.conftest import report
from tests.helpers import PrinterSpec, config_for
from tests.test_dispatch import remote_prints

pytestmark = pytest.mark.faults

GRACE_S = 5.0
DISPATCH_INTERVAL_S = 0.5
# A killed host's websocket closes at once and the poll that follows is refused, so the printer is
# offline within moments; the job then fails at the first dispatch round after the grace.
MARGIN_S = DISPATCH_INTERVAL_S + 1.5


async def test_a_host_killed_mid_print_fails_its_job_within_the_grace_and_spares_the_others(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    peers = octoprint(3)
    names = ["a", "b", "c"]
    specs = [PrinterSpec(n, p.url, p.api_key) for n, p in zip(names, peers, strict=True)]
    sections = (
        f"[jobs]\ndispatch_interval = {DISPATCH_INTERVAL_S}\noffline_grace = {GRACE_S}\n"
        "retry_after_offline = 0\n"
    )
    config = config_for(tmp_path, specs, tokens=TOKENS, sections=sections)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.clear_all()
        jobs = {
            name: (await farm.submit(print_file(tmp_path / f"{name}.gcode", seconds=s), printer=name))[0]
            for name, s in (("a", 60), ("b", 12), ("c", 12))
        }
        for job in jobs.values():
            await farm.wait_job(job["id"], {"printing"}, 30)
        killed_at, killed_wall = time.monotonic(), datetime.now().astimezone()
        await asyncio.to_thread(peers[0].kill)  # the host of printer a dies without a goodbye

        offline_s = None
        while (job := await farm.job(jobs["a"]["id"]))["state"] == "printing":
            if offline_s is None and (await farm.printers())["a"]["state"] == "offline":
                offline_s = time.monotonic() - killed_at
            if time.monotonic() - killed_at > GRACE_S + 15:
                break
            await asyncio.sleep(0.1)
        seen_failed_s = time.monotonic() - killed_at
        assert job["state"] == "failed", (f"{seen_failed_s:.1f}s after its host was killed", job)
        assert f"offline for more than {GRACE_S:g}s" in job["error"]
        events = (await farm.api.get(f"/api/v1/jobs/{jobs['a']['id']}/events")).json()["events"]
        failed_at = datetime.fromisoformat(next(e["at"] for e in events if e["state"] == "failed"))
        failed_s = (failed_at - killed_wall).total_seconds()
        # Not before the grace (the host may come back), and not long after it.
        assert GRACE_S <= failed_s <= GRACE_S + MARGIN_S, (failed_s, events)
        assert offline_s is not None
        assert offline_s < 2.0, offline_s

        # The other two print on to the end, each once, as their hosts' history shows.
        for name in ("b", "c"):
            done = await farm.wait_job(jobs[name]["id"], {"completed", "failed", "cancelled"}, 60)
            assert (done["state"], done["printer"]) == ("completed", name), done
        await asyncio.sleep(1.0)
        assert (await farm.job(jobs["a"]["id"]))["state"] == "failed"  # not requeued (retry 0)
    for name, peer in zip(names[1:], peers[1:], strict=True):
        history = await remote_prints(peer)
        prints = [c for f, c in history.items() if f.startswith(f"farmctl-{jobs[name]['id']}-")]
        assert prints == [(1, 0)], (name, history)
    report(
        "printer_host_killed",
        {
            "offline_grace_s": GRACE_S,
            "seen_offline_s": round(offline_s, 2),
            "job_failed_s": round(failed_s, 2),
            "seen_failed_by_api_poll_s": round(seen_failed_s, 2),
            "others_completed": 2,
        },
    )
