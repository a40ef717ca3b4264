"""`farmctl run`: one TaskGroup owns every task; SIGTERM/SIGINT set the stop event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import stat
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from fastapi import FastAPI

from controller.accounting.accountant import Accountant
from controller.accounting.timeline import TimelineRecorder
from controller.api.app import create_app
from controller.api.events import LiveUpdates
from controller.api.metrics import MetricSources
from controller.config import (
    EX_CONFIG,
    EX_UNAVAILABLE,
    ApiConfig,
    Config,
    InfluxConfig,
    config_warnings,
)
from controller.config.reload import Reloader
from controller.connlimits import BACKLOG, KEEP_ALIVE_S, ConnectionGuard, connection_cap, raise_file_limit
from controller.core.events import EventFeed
from controller.fleet.coordinator import Fleet
from controller.fleet.drivers import fleet_session
from controller.fleet.maintenance import Maintenance
from controller.fleet.materials import LoadedMaterials
from controller.jobs.beds import Beds
from controller.jobs.dispatch import Dispatcher
from controller.jobs.files import FileStore
from controller.jobs.queue import JobQueue
from controller.notify import Notifications
from controller.sdnotify import Notifier
from controller.store import AsyncStore, Store
from controller.tasks import run_until_stopped
from controller.telemetry.farm import FarmTelemetry
from controller.telemetry.sink import InfluxSink
from controller.telemetry.spool import Spool
from controller.telemetry.writer import TelemetryWriter
from devices.influx import V1Writer, V2Writer, Writer

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon cannot start (address in use, state dir not writable); the message says why."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: our stop event rules."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """Serves the app on a socket bound up front, so a busy port is our error, not uvicorn's exit."""

    def __init__(self, app: FastAPI, api: ApiConfig, max_connections: int = 1024) -> None:
        family = socket.AF_INET6 if ":" in api.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets; without it a request that
        # follows another on a kept-alive connection waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((api.host, api.port))
        except OSError as exc:
            self.sock.close()
            raise StartupError(f"cannot listen on {api.listen}: {exc.strerror}", EX_UNAVAILABLE) from None
        self.guard = ConnectionGuard(max_connections)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            # The h11 protocol with a deadline for request heads and a connection cap (connlimits.py).
            # Not `limit_concurrency`: it answers 503 to every request once that many connections are
            # open, which would shut out a new client that the cap makes room for.
            http=self.guard.protocol_factory(),
            timeout_keep_alive=KEEP_ALIVE_S,
            backlog=BACKLOG,
        )
        self.server = _Server(config)

    async def run(self, stop: asyncio.Event) -> None:
        def graceful() -> None:
            self.server.should_exit = True  # uvicorn finishes open requests, then serve() returns

        try:
            await run_until_stopped(stop, self.server.serve(sockets=[self.sock]), on_stop=graceful)
        finally:
            self.sock.close()

    async def wait_started(self, limit_s: float = 30.0) -> None:
        async with asyncio.timeout(limit_s):
            while not self.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                await asyncio.sleep(0.02)


async def _watchdog(stop: asyncio.Event, notifier: Notifier) -> None:
    """Pet systemd's watchdog at half its interval while the event loop runs."""
    if notifier.watchdog_interval is None:
        return
    while not stop.is_set():
        notifier.notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), notifier.watchdog_interval / 2)


async def run_daemon(
    config: Config,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], object] | None = None,
    *,
    config_path: Path | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set); every task flushes and returns.

    `on_ready` is called once the API serves (the demo prints its banner then). SIGHUP reads
    `config_path` again (controller/config/reload.py).
    """
    started = time.monotonic()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Until the reloader takes it over: SIGHUP's default action would end the daemon.
    loop.add_signal_handler(signal.SIGHUP, log.warning, "SIGHUP while starting: ignored; send it again")
    notifier = Notifier.from_env()
    for warning in config_warnings(config):
        log.warning("config: %s", warning)
    try:
        config.controller.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"controller.state_dir {config.controller.state_dir}: {exc.strerror}", EX_CONFIG
        ) from None
    _restrict_modes(config.controller.state_dir)
    store = _open_store(config.controller.state_dir)
    try:
        async with fleet_session() as session:
            await _serve(config, stop, notifier, store, session, started, on_ready, config_path=config_path)
    finally:
        store.close()
        loop.remove_signal_handler(signal.SIGHUP)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    log.info("stopped")


def _restrict_modes(state_dir: Path) -> None:
    """Take group write and every "other" bit off the state dir and all in it (0750 dirs, 0640 files).

    `farmctl run` creates with umask 027; this mends what an older version or another umask left
    readable to every local user: the job database, uploaded G-code, the spool. SQLite's -wal and
    -shm files take the database's mode, so they follow.
    """
    changed, failed = 0, 0
    for root, dirs, files in os.walk(state_dir):
        for path, keep in [(Path(root), 0o750)] + [(Path(root, name), 0o640) for name in files]:
            try:
                mode = path.lstat().st_mode
                if stat.S_ISLNK(mode) or stat.S_IMODE(mode) & ~keep == 0:
                    continue
                path.chmod(stat.S_IMODE(mode) & keep)
                changed += 1
            except OSError:
                failed += 1
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    if changed:
        log.info("state_dir=%s: took group-write and other access off %d paths", state_dir, changed)
    if failed:
        log.warning("state_dir=%s: could not restrict the mode of %d paths", state_dir, failed)


def _open_store(state_dir: Path) -> AsyncStore:
    """The store, publishing every job change on a new event feed (the daemon's one feed)."""
    try:
        return AsyncStore(Store(state_dir / "farmctl.db"), EventFeed())
    except (sqlite3.Error, RuntimeError) as exc:
        raise StartupError(f"job store in {state_dir}: {exc}", EX_CONFIG) from None


async def _serve(
    config: Config,
    stop: asyncio.Event,
    notifier: Notifier,
    store: AsyncStore,
    session: aiohttp.ClientSession,
    started: float,
    on_ready: Callable[[], object] | None,
    *,
    config_path: Path | None = None,
) -> None:
    # A bed whose state was never recorded counts as used: an operator confirms it once.
    beds = await Beds.load(store, [p.name for p in config.printers])
    # What is loaded on each printer: its last recorded load, else its config `materials`.
    loaded = await LoadedMaterials.load(store, config.printers)
    # Printers an operator took out of service stay out across a restart.
    maintenance = await Maintenance.load(store, [p.name for p in config.printers])
    fleet = Fleet(
        config.printers,
        config.controller,
        session,
        beds=beds,
        feed=store.feed,
        materials=loaded,
        maintenance=maintenance,
    )
    files = FileStore(config.controller.state_dir / "files")
    queue = JobQueue(config, store, files, fleet)
    dispatcher = Dispatcher(store, files, fleet, config.jobs, waiting=queue.waiting)
    sources = MetricSources(fleet, store)
    # Subscribed before the ingest starts publishing: the first readings count.
    accountant = Accountant(config, fleet, store, store.feed) if store.feed is not None else None
    telemetry = _telemetry(config, fleet, store, sources)
    # Runs the printers' coordinators and the MQTT ingest, and changes them on SIGHUP.
    reloader = Reloader(
        config, config_path, fleet=fleet, queue=queue, dispatcher=dispatcher, feed=store.feed, sources=sources
    )
    timeline = TimelineRecorder(fleet, store, sources.writer)
    cap = connection_cap(raise_file_limit())
    app = create_app(config, queue, sources, stopping=stop)
    live = LiveUpdates.attach(app)
    notices = Notifications.attach(app)
    server = ApiServer(app, config.api, max_connections=cap)
    async with asyncio.TaskGroup() as tg:
        for name, runner in telemetry:
            tg.create_task(runner(stop), name=name)
        reloader.start(tg)
        tg.create_task(reloader.run(stop), name="config-reload")
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.request)
        tg.create_task(timeline.run(stop), name="printer-timeline")
        if accountant is not None:
            tg.create_task(accountant.run(stop), name="accounting")
        tg.create_task(dispatcher.run(stop, tg), name="dispatcher")
        tg.create_task(live.run(stop), name="live-updates")
        tg.create_task(notices.run(stop), name="notify")
        tg.create_task(server.run(stop), name="api")
        tg.create_task(_watchdog(stop, notifier), name="watchdog")
        await server.wait_started()
        await notifier.announce("READY=1", f"STATUS=watching {len(fleet.coordinators)} printers")
        log.info(
            "farmctl ready in %.2fs: api=http://%s printers=%d",
            time.monotonic() - started,
            config.api.listen,
            len(fleet.coordinators),
        )
        if on_ready is not None:
            on_ready()
        await stop.wait()
        await notifier.announce("STOPPING=1")
        log.info("stopping")
    await beds.written()  # a bed marked used as the last print ended is kept


Runner = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def _telemetry(
    config: Config, fleet: Fleet, store: AsyncStore, sources: MetricSources
) -> list[tuple[str, Runner]]:
    """The writer and the printer/job points, as far as the config asks for them."""
    runners: list[tuple[str, Runner]] = []
    influx = config.influx
    if influx is not None:
        spool = Spool(config.controller.state_dir / "spool", int(influx.spool_max_mb * 2**20))
        writer = TelemetryWriter(
            _influx_writer(influx),
            spool,
            batch_size=influx.batch_size,
            flush_interval=influx.flush_interval,
            retry_max=influx.retry_max,
        )
        sources.writer = writer
        runners.append(("telemetry-writer", writer.run))
        # A print's point waits for its measured figures: the readings after its end, then a margin.
        wait = config.accounting.settle_s + 60.0
        farm = FarmTelemetry(fleet, store, writer, interval=influx.printer_interval, account_wait_s=wait)
        runners.append(("farm-telemetry", farm.run))
        if store.feed is not None and config.sensors:
            sink = InfluxSink(store.feed, writer)
            writer.upstream.append(sink.done)
            sources.sink = sink
            runners.append(("influx-sink", sink.run))
    # The MQTT ingest is the Reloader's: SIGHUP restarts it with the new sensors. Without [influx] the
    # readings are decoded and counted, and no subscriber stores them.
    return runners


def _influx_writer(influx: InfluxConfig) -> Writer:
    if influx.api == "v2":
        return V2Writer(
            influx.url,
            token=influx.secret or "",
            org=influx.org,
            bucket=influx.bucket,
            timeout=influx.timeout,
        )
    return V1Writer(
        influx.url,
        influx.database,
        retention_policy=influx.retention_policy,
        username=influx.username,
        password=influx.secret,
        timeout=influx.timeout,
    )
