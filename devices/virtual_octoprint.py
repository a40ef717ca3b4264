"""OctoPrint with its Virtual Printer as a local process: the demo farm's printers and the tests' peers.

OctoPrint lives in its own venv (it pins old Flask/Click/Tornado); we only run its executable.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

USER = "farm"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_template(basedir: Path, octoprint: str) -> str:
    """A basedir with a user and an application key (copied for each instance); returns the key."""
    subprocess.run(  # noqa: S603 - our own OctoPrint executable, fixed arguments
        [
            octoprint,
            "--basedir",
            str(basedir),
            "user",
            "add",
            USER,
            "--password",
            secrets.token_hex(8),
            "--admin",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    api_key = secrets.token_hex(16)
    keys = basedir / "data" / "appkeys" / "keys.yaml"
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.write_text(json.dumps({USER: [{"app_id": "farmctl", "api_key": api_key}]}))
    return api_key


def _settings(port: int, instant_heat: bool) -> dict[str, object]:
    """A quiet, offline peer; comm timeouts short so a hung printer is seen in seconds."""
    virtual: dict[str, object] = {"enabled": True, "simulated_errors": []}
    if instant_heat:
        virtual["ambientTemperature"] = 250.0  # M109/M190 up to 250 °C return at once
    return {
        "server": {
            "firstRun": False,
            "onlineCheck": {"enabled": False},
            "pluginBlacklist": {"enabled": False},
            "pythonEolCheck": {"enabled": False},
            "host": "127.0.0.1",
            "port": port,
        },
        "serial": {
            "port": "VIRTUAL",
            "baudrate": 115200,
            "autoconnect": True,
            "timeout": {"communication": 2},
            "maxCommunicationTimeouts": {"idle": 2, "printing": 2, "long": 2},
        },
        "plugins": {
            "virtual_printer": virtual,
            # These reach the network at start (discovery sends multicast): off in a closed workshop.
            "_disabled": [
                "announcements",
                "discovery",
                "errortracking",
                "health_check",
                "pluginmanager",
                "softwareupdate",
                "tracking",
                "achievements",
            ],
        },
    }


class VirtualOctoPrint:
    """One OctoPrint server with a virtual printer, on a loopback port; stopped by its own PID."""

    def __init__(
        self, octoprint: str, template: Path, api_key: str, workdir: Path, *, instant_heat: bool = True
    ) -> None:
        self.port = free_port()
        self.basedir = workdir / "basedir"
        shutil.copytree(template, self.basedir)
        # JSON is YAML. OctoPrint rewrites this file on start, hence a fresh copy per instance.
        (self.basedir / "config.yaml").write_text(json.dumps(_settings(self.port, instant_heat)))
        self.api_key = api_key
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "octoprint.log"
        self.argv = [
            octoprint,
            "serve",
            "--iknowwhatimdoing",
            "--basedir",
            str(self.basedir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own OctoPrint executable
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """The API answers with our key and the printer is connected."""
        url, headers = f"{self.url}/api/printer", {"X-Api-Key": self.api_key}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our loopback URL
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:  # noqa: S310 - our loopback URL
                return int(resp.status) == 200
        except (OSError, http.client.HTTPException):
            return False  # during start-up an intermediary server resets or garbles connections

    def start_and_wait(self, timeout: float = 90.0) -> None:
        self.start()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running():
                raise RuntimeError(f"OctoPrint on port {self.port} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"OctoPrint on port {self.port} not ready:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM our PID; SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL our PID: the printer host is gone without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
