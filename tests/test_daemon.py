"""`farmctl run` as a real subprocess with two virtual printers: API, roles, CLI, sd_notify, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import OctoPrintFactory
from tests.helpers import PrinterSpec, write_config
from tests.peers.base import free_port
from tests.test_crash import Api

TOKENS = {"viewer": "viewer", "ops": "operator"}


class Notifications:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET, read as systemd does: all the time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.received: list[str] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.received += self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, field: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while field not in self.received:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {field} from the daemon; got {self.received}")
            time.sleep(0.02)

    def close(self) -> None:
        self._closed.set()
        self._reader.join(5)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notifications]:
    n = Notifications(tmp_path / "notify.sock")
    yield n
    n.close()


def farmctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _run(config: Path, notify_socket: Path, *, watchdog_usec: int) -> subprocess.Popen[str]:
    """`farmctl run` as systemd starts it: with $NOTIFY_SOCKET and a watchdog, its log on a pipe."""
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_socket), "WATCHDOG_USEC": str(watchdog_usec)}
    env.pop("JOURNAL_STREAM", None)
    return subprocess.Popen(
        [sys.executable, "-m", "controller", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_daemon_serves_two_printers_with_roles_and_stops_cleanly(
    octoprint: OctoPrintFactory, tmp_path: Path, notify: Notifications
) -> None:
    a, b = octoprint(2)
    port = free_port()
    config = write_config(
        tmp_path,
        [PrinterSpec("mk4-a", a.url, a.api_key), PrinterSpec("mk4-b", b.url, b.api_key, group="east")],
        api_port=port,
        tokens=TOKENS,
    )
    started = time.monotonic()
    daemon = _run(config, notify.path, watchdog_usec=1_000_000)
    try:
        notify.wait_for("READY=1", 30)
        ready_s = time.monotonic() - started
        notify.received.clear()
        notify.wait_for("WATCHDOG=1", 3)

        base = f"http://127.0.0.1:{port}"
        viewer = (tmp_path / "etc/secrets/viewer.token").read_text().strip()
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        no_token = httpx.get(f"{base}/api/v1/printers")
        assert no_token.status_code == 401
        assert no_token.json() == {"error": "missing bearer token"}
        bad = httpx.get(f"{base}/api/v1/printers", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        forbidden = httpx.post(f"{base}/api/v1/printers/mk4-a/clear", headers=as_viewer)
        assert forbidden.status_code == 403
        assert "needs operator" in forbidden.json()["error"]
        missing = httpx.get(f"{base}/api/v1/printers/nope", headers=as_viewer)
        assert missing.status_code == 404
        assert "nope" in missing.json()["error"]

        # The CLI finds the daemon and a token through the config. A fresh farm knows nothing about
        # its beds, so each printer waits for an operator to confirm it is clear.
        deadline = time.monotonic() + 20
        while True:
            out = farmctl("printers", "--config", str(config), "--json")
            assert out.returncode == 0, out.stderr
            rows = json.loads(out.stdout)
            if [r["state"] for r in rows] == ["awaiting_clear"] * 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert [(r["name"], r["state"], r["group"]) for r in rows] == [
            ("mk4-a", "awaiting_clear", "default"),
            ("mk4-b", "awaiting_clear", "east"),
        ]
        ops = {"Authorization": f"Bearer {(tmp_path / 'etc/secrets/ops.token').read_text().strip()}"}
        for name in ("mk4-a", "mk4-b"):
            cleared = httpx.post(f"{base}/api/v1/printers/{name}/clear", headers=ops)
            assert cleared.status_code == 200, cleared.text
            assert cleared.json()["state"] == "idle"
        assert rows[0]["last_seen"] is not None
        table = farmctl("printers", "--config", str(config))
        assert "mk4-a" in table.stdout
        assert "mk4-b" in table.stdout
        assert "idle" in table.stdout
        as_ops = farmctl(
            "printers", "--api", base, "--token-file", str(tmp_path / "etc/secrets/ops.token"), "--json"
        )
        assert as_ops.returncode == 0
        wrong = farmctl("printers", "--api", base, "--json", env={"FARMCTL_TOKEN": "wrong"})
        assert wrong.returncode == 77
        assert "invalid token" in wrong.stderr

        not_awaiting = httpx.post(f"{base}/api/v1/printers/mk4-a/clear", headers=ops)
        assert not_awaiting.status_code == 409
        assert "clear already" in not_awaiting.json()["error"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, stderr
    notify.wait_for("STOPPING=1", 1)
    assert "farmctl ready in" in stderr
    for secret in [a.api_key, *(p.read_text().strip() for p in (tmp_path / "etc/secrets").glob("*.token"))]:
        assert secret not in stderr
    print(f"daemon ready after {ready_s:.2f}s (process start to READY=1)")


def test_a_notify_socket_nobody_reads_never_stalls_the_daemon(tmp_path: Path) -> None:
    # Linux queues 10 datagrams per socket (net.unix.max_dgram_qlen): a blocking send stalled the event
    # loop, API and shutdown included, once the reader fell behind (it did here, in CI).
    port = free_port()
    config = write_config(
        tmp_path, [PrinterSpec("p", "http://127.0.0.1:1", "k")], api_port=port, tokens=TOKENS
    )
    unread = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unread.bind(str(tmp_path / "notify.sock"))
    daemon = _run(config, tmp_path / "notify.sock", watchdog_usec=100_000)
    api = Api(f"http://127.0.0.1:{port}", (tmp_path / "etc/secrets/ops.token").read_text().strip())
    try:
        api.wait_up()
        # A ping every 50 ms: the queue has been full for seconds by the end of these.
        for _ in range(30):
            assert api.client.get("/api/v1/printers", timeout=2).status_code == 200
            time.sleep(0.1)
        stopped_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
        took = time.monotonic() - stopped_at
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate(timeout=10)
        api.client.close()
        unread.close()
    assert daemon.returncode == 0, stderr[-3000:]
    # STOPPING waits its turn a few seconds (ANNOUNCE_PATIENCE_S), then the daemon stops anyway.
    assert took < 15, took
    assert stderr.count("its queue is full; dropping WATCHDOG=1") == 1, stderr[-3000:]
    assert "its queue stayed full; STOPPING=1 not sent" in stderr, stderr[-3000:]


def test_bad_config_exits_78_and_names_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, [PrinterSpec("p", "http://127.0.0.1:1", "k")], tokens=TOKENS)
    config.write_text(config.read_text().replace("[api]", "[api]\nlisen = 1"))
    out = farmctl("run", "--config", str(config))
    assert out.returncode == 78
    assert f"{config}: api.lisen: unknown key" in out.stderr
    (tmp_path / "etc/secrets/p.key").unlink()
    out = farmctl("config", "check", str(config))
    assert out.returncode == 78
    config.write_text(config.read_text().replace("lisen = 1", ""))
    out = farmctl("run", "--config", str(config))
    assert out.returncode == 78
    assert "printers['p'].api_key_file: cannot read secret file" in out.stderr
    config.write_text(config.read_text().replace("nozzle", "x") + "nozzle = 'wide'\n")
    out = farmctl("config", "check", str(config))
    assert out.returncode == 78
    assert "printers['p'].nozzle" in out.stderr


def test_busy_listen_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, [], api_port=port, tokens=TOKENS)
        out = farmctl("run", "--config", str(config))
    assert out.returncode == 69
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
