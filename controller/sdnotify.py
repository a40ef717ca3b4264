"""systemd notifications over $NOTIFY_SOCKET (READY, STOPPING, WATCHDOG); a no-op without it."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends `KEY=value` datagrams to systemd. Never raises: notification is best effort."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self.address = address or None
        self.watchdog_interval = watchdog_usec / 1e6 if watchdog_usec else None

    @classmethod
    def from_env(cls) -> Notifier:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        watchdog = int(usec) if usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        return cls(os.environ.get("NOTIFY_SOCKET"), watchdog)

    def notify(self, *fields: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address.lstrip("\0"), exc.strerror)
