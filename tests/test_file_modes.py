"""The daemon's state (job database, uploaded G-code, telemetry spool) is not readable by other users."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from controller.store import Store
from tests.farm import print_file
from tests.helpers import PrinterSpec, write_config
from tests.peers.base import free_port


def _loose(state: Path) -> list[str]:
    """Paths under `state` (itself included) with group-write or any "other" bit."""
    paths = [state, *state.rglob("*")]
    return [f"{p} {stat.filemode(p.lstat().st_mode)}" for p in paths if p.lstat().st_mode & 0o027]


def test_state_files_are_for_the_daemon_user_and_group_only(tmp_path: Path) -> None:
    port = free_port()
    influx = f"http://127.0.0.1:{free_port()}"  # nothing listens: telemetry goes to the disk spool
    config = write_config(
        tmp_path,
        [PrinterSpec("p1", f"http://127.0.0.1:{free_port()}", "k")],
        api_port=port,
        tokens={"ops": "operator"},
        sections=f'[influx]\napi = "v1"\nurl = "{influx}"\ndatabase = "farm"\nflush_interval = 0.2\n'
        "printer_interval = 0.2\n",
    )
    state = tmp_path / "state"
    old = os.umask(0o022)  # what a shell or systemd gives by default
    try:
        # What an older version left behind: a world-readable state dir, database and upload.
        state.mkdir(mode=0o755)
        Store(state / "farmctl.db").close()
        (state / "files").mkdir(mode=0o755)
        (state / "files" / "old.gcode").write_text("G28\n")
        assert _loose(state)
        log = tmp_path / "daemon.log"
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "controller", "run", "--config", str(config)], stderr=out, stdout=out
            )
    finally:
        os.umask(old)
    token = (tmp_path / "etc/secrets/ops.token").read_text().strip()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as api:
            deadline = time.monotonic() + 30
            while True:
                assert daemon.poll() is None, log.read_text()
                try:
                    if api.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            gcode = print_file(tmp_path / "part.gcode")
            with gcode.open("rb") as f:
                assert api.post("/api/v1/jobs", files={"file": (gcode.name, f)}).status_code == 201
            deadline = time.monotonic() + 20
            while not list((state / "spool").glob("*.lp")):
                assert time.monotonic() < deadline, "nothing spooled"
                time.sleep(0.2)
        # While it runs: the database with its -wal and -shm, the upload, the spool segments.
        names = {p.name for p in state.rglob("*")}
        assert {"farmctl.db", "farmctl.db-wal", "spool", "files"} <= names, names
        assert len(list((state / "files").rglob("*"))) >= 2, "the upload is stored beside old.gcode"
        assert _loose(state) == []
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
    assert daemon.returncode == 0, log.read_text()
    assert _loose(state) == []
