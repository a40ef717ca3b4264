"""OctoPrint with its Virtual Printer as a local process: the demo farm's printers and the tests' peers.

OctoPrint lives in its own venv (it pins old Flask/Click/Tornado); we only run its executable.
"""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import subprocess
import urllib.request
from pathlib import Path

from devices.localproc import LocalProcess, free_port

USER = "farm"


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


class VirtualOctoPrint(LocalProcess):
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
        argv = [octoprint, "serve", "--iknowwhatimdoing", "--basedir", str(self.basedir),
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        super().__init__("octoprint", argv, workdir)

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
        self.wait_ready(self.ready, timeout)
