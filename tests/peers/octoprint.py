"""OctoPrint 1.11 with its Virtual Printer, from the separate OctoPrint venv."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from tests.peers.base import Peer, free_port, http_status

ROOT = Path(__file__).resolve().parents[2]
USER = "farm"


def octoprint_bin() -> str:
    path = os.environ.get("FARMCTL_OCTOPRINT_BIN") or str(ROOT / ".venv-octoprint/bin/octoprint")
    if not Path(path).exists():
        raise RuntimeError(f"OctoPrint not installed at {path}: run `bash tests/run`")
    return path


def make_template(basedir: Path) -> str:
    """A basedir with a user and an application key; returns the key. Copied for every instance."""
    subprocess.run(
        [
            octoprint_bin(),
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


def _config(port: int) -> dict[str, object]:
    """A quiet, offline, fast peer (facts: ../shared/notes/test-peers.md)."""
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
            "virtual_printer": {
                "enabled": True,
                "simulated_errors": [],
                "ambientTemperature": 250.0,
            },
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


class OctoPrintPeer(Peer):
    """One OctoPrint server with a virtual printer attached."""

    def __init__(self, template: Path, api_key: str, workdir: Path):
        self.port = free_port()
        self.basedir = workdir / "basedir"
        shutil.copytree(template, self.basedir)
        # JSON is YAML; OctoPrint rewrites this file on start, hence a fresh copy per instance.
        (self.basedir / "config.yaml").write_text(json.dumps(_config(self.port)))
        self.api_key = api_key
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            f"octoprint-{self.port}",
            [
                octoprint_bin(),
                "serve",
                "--iknowwhatimdoing",
                "--basedir",
                str(self.basedir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            workdir,
        )

    def ready(self) -> bool:
        headers = {"X-Api-Key": self.api_key}
        return http_status(f"{self.url}/api/printer", headers) == 200

    def start_and_wait(self, timeout: float = 90.0) -> None:
        self.start()
        self.wait_ready(self.ready, timeout)

    def restart(self, timeout: float = 90.0) -> None:
        """Start the same instance again (same port and basedir) after stop() or kill()."""
        self.start_and_wait(timeout)
