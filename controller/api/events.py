"""`GET /api/v1/events`: printer and job changes pushed as server-sent events (the web page's live view).

One feed subscription (LiveUpdates, a task of the daemon) renders each change once, as the printer or
job object the REST routes return, and hands the bytes to every open stream. A stream keeps only the
latest object per printer and per job it has not sent yet, so a slow client converges on the current
state instead of queueing history, and its memory is bounded by MAX_PENDING. A client too far behind
(more than MAX_PENDING distinct objects waiting) has its stream ended: the browser's EventSource
reconnects and starts from a fresh snapshot. A client that takes no byte for STUCK_S is disconnected.
Both are counted in /metrics. Nothing a client does can make the feed or the daemon wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from controller.api import events_doc, jobs, printers
from controller.api.auth import Caller, require
from controller.api.services import ServicesDep, services_of
from controller.config import Role
from controller.core.errors import NotFound, Unavailable
from controller.core.events import EventFeed, JobChanged, PrinterChanged, PrinterProgress
from controller.jobs import ACTIVE_STATES, JobState
from controller.jobs.queue import JobQueue

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["events"])

MAX_STREAMS = 100  # open streams at once; more answer 503 (each is a connection and a task)
MAX_PENDING = 512  # distinct printers and jobs one stream may have waiting before it is ended
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and the browser from closing an idle stream
RETRY_MS = 3000  # EventSource's reconnect delay after a stream ends
STUCK_S = 120.0  # a send that waits this long for the client to read ends its stream (a phone in a pocket)
STOP_GRACE_S = 1.0  # on stop, how long a stream may take to send its end before it is dropped
FEED_QUEUE = 4096
# Progress this close together goes to each stream in one write. Twenty printers printing make twenty
# progress changes a second (one each, controller/fleet/progress.py): a wake-up and a send per stream for
# each cost more than rendering them (bench/fleet.py with one stream open: 3.4 % of a core, 2.7 % so).
# A state or job change goes out at once.
GATHER_S = 0.2

# Who may open a stream: a bearer token or the web page's session cookie, as every viewer route
# (controller/api/auth.py; EventSource cannot send a header). Another way in plugs in without editing
# this module: app.dependency_overrides[stream_caller] = <a dependency returning a Caller>.
stream_caller = require(Role.VIEWER)
_RENDERER = Caller("live-updates", Role.VIEWER)

Key = tuple[str, str | int]


def _frame(kind: str, body: BaseModel) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + body.model_dump_json().encode() + b"\n\n"


class _Stream:
    """One client's pending objects, newest per printer or job, in the order they last changed."""

    def __init__(self, hub: LiveUpdates) -> None:
        self.hub = hub
        self.pending: dict[Key, bytes] = {}
        self.ready = asyncio.Event()
        self.behind = False
        self.blocked_since: float | None = None

    def offer(self, key: Key, frame: bytes) -> None:
        self.pending.pop(key, None)
        self.pending[key] = frame
        if len(self.pending) > MAX_PENDING:
            self.pending.pop(next(iter(self.pending)))
            self.hub.events_dropped += 1
            self.behind = True
        self.ready.set()

    def take(self) -> bytes:
        out = b"".join(self.pending.values())
        self.pending.clear()
        self.ready.clear()
        return out


class LiveUpdates:
    """Renders printer and job changes once and fans them out to the open event streams."""

    def __init__(self, queue: JobQueue, feed: EventFeed, *, max_streams: int = MAX_STREAMS) -> None:
        self.queue = queue
        self.feed = feed
        self.max_streams = max_streams
        self.streams: set[_Stream] = set()
        self.running = False
        self.closed = asyncio.Event()
        self.opened_total = 0
        self.events_dropped = 0
        self.dropped: dict[str, int] = {"behind": 0, "stuck": 0}
        self.refused = 0

    @classmethod
    def attach(cls, app: FastAPI) -> LiveUpdates:
        """The live updates of `app` (made by create_app), with their /metrics; run them in the daemon."""
        services = services_of(app)
        hub = cls(services.queue, services.fleet.feed)
        services.live_updates = hub
        services.metrics.registry.register(_StreamCollector(hub))
        return hub

    async def run(self, stop: asyncio.Event) -> None:
        """Take the feed's printer and job changes until `stop`, then end every stream."""
        # Drop oldest: a stream only shows the latest state of each object. PrinterProgress (progress
        # and temperatures between state changes) is for this view alone and renders as a change.
        kinds = (PrinterChanged, PrinterProgress, JobChanged)
        sub = self.feed.subscribe_all("live-updates", kinds, maxsize=FEED_QUEUE)
        self.running = True
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                waiting = asyncio.ensure_future(sub.wait())
                await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if stopped.done():
                    waiting.cancel()
                    return
                events = sub.take()
                if self.streams:
                    if all(isinstance(event, PrinterProgress) for event in events):
                        await asyncio.wait({stopped}, timeout=GATHER_S)
                        events += sub.take()
                    await self._fan_out(events)
        finally:
            stopped.cancel()
            self.running = False
            self.closed.set()
            for stream in self.streams:
                stream.ready.set()

    async def _fan_out(self, events: Iterable[object]) -> None:
        keys: dict[Key, None] = {}
        for event in events:
            if isinstance(event, PrinterChanged | PrinterProgress):
                keys[("printer", event.printer)] = None
            elif isinstance(event, JobChanged):
                keys[("job", event.job_id)] = None
        for key in keys:
            frame = await self._render(key)
            if frame is not None:
                for stream in self.streams:
                    stream.offer(key, frame)

    async def _render(self, key: Key) -> bytes | None:
        kind, ident = key
        if kind == "printer":
            coordinator = self.queue.fleet.get(str(ident))
            if coordinator is None:  # removed from the config since
                return None
            return _frame("printer", printers.printer_out(coordinator, self.queue.fleet))
        try:
            job = await jobs.get_job(int(ident), self.queue, _RENDERER)
        except NotFound:
            return None
        return _frame("job", job)

    async def snapshot(self) -> bytes:
        """Every printer and every job not finished yet, as a new stream starts."""
        fleet = self.queue.fleet
        frames = [_frame("printer", printers.printer_out(c, fleet)) for c in fleet.coordinators.values()]
        active = await self.queue.list([JobState.QUEUED, *ACTIVE_STATES])
        frames += [_frame("job", jobs.job_out(job, self.queue)) for job in active]
        return b"".join(frames)

    def open(self) -> _Stream:
        if not self.running:
            raise Unavailable("live updates are not running")
        if len(self.streams) >= self.max_streams:
            self.refused += 1
            raise Unavailable(f"{self.max_streams} event streams are open already; try again later")
        stream = _Stream(self)
        self.streams.add(stream)
        self.opened_total += 1
        return stream

    def dropped_client(self, reason: str, peer: str) -> None:
        self.dropped[reason] += 1
        log.info("event stream of %s ended: client %s", peer, reason)


class EventStreamResponse(Response):
    """A `text/event-stream` body that lasts until the client leaves, falls behind or the daemon stops."""

    media_type = "text/event-stream"

    def __init__(self, hub: LiveUpdates, stream: _Stream, first: bytes) -> None:
        # Not Response.__init__: it would add `content-length: 0`. no-cache: nothing may store a live
        # stream; X-Accel-Buffering: no: nginx in front would otherwise hold the events back.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.hub, self.stream, self.first = hub, stream, first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = "%s:%s" % tuple(scope.get("client") or ("?", "?"))  # noqa: UP031 - a pair of any types
        try:
            writer = asyncio.ensure_future(self._write(send, peer))
            gone = asyncio.ensure_future(_disconnected(receive))
            cut = asyncio.ensure_future(self._cut(peer))
            tasks = {writer, gone, cut}
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if cut.done() and not cut.cancelled():
                await _abort(receive)
        finally:
            self.hub.streams.discard(self.stream)

    async def _write(self, send: Send, peer: str) -> None:
        stream = self.stream

        async def body(chunk: bytes, more: bool = True) -> None:
            stream.blocked_since = time.monotonic()
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            stream.blocked_since = None

        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await body(b"retry: %d\n\n" % RETRY_MS + self.first)
        while not self.hub.closed.is_set() and not stream.behind:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    await stream.ready.wait()
            except TimeoutError:
                await body(b": keep-alive\n\n")
                continue
            chunk = stream.take()
            if chunk:
                await body(chunk)
        if stream.behind:
            self.hub.dropped_client("behind", peer)
        await body(b"", more=False)

    async def _cut(self, peer: str) -> None:
        """Return when the writer must be abandoned: the daemon stops and it did not end within
        STOP_GRACE_S, or its client has taken no byte for STUCK_S."""
        closed = self.hub.closed
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STUCK_S / 4):
                    await closed.wait()
            if closed.is_set():
                await asyncio.sleep(STOP_GRACE_S)
                return
            since = self.stream.blocked_since
            if since is not None and time.monotonic() - since > STUCK_S:
                self.hub.dropped_client("stuck", peer)
                return


async def _abort(receive: Receive) -> None:
    """Drop the connection at once, with what it has not sent. A plain close would wait until the
    client takes the bytes still buffered, which a client that reads nothing never does: uvicorn would
    then wait for it at every stop. The transport is found on uvicorn's request cycle, which `receive`
    is a method of (the middleware passes `receive` through unwrapped); uvicorn is pinned below 1.0
    (pyproject.toml). Without it, the stream just ends, and uvicorn closes the connection itself."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
        await asyncio.sleep(0)  # connection_lost runs: uvicorn sees a client gone, not an unfinished response


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _StreamCollector(Collector):
    def __init__(self, hub: LiveUpdates) -> None:
        self.hub = hub

    def collect(self) -> Iterable[Metric]:
        hub = self.hub
        yield GaugeMetricFamily("farmctl_event_streams", "Open event streams", value=len(hub.streams))
        yield GaugeMetricFamily(
            "farmctl_event_streams_blocked",
            "Open streams whose client is not taking what is sent",
            value=sum(s.blocked_since is not None for s in hub.streams),
        )
        yield GaugeMetricFamily(
            "farmctl_event_streams_pending_bytes",
            "Bytes of events waiting for slow clients, all streams",
            value=sum(len(frame) for s in hub.streams for frame in s.pending.values()),
        )
        yield CounterMetricFamily("farmctl_event_streams_opened_total", "Streams opened", hub.opened_total)
        yield CounterMetricFamily(
            "farmctl_event_streams_refused_total", "Streams refused: MAX_STREAMS open", hub.refused
        )
        dropped = CounterMetricFamily(
            "farmctl_event_streams_dropped_total",
            "Streams ended by the daemon: client too far behind, or reading nothing",
            labels=["reason"],
        )
        for reason, count in sorted(hub.dropped.items()):
            dropped.add_metric([reason], float(count))
        yield dropped
        yield CounterMetricFamily(
            "farmctl_event_stream_objects_dropped_total",
            "Pending objects a stream too far behind had to give up",
            hub.events_dropped,
        )


@router.get(
    "/events",
    summary="Live updates (server-sent events)",
    response_class=EventStreamResponse,
    status_code=200,  # FastAPI reads it from the response class's __init__ otherwise, which has none
    description=events_doc.description(
        retry_ms=RETRY_MS,
        keepalive_s=KEEPALIVE_S,
        max_streams=MAX_STREAMS,
        max_pending=MAX_PENDING,
        stuck_s=STUCK_S,
    ),
    responses=events_doc.responses(),
)
async def events(farm: ServicesDep, _: Annotated[Caller, Depends(stream_caller)]) -> Response:
    """Live updates as server-sent events: a snapshot, then each printer and job change (the OpenAPI
    description in events_doc.py says it frame by frame). Role: viewer."""
    hub = farm.live_updates
    if hub is None:
        raise Unavailable("live updates are not running")
    stream = hub.open()
    try:
        first = await hub.snapshot()
    except BaseException:
        hub.streams.discard(stream)
        raise
    return EventStreamResponse(hub, stream, first)
