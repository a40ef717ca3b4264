"""The `farmctl` command: run the daemon, check config, and talk to a running daemon over its API."""

from __future__ import annotations

import sys

import controller.cli.report  # noqa: F401 - registers report and passport
from controller.cli import admin, daemon, ops, printers, queue  # noqa: F401 - each module registers its commands
from controller.cli.app import app
from controller.cli.watch import with_watch_default


def main() -> None:
    """Console-script entry point."""
    try:
        app(args=with_watch_default(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
