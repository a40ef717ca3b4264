"""Fixtures: real peers on loopback (OctoPrint virtual printers, mosquitto, InfluxDB, VictoriaMetrics)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from tests.peers.octoprint import OctoPrintPeer, make_template
from tests.peers.servers import InfluxPeer, MosquittoPeer, VictoriaPeer

OctoPrintFactory = Callable[[int], list[OctoPrintPeer]]


@pytest.fixture(scope="session")
def octoprint_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    template = tmp_path_factory.mktemp("octoprint-template")
    return template, make_template(template)


@pytest.fixture(scope="session")
def _octoprint_peers(
    octoprint_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OctoPrintFactory, list[OctoPrintPeer]]]:
    started: list[OctoPrintPeer] = []
    counter = itertools.count()

    def start(count: int) -> list[OctoPrintPeer]:
        peers = [
            OctoPrintPeer(*octoprint_template, tmp_path_factory.mktemp(f"octoprint{next(counter)}"))
            for _ in range(count)
        ]
        started.extend(peers)
        with ThreadPoolExecutor(max_workers=max(count, 1)) as pool:
            list(pool.map(lambda p: p.start_and_wait(), peers))
        return peers

    yield start, started
    for peer in started:
        peer.stop()


@pytest.fixture
def octoprint(
    _octoprint_peers: tuple[OctoPrintFactory, list[OctoPrintPeer]],
) -> Iterator[OctoPrintFactory]:
    """Start N fresh virtual printers for this test; they are stopped when the test ends."""
    start, _ = _octoprint_peers
    mine: list[OctoPrintPeer] = []

    def factory(count: int) -> list[OctoPrintPeer]:
        peers = start(count)
        mine.extend(peers)
        return peers

    yield factory
    for peer in mine:
        peer.stop()


_P = TypeVar("_P", MosquittoPeer, InfluxPeer, VictoriaPeer)


def _serve(peer: _P) -> Iterator[_P]:
    peer.start_and_wait()
    yield peer
    peer.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoPeer]:
    yield from _serve(MosquittoPeer(tmp_path / "mosquitto"))


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxPeer]:
    yield from _serve(InfluxPeer(tmp_path / "influxdb"))


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaPeer]:
    yield from _serve(VictoriaPeer(tmp_path / "victoria"))
