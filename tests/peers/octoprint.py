"""OctoPrint 1.11 with its Virtual Printer, from the separate OctoPrint venv (devices.virtual_octoprint)."""

from __future__ import annotations

import os
from pathlib import Path

from devices.virtual_octoprint import VirtualOctoPrint
from devices.virtual_octoprint import make_template as _make_template

ROOT = Path(__file__).resolve().parents[2]


def octoprint_bin() -> str:
    path = os.environ.get("FARMCTL_OCTOPRINT_BIN") or str(ROOT / ".venv-octoprint/bin/octoprint")
    if not Path(path).exists():
        raise RuntimeError(f"OctoPrint not installed at {path}: run `bash tests/run`")
    return path


def make_template(basedir: Path) -> str:
    return _make_template(basedir, octoprint_bin())


class OctoPrintPeer(VirtualOctoPrint):
    """A virtual printer for one test: instant heat-up, restartable on the same port."""

    def __init__(self, template: Path, api_key: str, workdir: Path) -> None:
        super().__init__(octoprint_bin(), template, api_key, workdir)

    def restart(self, timeout: float = 90.0) -> None:
        """Start the same instance again (same port and basedir) after stop() or kill()."""
        self.start_and_wait(timeout)
