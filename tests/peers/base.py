"""Readiness probes for peer servers; processes are devices.localproc.LocalProcess."""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request

from devices.localproc import LocalProcess as Peer
from devices.localproc import free_port

__all__ = ["Peer", "free_port", "http_status", "port_open"]


def http_status(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> int:
    """Status of a GET, or 0 when the server cannot be reached."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, http.client.HTTPException):
        return 0


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
