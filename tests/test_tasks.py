"""run_until_stopped: the helper every long-lived daemon task runs under."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from controller import tasks
from controller.tasks import run_until_stopped


async def test_stop_cancels_the_work_and_returns() -> None:
    stop = asyncio.Event()
    unwound = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    runner = asyncio.create_task(run_until_stopped(stop, forever()))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(runner, 1)
    assert unwound.is_set()


async def test_a_crash_of_the_work_propagates() -> None:
    async def crash() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await run_until_stopped(asyncio.Event(), crash())


async def test_work_that_hangs_while_unwinding_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Like a task whose cancel was swallowed by asyncio.wait_for on Python 3.11."""
    monkeypatch.setattr(tasks, "UNWIND_S", 0.2)
    stop = asyncio.Event()

    async def stubborn_exit() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # the cancel was lost: it goes on waiting
            raise

    runner = asyncio.create_task(run_until_stopped(stop, stubborn_exit()))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(runner, 2)
    assert 0.15 < time.monotonic() - started < 1.0
    assert "stubborn_exit still unwinding" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING
