"""The API under a flood of idle connections: it keeps answering, closes them, and its log stays small."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from controller.logsetup import RateLimitedHandler
from tests.helpers import write_config
from tests.peers.base import free_port

# Ample for the daemon's own head timeout (5 s) and keep-alive timeout (5 s) plus a slow machine.
CLOSE_WITHIN_S = 9.0


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    port: int
    stderr: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


def _start(tmp_path: Path, nofile: tuple[int, int]) -> Daemon:
    port = free_port()
    config = write_config(tmp_path, [], api_port=port, tokens={"viewer": "viewer"})
    stderr = tmp_path / "daemon.stderr"
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}

    def limit() -> None:  # runs in the child before exec: the daemon starts with this open-file limit
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            preexec_fn=limit,  # the test process runs no threads that a fork could break
        )
    daemon = Daemon(proc, port, stderr)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, daemon.log()
        try:
            if httpx.get(f"{daemon.base}/healthz", timeout=1).status_code == 200:
                return daemon
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.1)


def _stop(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(20)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait(5)


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process holds > 1,100 sockets: raise its own soft limit if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        if hard != resource.RLIM_INFINITY and hard < 4096:
            pytest.skip(f"open-file hard limit {hard} is too low for this test")
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open_idle(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def _wait_all_closed(socks: list[socket.socket], within: float) -> float:
    """Seconds until the daemon closed every socket; fails naming how many stayed open."""
    started = time.monotonic()
    open_ = list(socks)
    while open_:
        open_ = [s for s in open_ if not _closed_by_peer(s)]
        if time.monotonic() - started > within:
            raise AssertionError(f"{len(open_)} of {len(socks)} idle connections still open after {within}s")
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_flood_of_idle_connections_leaves_healthz_answering_and_the_log_small(
    tmp_path: Path, many_files: None
) -> None:
    # The systemd default soft limit (1024) with no room above it: the flood can exhaust it.
    daemon = _start(tmp_path, (1024, 1024))
    socks: list[socket.socket] = []
    try:
        socks = _open_idle(daemon.port, 1100)
        started = time.monotonic()
        healthz = httpx.get(f"{daemon.base}/healthz", timeout=5)
        took = time.monotonic() - started
        assert healthz.status_code == 200
        assert took < 1.0, f"/healthz took {took:.2f}s during the flood"
        _wait_all_closed(socks, CLOSE_WITHIN_S)
        assert httpx.get(f"{daemon.base}/healthz", timeout=1).status_code == 200
        size = daemon.stderr.stat().st_size
        assert size < 20_000, f"{size} bytes of log during the flood:\n{daemon.log()[:3000]}"
        assert "out of system resource" not in daemon.log()
    finally:
        for sock in socks:
            sock.close()
        _stop(daemon)
    assert daemon.proc.returncode == 0, daemon.log()


def test_slow_heads_and_idle_keep_alive_are_closed_and_a_low_file_limit_is_raised(tmp_path: Path) -> None:
    daemon = _start(tmp_path, (1024, 4096))
    try:
        limits = Path(f"/proc/{daemon.proc.pid}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert row.split()[3:5] == ["4096", "4096"], row
        assert daemon.log().count("open-file limit") == 1, daemon.log()

        # A head that never ends (slowloris) and a kept-alive connection that never sends again.
        slow = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: farm\r\n")
        kept = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: farm\r\n\r\n")
        assert b"200 OK" in kept.recv(4096)
        for sock in (slow, kept):
            sock.setblocking(False)
        time.sleep(1.0)
        assert not _closed_by_peer(slow), "a request head may take a moment"
        assert not _closed_by_peer(kept), "keep-alive holds an idle connection for a moment"
        _wait_all_closed([slow, kept], CLOSE_WITHIN_S)
        slow.close()
        kept.close()
    finally:
        _stop(daemon)
    assert daemon.proc.returncode == 0, daemon.log()


def test_repeated_messages_are_limited_per_template_and_summarised() -> None:
    now = [1000.0]
    out = io.StringIO()
    handler = RateLimitedHandler(out, per_minute=5, clock=lambda: now[0])
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("test.flood")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(1000):
            logger.warning("client=%s sent garbage", i)  # one template, many values: still a flood
        logger.warning("printer=%s offline", "mk4-a")  # another template is not held back
        lines = out.getvalue().splitlines()
        assert lines[:5] == [f"test.flood: client={i} sent garbage" for i in range(5)]
        assert lines[5:] == ["test.flood: printer=mk4-a offline"]

        now[0] += 61  # the next minute: the count of what was held back comes first, once
        logger.warning("client=%s sent garbage", "again")
        lines = out.getvalue().splitlines()[6:]
        assert lines == [
            "test.flood: suppressed 995 similar messages (more than 5 a minute): client=%s sent garbage",
            "test.flood: client=again sent garbage",
        ]
    finally:
        logger.removeHandler(handler)


async def test_asyncio_accept_errors_cannot_flood_the_log() -> None:
    out = io.StringIO()
    handler = RateLimitedHandler(out, per_minute=5)
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    propagate, asyncio_log.propagate = asyncio_log.propagate, False
    try:
        loop = asyncio.get_running_loop()
        error = OSError(24, "Too many open files")
        for _ in range(10_000):  # what asyncio reports for each failed accept() of a full process
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": error}
            )
    finally:
        asyncio_log.removeHandler(handler)
        asyncio_log.propagate = propagate
    text = out.getvalue()
    assert text.count("out of system resource") == 5
    assert len(text) < 5_000
