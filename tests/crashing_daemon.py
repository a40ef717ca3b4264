"""`farmctl` with a crash: `python -m tests.crashing_daemon run --config X --crash-at after_upload`.

Installs a dispatcher checkpoint that SIGKILLs this process when the named point is reached, then
runs the normal CLI with the remaining arguments. Without --crash-at it is plain `farmctl`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from controller.cli import main as farmctl
from controller.jobs.dispatch import Dispatcher

CRASH_POINTS = ("before_upload", "after_upload", "after_start_recorded")


def crash_at(point: str) -> None:
    """Every dispatcher in this process kills it at `point`."""
    if point not in CRASH_POINTS:
        raise SystemExit(f"--crash-at must be one of {', '.join(CRASH_POINTS)}, not {point!r}")

    def checkpoint(_: Dispatcher, name: str) -> None:
        if name == point:
            logging.getLogger(__name__).warning("crash point %s reached: killing the daemon", name)
            os.kill(os.getpid(), signal.SIGKILL)

    Dispatcher.checkpoint = checkpoint  # type: ignore[method-assign, assignment]


def main(argv: list[str]) -> None:
    args = list(argv)
    if "--crash-at" in args:
        at = args.index("--crash-at")
        if at + 1 >= len(args):
            raise SystemExit("--crash-at needs a point")
        crash_at(args[at + 1])
        del args[at : at + 2]
    sys.argv = [sys.argv[0], *args]
    farmctl()


if __name__ == "__main__":
    main(sys.argv[1:])
