"""`farmctl demo`: a local farm of OctoPrint virtual printers and the daemon watching them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from controller.config import load_config
from controller.daemon import run_daemon
from controller.store import Store
from devices.virtual_octoprint import VirtualOctoPrint, make_template

log = logging.getLogger(__name__)

_SHAPES = [  # (group, materials, nozzle): a little variety for the queue to match against later
    ("prusa", ["PLA", "PETG"], 0.4),
    ("creality", ["PLA"], 0.6),
    ("prusa", ["PETG", "ASA"], 0.4),
    ("voron", ["ABS", "ASA"], 0.4),
]


def write_demo_config(workdir: Path, printers: list[VirtualOctoPrint], listen: str) -> Path:
    """farmctl.toml with random tokens (admin, viewer) and the printers' keys as secret files."""
    secret_dir = workdir / "secrets"
    secret_dir.mkdir(parents=True, exist_ok=True)
    lines = ["[controller]", f'state_dir = "{workdir / "state"}"', "", "[api]", f'listen = "{listen}"']
    for name, role in (("admin", "admin"), ("viewer", "viewer")):
        (secret_dir / f"{name}.token").write_text(secrets.token_urlsafe(24) + "\n")
        lines += [
            "",
            "[[api.tokens]]",
            f'name = "{name}"',
            f'role = "{role}"',
            f'token_file = "secrets/{name}.token"',
        ]
    for i, printer in enumerate(printers):
        group, materials, nozzle = _SHAPES[i % len(_SHAPES)]
        name = f"demo-{i + 1}"
        (secret_dir / f"{name}.key").write_text(printer.api_key + "\n")
        lines += [
            "",
            "[[printers]]",
            f'name = "{name}"',
            f'url = "{printer.url}"',
            f'api_key_file = "secrets/{name}.key"',
            f'group = "{group}"',
            "materials = [" + ", ".join(f'"{m}"' for m in materials) + "]",
            f"nozzle = {nozzle}",
        ]
    path = workdir / "farmctl.toml"
    path.write_text("\n".join(lines) + "\n")
    for secret in secret_dir.iterdir():
        secret.chmod(0o600)
    return path


def run_demo(octoprint: str, workdir: Path, count: int, listen: str) -> None:
    """Start `count` virtual printers, write the config, run the daemon until Ctrl-C, stop them."""
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "template").mkdir(parents=True)
    log.info("demo: preparing %d OctoPrint virtual printers in %s", count, workdir)
    api_key = make_template(workdir / "template", octoprint)
    printers = [
        VirtualOctoPrint(
            octoprint, workdir / "template", api_key, workdir / f"printer-{i + 1}", instant_heat=False
        )
        for i in range(count)
    ]
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda p: p.start_and_wait(), printers))
        config_path = write_demo_config(workdir, printers, listen)
        config = load_config(config_path)
        # Fresh virtual printers have empty beds; a real farm confirms each bed once instead.
        store = Store(config.controller.state_dir / "farmctl.db")
        for printer_config in config.printers:
            store.set_bed_clear(printer_config.name, True)
        store.close()
        log.info("demo: config %s; try: farmctl printers --config %s", config_path, config_path)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_daemon(config))
    finally:
        for printer in printers:
            printer.stop()
