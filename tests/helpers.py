"""Shared test helpers: write a real farmctl.toml with secret files for a set of peers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.config import Config, load_config
from tests.peers.base import free_port


@dataclass
class PrinterSpec:
    name: str
    url: str
    api_key: str
    group: str = "default"
    materials: tuple[str, ...] = ("PLA",)
    nozzle: float = 0.4
    build_volume: tuple[float, float, float] = (220.0, 220.0, 250.0)
    extra: tuple[str, ...] = ()  # more `key = value` lines of its [[printers]] entry (plug, scale)


def write_config(
    tmp_path: Path,
    printers: list[PrinterSpec],
    *,
    api_port: int | None = None,
    tokens: dict[str, str] | None = None,
    controller: str = "",
    sections: str = "",
) -> Path:
    """A farmctl.toml in tmp_path/etc with key and token files beside it; returns its path."""
    etc = tmp_path / "etc"
    (etc / "secrets").mkdir(parents=True, exist_ok=True)
    lines = [
        "[controller]",
        f'state_dir = "{tmp_path / "state"}"',
        "poll_interval = 1.0",
        "reconcile_interval = 5.0",
        "request_timeout = 3.0",
        "offline_backoff_max = 4.0",
        controller,
        "[api]",
        f'listen = "127.0.0.1:{api_port or free_port()}"',
    ]
    for name, role in (tokens or {}).items():
        (etc / "secrets" / f"{name}.token").write_text(f"token-{name}-0123456789\n")
        lines += [
            "[[api.tokens]]",
            f'name = "{name}"',
            f'role = "{role}"',
            f'token_file = "secrets/{name}.token"',
        ]
    lines.append(sections)
    for p in printers:
        (etc / "secrets" / f"{p.name}.key").write_text(p.api_key + "\n")
        materials = ", ".join(f'"{m}"' for m in p.materials)
        lines += [
            "[[printers]]",
            f'name = "{p.name}"',
            f'url = "{p.url}"',
            f'api_key_file = "secrets/{p.name}.key"',
            f'group = "{p.group}"',
            f"materials = [{materials}]",
            f"nozzle = {p.nozzle}",
            "build_volume = [" + ", ".join(str(v) for v in p.build_volume) + "]",
            *p.extra,
        ]
    path = etc / "farmctl.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def config_for(tmp_path: Path, printers: list[PrinterSpec], **kwargs: object) -> Config:
    return load_config(write_config(tmp_path, printers, **kwargs), env={})  # type: ignore[arg-type]


def closed_port_printers(count: int) -> list[PrinterSpec]:
    """Printers whose hosts refuse connections (nothing listens on those ports)."""
    return [PrinterSpec(f"dead-{i}", f"http://127.0.0.1:{free_port()}", "k") for i in range(count)]


async def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until check() is true; fail with `what` after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def metric_value(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")
