"""The notifier: a task of the daemon that turns the farm's events into notices and hands each to every
target through the target's own bounded outbox. A target that is down is retried with back-off while
its notices are younger than [notify] retry_for_s, logged once per outage and counted in /metrics;
nothing here ever makes the event feed, the API or another target wait."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Iterable

from fastapi import FastAPI
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.api.services import Services
from controller.config import Config
from controller.config.notify import NoticeKind, NotifyConfig
from controller.core.availability import Availability, Backoff
from controller.core.errors import NotFound
from controller.core.events import EventFeed, JobChanged, PrinterChanged
from controller.jobs.queue import JobQueue
from controller.notify.notices import Notice, PrinterWatch, job_notice, quota_notice
from controller.notify.targets import AppriseTarget, MqttTarget, Target, TargetDown

log = logging.getLogger(__name__)

OUTBOX = 100  # notices one target may have waiting; the oldest goes first when it is down for long
RETRY_START_S = 2.0
RETRY_MAX_S = 300.0


class Outbox:
    """One target's waiting notices, its rate limit and its counts."""

    def __init__(self, target: Target, config: NotifyConfig) -> None:
        self.target = target
        self.config = config
        self.waiting: deque[tuple[float, Notice]] = deque()
        self.ready = asyncio.Event()
        self.sent = 0
        self.failed_attempts = 0
        self.dropped: dict[str, int] = {"rate_limit": 0, "outbox_full": 0, "gave_up": 0}
        self._recent: dict[NoticeKind, deque[float]] = {}
        self._limited: set[NoticeKind] = set()
        name = target.name.replace("%", "%%")
        self.availability = Availability(
            log,
            Backoff(RETRY_START_S, RETRY_MAX_S),
            down_message=f"notify: {name} is down, retrying with back-off: %s",
            up_message=f"notify: {name} is back after %.0f s",
        )

    def offer(self, notice: Notice) -> None:
        """Queue `notice` unless this target had `burst` of its kind within `window_s`."""
        now = time.monotonic()
        recent = self._recent.setdefault(notice.kind, deque())
        while recent and now - recent[0] > self.config.window_s:
            recent.popleft()
        if len(recent) >= self.config.burst:
            self.dropped["rate_limit"] += 1
            if notice.kind not in self._limited:  # once per burst, not per notice
                self._limited.add(notice.kind)
                log.warning(
                    "notify: more than %d %s notices for %s within %g s; dropping more until it calms",
                    self.config.burst,
                    notice.kind,
                    self.target.name,
                    self.config.window_s,
                )
            return
        self._limited.discard(notice.kind)
        recent.append(now)
        if len(self.waiting) >= OUTBOX:
            self.waiting.popleft()
            self.dropped["outbox_full"] += 1
        self.waiting.append((now, notice))
        self.ready.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send what waits, oldest first; on failure wait the back-off and try the same one again."""
        while not stop.is_set():
            if not self.waiting:
                self.ready.clear()
                await _wait_any(self.ready.wait(), stop.wait())
                continue
            queued_at, notice = self.waiting[0]
            sending = asyncio.ensure_future(self.target.send(notice))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({sending, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not sending.done():  # the daemon stops: a slow target must not hold it
                sending.cancel()
                return
            try:
                sending.result()
            except TargetDown as exc:
                self.failed_attempts += 1
                delay = self.availability.down(exc)
                if time.monotonic() - queued_at > self.config.retry_for_s:
                    self._give_up()
                await _wait_any(stop.wait(), asyncio.sleep(delay))
                continue
            self.availability.up()
            self.waiting.popleft()
            self.sent += 1

    def _give_up(self) -> None:
        now = time.monotonic()
        while self.waiting and now - self.waiting[0][0] > self.config.retry_for_s:
            self.waiting.popleft()
            self.dropped["gave_up"] += 1


async def _wait_any(*waits: Awaitable[object]) -> None:
    """Until the first of `waits` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class Notifications:
    """Turns printer and job changes (and quota refusals) into notices for every configured target."""

    def __init__(self, config: Config, queue: JobQueue, feed: EventFeed) -> None:
        self.config = config.notify
        self.queue = queue
        self.feed = feed
        self.outboxes: list[Outbox] = []
        self.made: dict[NoticeKind, int] = dict.fromkeys(NoticeKind, 0)
        if self.config is None:
            return
        targets: list[Target] = [AppriseTarget(url, self.config.timeout_s) for url in self.config.urls]
        if self.config.mqtt_topic is not None:
            if config.mqtt is None:
                log.warning("notify: mqtt_topic is set but there is no [mqtt] broker: nothing sent there")
            else:
                targets.append(MqttTarget(config.mqtt, self.config.mqtt_topic, self.config.timeout_s))
        self.outboxes = [Outbox(t, self.config) for t in targets]
        self._wanted = set(self.config.events)
        self._printers = PrinterWatch()

    @classmethod
    def attach(cls, app: FastAPI) -> Notifications:
        """The notifier of `app`'s daemon, with its /metrics, and told of quota refusals by the queue."""
        services: Services = app.state.services
        notifier = cls(services.config, services.queue, services.fleet.feed)
        services.metrics.registry.register(_NotifyCollector(notifier))
        services.queue.on_quota = notifier.quota_refused
        return notifier

    def publish(self, notice: Notice) -> None:
        """Hand `notice` to every target, if [notify] events asks for its kind."""
        if self.config is None or notice.kind not in self._wanted:
            return
        self.made[notice.kind] += 1
        log.info(
            "notify: %s printer=%s job=%s owner=%s", notice.kind, notice.printer, notice.job_id, notice.owner
        )
        for outbox in self.outboxes:
            outbox.offer(notice)

    def quota_refused(self, owner: str, message: str) -> None:
        self.publish(quota_notice(owner, message))

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: follow the feed and keep every target's outbox going."""
        if not self.outboxes:
            return
        sub = self.feed.subscribe_all("notify", (PrinterChanged, JobChanged), maxsize=1024)
        try:
            async with asyncio.TaskGroup() as tg:
                for outbox in self.outboxes:
                    tg.create_task(outbox.run(stop), name=f"notify:{outbox.target.name}")
                while not stop.is_set():
                    await _wait_any(sub.wait(), stop.wait())
                    for event in sub.take():
                        await self._on_event(event)
        finally:
            for outbox in self.outboxes:
                outbox.target.close()

    async def _on_event(self, event: object) -> None:
        if isinstance(event, PrinterChanged):
            notice = self._printers.notice(event)
        elif isinstance(event, JobChanged) and event.state.finished:
            try:
                notice = job_notice(event, await self.queue.get(event.job_id))
            except NotFound:
                return
        else:
            return
        if notice is not None:
            self.publish(notice)


class _NotifyCollector(Collector):
    def __init__(self, notifier: Notifications) -> None:
        self.notifier = notifier

    def collect(self) -> Iterable[Metric]:
        if self.notifier.config is None:
            return
        made = CounterMetricFamily("farmctl_notices_total", "Notices made, by event", labels=["event"])
        for kind, count in self.notifier.made.items():
            made.add_metric([kind], float(count))
        yield made
        labels = ["target"]
        sent = CounterMetricFamily("farmctl_notifications_sent_total", "Delivered, by target", labels=labels)
        failed = CounterMetricFamily(
            "farmctl_notification_failures_total", "Attempts a target did not take (retried)", labels=labels
        )
        dropped = CounterMetricFamily(
            "farmctl_notifications_dropped_total",
            "Not delivered, by target and reason",
            labels=[*labels, "reason"],
        )
        waiting = GaugeMetricFamily(
            "farmctl_notifications_waiting", "Waiting in a target's outbox", labels=labels
        )
        up = GaugeMetricFamily(
            "farmctl_notification_target_up", "Last attempt succeeded (1) or not (0)", labels=labels
        )
        for box in self.notifier.outboxes:
            name = [box.target.name]
            sent.add_metric(name, float(box.sent))
            failed.add_metric(name, float(box.failed_attempts))
            for reason, count in box.dropped.items():
                dropped.add_metric([*name, reason], float(count))
            waiting.add_metric(name, float(len(box.waiting)))
            up.add_metric(name, float(not box.availability.is_down))
        yield from (sent, failed, dropped, waiting, up)
