"""Crash safety: the daemon is SIGKILLed at several points of dispatch and restarted on the same state;
every job is printed exactly once, as the printer's own history shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from controller.config import load_config
from controller.store import Store
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file
from tests.helpers import PrinterSpec, write_config
from tests.test_dispatch import remote_prints

REPO = Path(__file__).resolve().parent.parent


class Daemon:
    """`farmctl run` as a child process with its log in a file; with `crashpoint`, it SIGKILLs itself
    there (tests/crashing_daemon.py)."""

    def __init__(self, config: Path, log: Path, crashpoint: str | None = None) -> None:
        command = [sys.executable, "-m", "tests.crashing_daemon", "run", "--config", str(config)]
        if crashpoint:
            command += ["--crash-at", crashpoint]
        self.log = log
        with log.open("a") as out:
            self.proc = subprocess.Popen(command, stderr=out, stdout=out, cwd=REPO)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def wait_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("daemon did not come up")

    def submit(self, path: Path) -> int:
        with path.open("rb") as f:
            resp = self.client.post("/api/v1/jobs", files={"file": (path.name, f)})
        assert resp.status_code == 201, resp.text
        job_id: int = resp.json()["jobs"][0]["id"]
        return job_id

    def job(self, job_id: int) -> dict[str, Any]:
        resp = self.client.get(f"/api/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        return job

    def wait_job(self, job_id: int, states: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not in {states}: {self.job(job_id)}")

    def clear_when_asked(self, printer: str, timeout: float = 30) -> None:
        """Confirm the bed once the printer waits for it (409 while its last job is still recorded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.client.get(f"/api/v1/printers/{printer}").json()["state"]
            if state == "awaiting_clear" and self.client.post(f"/api/v1/printers/{printer}/clear").is_success:
                return
            if state == "idle":
                return
            time.sleep(0.1)
        raise AssertionError(f"{printer} never asked for a clear bed")


# Where the daemon dies: before the upload, between the upload and recording it, just after recording
# that the print started, and (None) killed from outside while the job prints.
POINTS = ["before_upload", "after_upload", "after_start_recorded", None]


async def test_sigkill_at_each_point_of_dispatch_prints_every_job_exactly_once(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    path = write_config(
        tmp_path,
        [PrinterSpec("p1", peer.url, peer.api_key)],
        tokens=TOKENS,
        sections="[jobs]\ndispatch_interval = 0.5\n",
    )
    config = load_config(path, env={})
    store = Store(config.controller.state_dir / "farmctl.db")
    store.set_bed_clear("p1", True)  # the bed starts empty
    store.close()
    ops = (tmp_path / "etc/secrets/ops.token").read_text().strip()
    api = Api(f"http://{config.api.listen}", ops)
    log = tmp_path / "daemon.log"
    job_ids: list[int] = []
    daemon: Daemon | None = None
    try:
        for point in POINTS:
            daemon = Daemon(path, log, crashpoint=point)
            api.wait_up()
            api.clear_when_asked("p1")
            job_id = api.submit(print_file(tmp_path / f"part-{len(job_ids)}.gcode", seconds=3))
            job_ids.append(job_id)
            if point is None:
                api.wait_job(job_id, {"printing"}, 30)
                daemon.kill()
            else:
                assert daemon.wait_exit(30) == -signal.SIGKILL, log.read_text()[-2000:]

            # Restarted on the same state: the job is found wherever the crash left it.
            daemon = Daemon(path, log)
            api.wait_up()
            if point == "before_upload":
                # Nothing reached the printer, but the bed was marked used before the upload:
                # unknown beds wait for the operator, then the job goes out (once).
                assert api.wait_job(job_id, {"queued"}, 30)["error"] == "the upload did not start the print"
                api.clear_when_asked("p1")
            done = api.wait_job(job_id, {"completed", "failed", "cancelled"}, 60)
            assert done["state"] == "completed", (point, done, log.read_text()[-3000:])
            daemon.stop()
            assert daemon.proc.returncode == 0
    finally:
        if daemon is not None:
            daemon.kill()
        api.client.close()

    history = await remote_prints(peer)
    for job_id in job_ids:
        prints = [counts for name, counts in history.items() if name.startswith(f"farmctl-{job_id}-")]
        assert prints == [(1, 0)], (job_id, history)
    store = Store(config.controller.state_dir / "farmctl.db")
    try:
        for job_id in job_ids:
            states = [str(e.state) for e in store.events(job_id)]
            # Recorded as started at most once (a print that ended during the restart goes straight
            # from dispatching to completed).
            assert states.count("printing") <= 1, (job_id, states)
            assert states[-1] == "completed"
    finally:
        store.close()
