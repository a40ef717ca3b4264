"""Limits on the API's connections, so clients that never finish a request cannot use up the daemon's files.

uvicorn (0.54) has a keep-alive timeout, armed only after a response, and `limit_concurrency`, which
answers 503 but leaves every connection open; it has no deadline for a request head. A client that
connects and sends nothing (or half a head) therefore held its socket forever, and 1,100 of them used
up the default 1,024 open files: `accept()` failed, `/healthz` timed out, and asyncio logged each
failure with a traceback (~13,000 lines a second, since it retries up to `backlog` times per wake-up).
So each connection here gets a head deadline, and past a cap the oldest connection that is waiting for
a head is closed, so a new client is still served during a flood.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

# A request head normally arrives in one packet; 5 s covers a slow Wi-Fi client many times over.
HEAD_TIMEOUT_S = 5.0
# The web page polls every few seconds and reuses its connection; longer idle holds only cost files.
KEEP_ALIVE_S = 5
# Connections accepted in one wake-up of the event loop (and the kernel's queue): each is a file
# before the cap can close it, so the cap leaves this much room below the open-file limit.
BACKLOG = 128
# Enough for a farm's browsers, CLIs and Grafana many times over; the rest of the limit stays for
# printers, the database, the spool and MQTT.
_MAX_CONNECTIONS = 1024
# Raise a low soft limit this far (or to the hard limit when that is lower).
_WANTED_FILES = 65536


def raise_file_limit() -> int:
    """Raise the soft open-file limit towards the hard one (logged once); return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _WANTED_FILES if hard == resource.RLIM_INFINITY else min(hard, _WANTED_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays at %d: %s", soft, exc)
            return soft
        log.info("raised the open-file limit from %d to %d", soft, wanted)
        return wanted
    return soft if soft != resource.RLIM_INFINITY else _WANTED_FILES


def connection_cap(file_limit: int) -> int:
    """How many API connections may be open at once under this open-file limit."""
    # Files in flight (accepted, not yet counted; closed, not yet freed) come on top of the cap:
    # 1,100 connections at once against a limit of 1,024 peaked at ~540 files with a cap of 224.
    return max(16, min(_MAX_CONNECTIONS, (file_limit - BACKLOG) // 4))


class ConnectionGuard:
    """Counts the API's connections; past the cap it closes the one that has waited longest for a head."""

    def __init__(self, max_connections: int, head_timeout: float = HEAD_TIMEOUT_S) -> None:
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.evicted = 0
        # Connections not yet closing. A closed transport frees its file an event-loop turn later, so
        # one that is closing no longer counts (else the cap would close nothing during a flood).
        self._open: set[GuardedH11Protocol] = set()
        # Insertion-ordered: the first key is the connection that has waited longest for a head.
        self._waiting: dict[GuardedH11Protocol, None] = {}
        self._full = False

    @property
    def open(self) -> int:
        return len(self._open)

    def protocol_factory(self) -> Any:
        """What uvicorn's `Config(http=...)` takes: it calls it with its own keyword arguments."""
        return functools.partial(GuardedH11Protocol, guard=self)

    def opened(self, conn: GuardedH11Protocol) -> None:
        self._open.add(conn)
        self._waiting[conn] = None
        if len(self._open) <= self.max_connections:
            return
        if not self._full:
            self._full = True
            log.warning("api: %d connections open: closing the idlest ones", len(self._open))
        self.evicted += 1
        victim = next(iter(self._waiting))  # the new one is last: it goes only if no other is idle
        victim.close_idle()

    def closed(self, conn: GuardedH11Protocol) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)
        if self._full and len(self._open) <= self.max_connections // 2:
            self._full = False
            log.info("api: %d connections open again (%d idle ones closed)", len(self._open), self.evicted)
            self.evicted = 0

    def waiting(self, conn: GuardedH11Protocol, waits: bool) -> None:
        if not waits:
            self._waiting.pop(conn, None)
        elif conn in self._open:
            self._waiting.setdefault(conn, None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head and the guard's cap."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()
        self._guard.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # A head begun on a kept-alive connection: uvicorn just cancelled its keep-alive timer.
            if self._head_timer is None and not self.transport.is_closing():
                self._arm_head_timer()
        else:
            self._cancel_head_timer()
            self._guard.waiting(self, False)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle until the next head (uvicorn's keep-alive timer runs now): first in line for the cap.
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._guard.waiting(self, True)

    def close_idle(self) -> None:
        """Close this connection while no request is in progress (head deadline, or the cap)."""
        self._cancel_head_timer()
        self._guard.closed(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._guard.head_timeout, self.close_idle)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
