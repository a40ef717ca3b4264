"""mosquitto, InfluxDB 1.6.7 and VictoriaMetrics on free loopback ports."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.peers.base import Peer, free_port, http_status, port_open


def _bin(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{name} not installed: run `bash tests/run`")
    return path


class MosquittoPeer(Peer):
    """mosquitto 2 with persistence; extra config lines (auth, TLS) may be added."""

    def __init__(self, workdir: Path, extra: list[str] | None = None, port: int | None = None):
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        lines = [
            "user root",
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            "log_dest stderr",
            "max_queued_messages 0",
            *(extra or ["allow_anonymous true"]),
        ]
        conf.write_text("\n".join(lines) + "\n")
        super().__init__(f"mosquitto-{self.port}", [_bin("mosquitto"), "-c", str(conf)], workdir)

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
