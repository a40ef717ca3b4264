"""Notifications against real peers: a loopback HTTP receiver (Apprise's json:// target), the real broker
(mosquitto), real OctoPrint virtual printers and the daemon; a receiver that is down at first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp import web

from controller.config import ConfigError, load_config
from controller.config.notify import NoticeKind, NotifyConfig
from controller.core.events import PrinterChanged
from controller.fleet.state import PrinterState, PrinterStatus
from controller.notify.notices import Notice, PrinterWatch
from controller.notify.service import Outbox
from controller.notify.targets import AppriseTarget
from devices.octoprint import OctoPrintClient
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import PrinterSpec, config_for, eventually, write_config
from tests.peers.base import free_port
from tests.peers.servers import MosquittoPeer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "farmctl.example.toml"
SECRET = "s3cr3t-hook-token"
# How each notice's title starts (the receivers sort what they get by it).
TITLES = {
    "Print finished": NoticeKind.PRINT_FINISHED,
    "Print failed": NoticeKind.PRINT_FAILED,
    "Printer error": NoticeKind.PRINTER_ERROR,
    "Printer offline": NoticeKind.PRINTER_OFFLINE,
    "Quota reached": NoticeKind.QUOTA_REACHED,
}


def kind_of(title: str) -> NoticeKind:
    return next(kind for start, kind in TITLES.items() if title.startswith(start))


class Receiver:
    """An HTTP endpoint on loopback taking Apprise's json:// POSTs."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.got: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        self.got.append(await request.json())
        self.auth.append(request.headers.get("Authorization"))
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def kinds(self) -> Counter[NoticeKind]:
        return Counter(kind_of(m["title"]) for m in self.got)


@contextlib.asynccontextmanager
async def mqtt_messages(port: int, topic: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every message on `topic`, as decoded JSON, while the block runs."""
    got: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                got.append(json.loads(bytes(message.payload)))

        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.peers
async def test_one_message_per_event_at_http_and_mqtt_and_a_down_receiver_is_retried(
    octoprint: OctoPrintFactory, mosquitto: MosquittoPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = octoprint(2)
    hook, late = Receiver(), Receiver()  # `late` is down until the first notice has failed a few times
    topic = f"test/{uuid.uuid4().hex[:8]}/notify"
    sections = f"""
[jobs]
dispatch_interval = 0.5
retry_after_error = 0
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
[notify]
urls = ["json://127.0.0.1:{hook.port}/hook", "json://farm:{SECRET}@127.0.0.1:{late.port}/late"]
mqtt_topic = "{topic}"
burst = 20
[membership]
unknown_owners = "allow"
[[members]]
name = "alice"
quota_g = 1.0
"""
    specs = [PrinterSpec("a", a.url, a.api_key), PrinterSpec("b", b.url, b.api_key)]
    config = config_for(tmp_path, specs, tokens=TOKENS, sections=sections)
    caplog.set_level(logging.INFO)
    await hook.start()
    try:
        async with (
            mqtt_messages(mosquitto.port, topic) as on_broker,
            running_farm(config, tmp_path / "etc/secrets") as farm,
        ):
            await farm.clear_all()

            # A print finishes on a: the bed needs clearing.
            (done,) = await farm.submit(print_file(tmp_path / "done.gcode", seconds=1), printer="a")
            await farm.wait_job(done["id"], {"completed"}, 60)
            await eventually(lambda: len(hook.got) == 1 and len(on_broker) == 1, 15, "print_finished")
            # The late receiver is down: the notice is retried, counted, and the daemon goes on.
            await _metrics_until(farm, "failures", "late", 2, 30)
            await late.start()
            await eventually(lambda: len(late.got) == 1, 30, "the retried notice")

            # A print fails on b: firmware error mid-print (no retry configured).
            (doomed,) = await farm.submit(print_file(tmp_path / "doomed.gcode", seconds=20), printer="b")
            await farm.wait_job(doomed["id"], {"printing"}, 30)
            async with OctoPrintClient(b.url, b.api_key) as on_b:
                await on_b.send_commands(["!!DEBUG:trigger_fatal_error_marlin"])
            await farm.wait_job(doomed["id"], {"failed"}, 30)

            # a's host dies.
            a.kill()
            await eventually(lambda: hook.kinds()[NoticeKind.PRINTER_OFFLINE] == 1, 60, "printer_offline")

            # alice is past her 1 g quota with a 1.5 g print: refused, and told.
            path = print_file(tmp_path / "big.gcode")
            with path.open("rb") as f:
                resp = await farm.api.post(
                    "/api/v1/jobs", data={"owner": "alice"}, files={"file": (path.name, f)}
                )
            assert resp.status_code == 422, resp.text

            every = dict.fromkeys(NoticeKind, 1)
            await eventually(lambda: hook.kinds() == every, 30, f"one of each kind, got {hook.kinds()}")
            await asyncio.sleep(3)  # nothing more comes: no repeats, no retries of delivered notices
            assert hook.kinds() == every, hook.got
            assert Counter(NoticeKind(m["kind"]) for m in on_broker) == every, on_broker
            assert late.kinds() == every, late.got
            assert all(auth is not None for auth in late.auth)  # the URL's login was used ...

            metrics = await _metrics_until(farm, "sent", "late", len(every), 5)
            assert _metric(metrics, "failures", "late") >= 2
            assert _metric(metrics, "sent", "late") == len(every)
        # ... and its password is in no log line and no metric.
        assert SECRET not in caplog.text
        assert SECRET not in metrics
        down = [r for r in caplog.records if "is down" in r.getMessage() and "/late" in r.getMessage()]
        assert len(down) == 1, [r.getMessage() for r in down]  # logged once per outage
        assert "json://farm:****@127.0.0.1" in down[0].getMessage()
        assert any("is back after" in r.getMessage() for r in caplog.records)
        finished = next(m for m in hook.got if kind_of(m["title"]) is NoticeKind.PRINT_FINISHED)
        assert f"job {done['id']} done.gcode" in finished["message"]
        failed = next(m for m in on_broker if m["kind"] == "print_failed")
        assert (failed["printer"], failed["job_id"]) == ("b", doomed["id"])
    finally:
        await hook.stop()
        await late.stop()


def _metric(text: str, what: str, target: str) -> float:
    names = {"failures": "farmctl_notification_failures_total", "sent": "farmctl_notifications_sent_total"}
    for line in text.splitlines():
        if line.startswith(names[what] + "{") and target in line:
            return float(line.split()[-1])
    return 0.0


async def _metrics_until(farm: Farm, what: str, target: str, at_least: float, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while True:
            text = (await farm.api.get("/metrics")).text
            if _metric(text, what, target) >= at_least:
                return text
            await asyncio.sleep(0.2)


async def test_rate_limit_per_event_kind_and_target() -> None:
    """burst notices of one kind within window_s reach a target; the rest are dropped and counted, and
    another kind still goes through."""
    receiver = Receiver()
    await receiver.start()
    config = NotifyConfig(urls=[f"json://127.0.0.1:{receiver.port}/"], burst=3, window_s=600)
    outbox = Outbox(AppriseTarget(config.urls[0], 5.0), config)
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(outbox.run(stop))
            for i in range(10):
                outbox.offer(Notice(NoticeKind.PRINT_FINISHED, f"Print finished on p{i}", "done", f"p{i}"))
            outbox.offer(Notice(NoticeKind.PRINTER_OFFLINE, "Printer offline: p1", "gone", "p1"))
            await eventually(lambda: len(receiver.got) == 4, 15, "four notices")
            await asyncio.sleep(1)
            stop.set()
    finally:
        await receiver.stop()
    assert receiver.kinds() == {NoticeKind.PRINT_FINISHED: 3, NoticeKind.PRINTER_OFFLINE: 1}
    assert outbox.dropped["rate_limit"] == 7
    assert outbox.sent == 4


def test_notify_config_errors_name_the_key_and_never_the_url(tmp_path: Path) -> None:
    def load(section: str) -> str:
        path = write_config(tmp_path, [], sections=section)
        with pytest.raises(ConfigError) as err:
            load_config(path, env={})
        return str(err.value)

    message = load(f'[notify]\nurls = ["json://127.0.0.1:1/", "nosuch://{SECRET}@host/"]\n')
    assert "notify.urls[1]: not a notification URL Apprise can send to (scheme 'nosuch')" in message
    assert SECRET not in message
    assert "notify.urls: [notify] needs urls, mqtt_topic or both" in load("[notify]\nburst = 2\n")
    assert "notify.mqtt_topic" in load('[notify]\nmqtt_topic = "farm/#"\n')
    assert "notify.events" in load('[notify]\nmqtt_topic = "farm"\nevents = ["print_done"]\n')


def test_example_documents_every_notify_option(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "farmctl.toml")
    (tmp_path / "secrets").mkdir()
    for name in (
        "frontdesk.token",
        "operator.token",
        "mk4-1.key",
        "ender-2.key",
        "mqtt.password",
        "influx.password",
    ):
        (tmp_path / "secrets" / name).write_text(f"secret-{name}\n")
    config = load_config(tmp_path / "farmctl.toml", env={})
    assert config.notify is not None
    assert config.notify.mqtt_topic == "farm/notify"
    text = EXAMPLE.read_text()
    section = text[text.index("[notify]") :]
    for key in NotifyConfig.model_fields:
        assert re.search(rf"^(# )?{key} = ", section, re.M), f"{key} is not documented in the example"


def _changed(name: str, state: PrinterState) -> PrinterChanged:
    return PrinterChanged(PrinterStatus(name, state, detail=str(state)))


def test_one_notice_per_outage_even_when_the_state_flaps() -> None:
    """error → printing (a frame older than the error) → error is one outage; so is offline → idle →
    offline within the settle time; a printer first seen down is not news."""
    watch = PrinterWatch(settle_s=60)
    seq = [
        (0, "b", PrinterState.OFFLINE),  # first seen down: may just be switched off
        (1, "b", PrinterState.IDLE),
        (2, "b", PrinterState.PRINTING),
        (3, "b", PrinterState.ERROR),  # told
        (3.2, "b", PrinterState.PRINTING),
        (3.4, "b", PrinterState.ERROR),
        (4, "b", PrinterState.OFFLINE),
        (10, "b", PrinterState.IDLE),
        (20, "b", PrinterState.OFFLINE),  # up only 10 s: the same outage
        (30, "b", PrinterState.IDLE),
        (100, "b", PrinterState.OFFLINE),  # up 70 s: a new outage, told
    ]
    told = [(t, n.kind) for t, name, state in seq if (n := watch.notice(_changed(name, state), now=t))]
    assert told == [(3, NoticeKind.PRINTER_ERROR), (100, NoticeKind.PRINTER_OFFLINE)]


async def test_a_target_down_longer_than_retry_for_s_gives_the_notice_up_counted() -> None:
    config = NotifyConfig(urls=[f"json://127.0.0.1:{free_port()}/"], retry_for_s=1.0)  # nothing listens
    outbox = Outbox(AppriseTarget(config.urls[0], 5.0), config)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(outbox.run(stop))
        outbox.offer(Notice(NoticeKind.PRINT_FAILED, "Print failed on p1", "failed", "p1"))
        await eventually(lambda: outbox.dropped["gave_up"] == 1, 20, "the notice given up")
        stop.set()
    assert outbox.failed_attempts >= 2  # tried again with back-off before giving up
    assert outbox.sent == 0
    assert not outbox.waiting
