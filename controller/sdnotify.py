"""systemd notifications over $NOTIFY_SOCKET (READY, STOPPING, WATCHDOG); a no-op without it.

Datagrams are sent without blocking. A blocking send would stall the whole event loop when the reader's
queue is full: Linux queues at most `net.unix.max_dgram_qlen` (10 by default) datagrams per socket, so a
busy or stalled reader froze the daemon after 11 watchdog pings, API and shutdown included
(tests/test_daemon.py saw it). A watchdog ping that does not fit is dropped: the queued ones say the
same. READY and STOPPING are tried again for a few seconds, yielding to the loop between tries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)

# How long READY or STOPPING is retried while the reader's queue is full.
ANNOUNCE_PATIENCE_S = 5.0
_RETRY_S = 0.05


class Notifier:
    """Sends `KEY=value` datagrams to systemd. Never raises and never blocks: notification is best effort."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self.address = address or None
        self.watchdog_interval = watchdog_usec / 1e6 if watchdog_usec else None
        self._told_full = False

    @classmethod
    def from_env(cls) -> Notifier:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        watchdog = int(usec) if usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        return cls(os.environ.get("NOTIFY_SOCKET"), watchdog)

    def _send(self, fields: tuple[str, ...]) -> bool:
        """Send at once; False when the reader's queue is full (nothing sent)."""
        assert self.address is not None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto("\n".join(fields).encode(), self.address)
        except BlockingIOError:
            return False
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address.lstrip("\0"), exc.strerror)
        self._told_full = False
        return True

    def notify(self, *fields: str) -> None:
        """Send now, or drop it when the reader's queue is full (for watchdog pings)."""
        if self.address is None or self._send(fields):
            return
        if not self._told_full:  # once per full spell, not per ping
            self._told_full = True
            log.warning(
                "sd_notify to %s: its queue is full; dropping %s", self.address.lstrip("\0"), fields[0]
            )

    async def announce(self, *fields: str) -> None:
        """Send a state change (READY, STOPPING), trying again for a while when the queue is full."""
        if self.address is None:
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + ANNOUNCE_PATIENCE_S
        while not self._send(fields):
            if loop.time() >= give_up:
                log.warning(
                    "sd_notify to %s: its queue stayed full; %s not sent",
                    self.address.lstrip("\0"),
                    fields[0],
                )
                return
            await asyncio.sleep(_RETRY_S)
