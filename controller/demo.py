"""`farmctl demo`: a local farm of OctoPrint virtual printers and the daemon watching them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shlex
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from controller.config import Config, load_config
from controller.daemon import run_daemon
from controller.demometers import DemoPrinter, config_lines, run_meters, start_broker
from controller.store import Store
from devices.localproc import LocalProcess
from devices.virtual_octoprint import VirtualOctoPrint, make_template

log = logging.getLogger(__name__)

EX_USAGE = 64
# A folder holding this file was made by the demo, so the demo may empty it on its next start.
MARKER = ".farmctl-demo"
SAMPLES = Path("deploy/demo-files")
# The sample the banner and README queue; demo-1 and demo-2 both take it, so --copies 2 uses both.
FIRST_SAMPLE = "cube-pla-0.4.gcode"

_SHAPES = [  # (group, materials, nozzle): a little variety for the queue to match against
    ("prusa", ["PLA", "PETG"], 0.4),
    ("prusa", ["PLA"], 0.4),
    ("creality", ["PLA"], 0.6),
    ("voron", ["ABS", "ASA"], 0.4),
]


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int = EX_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def prepare_workdir(workdir: Path) -> None:
    """Make `workdir` empty for a new demo; refuse a non-empty folder that an earlier demo did not make."""
    if workdir.is_symlink() or (workdir.exists() and not workdir.is_dir()):
        raise DemoError(f"--dir {workdir} is not a folder: choose another --dir")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise DemoError(
                f"--dir {workdir} is not empty and was not made by `farmctl demo`: "
                "it is left as it is; choose a new or empty folder"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (workdir / MARKER).write_text("made by farmctl demo; emptied by its next start\n")


def write_demo_config(
    workdir: Path, printers: list[VirtualOctoPrint], listen: str, broker_port: int | None = None
) -> Path:
    """farmctl.toml with random tokens (admin, viewer) and the printers' keys as secret files; with a
    broker, the simulated meters' sensors and example tariffs."""
    secret_dir = workdir / "secrets"
    secret_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = ["[controller]", f'state_dir = "{workdir / "state"}"', "", "[api]", f'listen = "{listen}"']
    # admin first: the CLI uses the config's first token, and the demo's next steps queue jobs.
    for name, role in (("admin", "admin"), ("viewer", "viewer")):
        (secret_dir / f"{name}.token").write_text(secrets.token_urlsafe(24) + "\n")
        lines += [
            "",
            "[[api.tokens]]",
            f'name = "{name}"',
            f'role = "{role}"',
            f'token_file = "secrets/{name}.token"',
        ]
    names = [f"demo-{i + 1}" for i in range(len(printers))]
    extra: dict[str, list[str]] = {}
    if broker_port is not None:
        sections, extra = config_lines(names, broker_port)
        lines.append(sections)
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
            *extra.get(name, []),
        ]
    path = workdir / "farmctl.toml"
    path.write_text("\n".join(lines) + "\n")
    for secret in secret_dir.iterdir():
        secret.chmod(0o600)
    return path


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it lies inside it (shorter to paste), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def banner(config_path: Path, listen: str, count: int, metered: bool = False) -> str:
    """What to do next, printed once the daemon serves: URLs, where the tokens are, commands to paste."""
    here = Path.cwd()
    script = Path(sys.executable).parent / "farmctl"  # the venv's console script, next to its python
    farmctl = _shown(script) if script.exists() else "farmctl"
    secrets_dir = _shown(config_path.parent / "secrets")
    sample = here / SAMPLES / FIRST_SAMPLE
    lines = [
        "",
        f"farmctl demo is ready: {count} virtual printers, API http://{listen}",
        f"  web page:  http://{listen}/ (sign in with the token in {secrets_dir}/admin.token)",
        f"  API docs:  http://{listen}/docs (sign in with {secrets_dir}/viewer.token)",
        f"  tokens:    {secrets_dir}/admin.token (admin), {secrets_dir}/viewer.token (viewer)",
        "  meters:    simulated plugs on every printer and a spool scale on demo-1: a finished job "
        "shows kWh, grams, cost and CO2 (farmctl queue show ID)"
        if metered
        else "  meters:    none (install mosquitto for simulated plugs and a scale: measured kWh and grams)",
        f"  config:    {_shown(config_path)}",
        "Next, paste these in another shell:",
        f"  cd {shlex.quote(str(here))}",
        f"  export FARMCTL_CONFIG={shlex.quote(str(config_path))}",
        f"  {farmctl} printers",
    ]
    if sample.is_file():
        lines.append(f"  {farmctl} queue add {_shown(sample)} --copies 2")
    lines += [
        f"  {farmctl} queue",
        f"  {farmctl} clear demo-1      # once demo-1 shows awaiting_clear: its bed is empty again",
        "Ctrl-C here stops the demo.",
        "",
    ]
    return "\n".join(lines)


def run_demo(octoprint: str, workdir: Path, count: int, listen: str) -> None:
    """Start `count` virtual printers, write the config, run the daemon until Ctrl-C, stop them."""
    workdir = workdir.absolute()
    prepare_workdir(workdir)
    (workdir / "template").mkdir()
    log.info("demo: preparing %d OctoPrint virtual printers in %s", count, workdir)
    api_key = make_template(workdir / "template", octoprint)
    printers = [
        VirtualOctoPrint(
            octoprint, workdir / "template", api_key, workdir / f"printer-{i + 1}", instant_heat=False
        )
        for i in range(count)
    ]
    broker: tuple[LocalProcess, int] | None = None
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda p: p.start_and_wait(), printers))
        broker = start_broker(workdir)
        port = broker[1] if broker is not None else None
        config_path = write_demo_config(workdir, printers, listen, port)
        config = load_config(config_path)
        # Fresh virtual printers have empty beds; a real farm confirms each bed once instead.
        store = Store(config.controller.state_dir / "farmctl.db")
        for printer_config in config.printers:
            store.set_bed_clear(printer_config.name, True)
        store.close()

        def ready() -> None:
            print(banner(config_path, listen, count, metered=port is not None), flush=True)

        demo = [DemoPrinter(f"demo-{i + 1}", p.url, p.api_key) for i, p in enumerate(printers)]
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_farm(config, demo, port, ready))
    finally:
        for printer in printers:
            printer.stop()
        if broker is not None:
            broker[0].stop()


async def _farm(
    config: Config, printers: list[DemoPrinter], port: int | None, ready: Callable[[], None]
) -> None:
    """The daemon until Ctrl-C, with the simulated meters beside it while it runs."""
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        if port is not None:
            tg.create_task(run_meters(printers, port, stop))
        try:
            await run_daemon(config, on_ready=ready)
        finally:
            stop.set()
