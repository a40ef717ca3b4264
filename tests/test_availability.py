"""One way for the fleet, the ingest and the writer to tell the log about a peer: down once, back once."""

from __future__ import annotations

import logging

import pytest

from controller.core.availability import Availability, Backoff

log = logging.getLogger("test.peer")


def test_a_long_outage_is_two_lines_and_the_backoff_grows_then_resets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = Availability(
        log, Backoff(1.0, 4.0), down_message="peer x down: %s", up_message="peer x back after %.0fs (%s)"
    )
    with caplog.at_level(logging.INFO, logger="test.peer"):
        delays = [peer.down(ConnectionRefusedError("refused")) for _ in range(1000)]
        assert peer.is_down
        lasted = peer.up("idle")
        assert peer.up() is None  # already up: nothing to tell
    assert delays[:4] == [1.0, 2.0, 4.0, 4.0]
    assert lasted is not None
    assert lasted >= 0
    assert [r.getMessage() for r in caplog.records] == ["peer x down: refused", "peer x back after 0s (idle)"]
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert peer.down("again") == 1.0  # a new outage starts from the first delay


def test_retell_logs_a_changed_reason_once(caplog: pytest.LogCaptureFixture) -> None:
    peer = Availability(log, Backoff(1.0, 1.0), down_message="down: %s", up_message="back after %.0fs")
    with caplog.at_level(logging.WARNING, logger="test.peer"):
        peer.down("unreachable", retell=True)
        peer.down("unreachable", retell=True)
        peer.down("key refused", retell=True)
        peer.down("key refused", retell=True)
        peer.down("other", retell=False)
    assert [r.getMessage() for r in caplog.records] == ["down: unreachable", "down: key refused"]
