"""mosquitto, InfluxDB 1.6.7 and VictoriaMetrics on free loopback ports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Literal

from tests.peers.base import Peer, free_port, http_status, port_open


def _bin(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{name} not installed: run `bash tests/run`")
    return path


SHIPPED_MOSQUITTO_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto.conf"
# The shipped file's options that name this machine's paths and port: a test run replaces only these.
MACHINE_OPTIONS = ("listener", "pid_file", "persistence_location", "password_file", "include_dir")
QueueSettings = Literal["unlimited", "stock", "shipped"]


def shipped_mosquitto_conf(values: dict[str, str]) -> list[str]:
    """deploy/mosquitto.conf with the MACHINE_OPTIONS lines set to `values`, every other line as is."""
    lines = SHIPPED_MOSQUITTO_CONF.read_text().splitlines()
    found = set()
    for i, line in enumerate(lines):
        option = line.split(maxsplit=1)[0] if line.strip() and not line.startswith("#") else ""
        if option in values:
            found.add(option)
            lines[i] = f"{option} {values[option]}"
    if missing := set(MACHINE_OPTIONS) - found:
        raise RuntimeError(f"{SHIPPED_MOSQUITTO_CONF} has no {', '.join(sorted(missing))} line")
    return lines


class MosquittoPeer(Peer):
    """mosquitto 2 with persistence; extra config lines (auth, TLS) may be added. `settings`:
    "unlimited" queues every message for an absent client (tests of farmctl's own buffers), "stock"
    keeps mosquitto's queue defaults (1000 messages per client), "shipped" runs deploy/mosquitto.conf
    on a loopback port, with a login (username, password)."""

    def __init__(
        self,
        workdir: Path,
        extra: list[str] | None = None,
        port: int | None = None,
        *,
        settings: QueueSettings = "unlimited",
    ):
        self.port = port or free_port()
        self.username: str | None = None
        self.password: str | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        if settings == "shipped":
            self.username, self.password = "farmctl", "mqtt-password-0123"
            passwd = workdir / "passwd"
            subprocess.run(
                [_bin("mosquitto_passwd"), "-c", "-b", str(passwd), self.username, self.password],
                check=True,
                timeout=30,
            )
            (workdir / "conf.d").mkdir(exist_ok=True)
            values = {
                "listener": f"{self.port} 127.0.0.1",
                "pid_file": str(workdir / "mosquitto.pid"),
                "persistence_location": f"{workdir}/",
                "password_file": str(passwd),
                "include_dir": str(workdir / "conf.d"),
            }
            lines = ["user root", *shipped_mosquitto_conf(values), *(extra or [])]
        else:
            lines = [
                "user root",
                f"listener {self.port} 127.0.0.1",
                "persistence true",
                f"persistence_location {workdir}/",
                "autosave_interval 1",
                "log_dest stderr",
                *(["max_queued_messages 0"] if settings == "unlimited" else []),
                *(extra or ["allow_anonymous true"]),
            ]
        conf.write_text("\n".join(lines) + "\n")
        super().__init__(f"mosquitto-{self.port}", [_bin("mosquitto"), "-c", str(conf)], workdir)

    def login_toml(self, etc: Path) -> str:
        """farmctl's [mqtt] lines for this broker's login ("" without one); the password goes in a
        file under etc/secrets."""
        if self.username is None:
            return ""
        (etc / "secrets").mkdir(parents=True, exist_ok=True)
        (etc / "secrets" / "mqtt.password").write_text(f"{self.password}\n")
        return f'username = "{self.username}"\npassword_file = "secrets/mqtt.password"\n'

    def start_and_wait(self) -> None:
        self.start()
        self.wait_ready(lambda: port_open(self.port), 15)


class InfluxPeer(Peer):
    """InfluxDB 1.x (`/write` + InfluxQL `/query`)."""

    def __init__(self, workdir: Path, auth: bool = False):
        self.port = free_port()
        rpc = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if auth else "false"}
  log-enabled = false
[logging]
  level = "warn"
"""
        )
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(f"influxd-{self.port}", [_bin("influxd"), "run", "-config", str(conf)], workdir)

    def start_and_wait(self) -> None:
        self.start()
        self.wait_ready(lambda: http_status(f"{self.url}/ping") == 204, 30)


class VictoriaPeer(Peer):
    """VictoriaMetrics: accepts InfluxDB v1 and v2 line-protocol writes."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            f"victoria-{self.port}",
            [
                _bin("victoria-metrics"),
                f"-storageDataPath={workdir}/data",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                "-loggerLevel=WARN",
            ],
            workdir,
        )

    def start_and_wait(self) -> None:
        self.start()
        self.wait_ready(lambda: http_status(f"{self.url}/health") == 200, 30)
