"""The README's demo, as a newcomer runs it: the demo's banner, then each "next steps" line verbatim."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers.base import free_port

REPO = Path(__file__).resolve().parents[1]
FARMCTL = Path(sys.executable).parent / "farmctl"
_BLOCK = re.compile(r"<!-- next-steps: begin[^>]*-->\s*```\n(.*?)```\s*<!-- next-steps: end -->", re.DOTALL)

pytestmark = pytest.mark.peers


def next_steps() -> list[str]:
    """The command lines of the README's "next steps" block."""
    match = _BLOCK.search((REPO / "README.md").read_text())
    assert match, "README.md has no next-steps block"
    return [line for line in match.group(1).splitlines() if line.strip()]


class Demo:
    """`farmctl demo` in a folder laid out like a checkout, its output collected line by line."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.lines: list[str] = []
        env = {k: v for k, v in os.environ.items() if k != "FARMCTL_CONFIG"}
        self.proc = subprocess.Popen(
            [str(FARMCTL), "demo", "--listen", f"127.0.0.1:{port}"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, "\n".join(self.lines)
            time.sleep(0.1)

    def api(self, path: str) -> Any:
        token = (self.home / "run/demo/secrets/viewer.token").read_text().strip()
        resp = httpx.get(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        resp.raise_for_status()
        return resp.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C, as the banner says
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    # The README's commands are relative to the project folder: a folder with the same layout (the
    # venv and deploy/ linked in), so this test never touches a demo the developer may be running.
    home = tmp_path / "checkout"
    home.mkdir()
    for name in (".venv", ".venv-octoprint", "deploy"):
        (home / name).symlink_to(REPO / name)
    running = Demo(home, free_port())
    yield running
    running.stop()


def test_readme_next_steps_run_verbatim_against_the_demo(demo: Demo) -> None:
    demo.wait_for("Ctrl-C here stops the demo.", timeout=120)
    banner = "\n".join(demo.lines)
    config = demo.home / "run/demo/farmctl.toml"
    assert f"export FARMCTL_CONFIG={config}" in banner
    assert f"http://127.0.0.1:{demo.port}/docs" in banner
    assert "run/demo/secrets/admin.token (admin)" in banner
    assert "queue add deploy/demo-files/cube-pla-0.4.gcode --copies 2" in banner

    exports: list[str] = []
    for line in next_steps():
        if line.startswith("export "):
            exports.append(line)
            continue
        if " clear demo-1" in line:
            # The README says to clear demo-1 once it shows awaiting_clear: the cube prints first.
            deadline = time.monotonic() + 120
            while demo.api("/api/v1/printers/demo-1")["state"] != "awaiting_clear":
                assert time.monotonic() < deadline, demo.api("/api/v1/printers")
                time.sleep(0.5)
        script = "set -euo pipefail\n" + "\n".join([*exports, line])
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARMCTL_")}
        done = subprocess.run(
            ["bash", "-c", script], cwd=demo.home, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        if "--copies 2" in line:
            # Both demo printers take the sample: the two copies start together, one on each.
            deadline = time.monotonic() + 30
            while {j["printer"] for j in demo.api("/api/v1/jobs")["jobs"]} != {"demo-1", "demo-2"}:
                assert time.monotonic() < deadline, demo.api("/api/v1/jobs")
                time.sleep(0.2)
        if line.endswith("queue show 3"):
            # Only demo-1 has PETG: the bracket waits for it, and says so.
            reason = re.search(r"waiting\s+demo-1 (printing job 1|awaiting bed clear)", done.stdout)
            assert reason, done.stdout

    # The last step cleared demo-1's bed, so the waiting PETG bracket starts there.
    deadline = time.monotonic() + 30
    while (job := demo.api("/api/v1/jobs/3"))["state"] == "queued":
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert (job["file"], job["printer"]) == ("bracket-petg-0.4.gcode", "demo-1")

    # The demo's simulated plugs meter every print: the first cube has measured energy, a cost and CO2.
    deadline = time.monotonic() + 60
    while (first := demo.api("/api/v1/jobs/1"))["energy_kwh"] is None:
        assert time.monotonic() < deadline, first
        time.sleep(0.5)
    assert first["energy_kwh"] > 0
    assert first["cost"] > 0
    assert first["co2_g"] > 0
    assert "meters:    simulated plugs on every printer" in banner
