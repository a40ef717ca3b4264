"""`--watch [SECONDS]`: redraw a listing every few seconds until Ctrl-C (exit 130, as the CLI does)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer

from controller.cli.common import EX_USAGE, fail

DEFAULT_S = 2.0
MIN_S = 0.5  # each redraw is a request to the daemon: no tighter than this

WATCH_FLAGS = ("--watch", "-w")
WatchOpt = Annotated[
    float | None,
    typer.Option(
        *WATCH_FLAGS,
        metavar="[SECONDS]",
        help=f"Redraw every SECONDS (default {DEFAULT_S:g}; `--watch` alone takes it) until Ctrl-C",
        show_default=False,
    ),
]


def with_watch_default(args: list[str]) -> list[str]:
    """`--watch` or `-w` not followed by a number gets DEFAULT_S inserted: click options take a value
    or none, never an optional one (Typer does not pass click's flag_value on)."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--":
            return out + args[i + 1 :]
        if arg in WATCH_FLAGS:
            following = args[i + 1] if i + 1 < len(args) else ""
            try:
                float(following)
            except ValueError:
                out.append(f"{DEFAULT_S:g}")
    return out


# Home and clear-screen: what `watch(1)` does. Plain VT100, so it works over SSH; piped output gets a
# header line per redraw instead.
_CLEAR = "\x1b[H\x1b[2J"


def watch(render: Callable[[], None], seconds: float | None, title: str) -> None:
    """Call `render` once, or with `seconds` every so often until Ctrl-C (KeyboardInterrupt → 130)."""
    if seconds is None:
        render()
        return
    if seconds < MIN_S:
        raise fail(f"--watch {seconds:g}: redraw at most every {MIN_S:g} s", EX_USAGE)
    tty = sys.stdout.isatty()
    while True:
        header = f"every {seconds:g}s: {title}    {datetime.now().astimezone():%H:%M:%S}"
        if tty:
            sys.stdout.write(_CLEAR)
        typer.echo(header)
        render()
        sys.stdout.flush()
        time.sleep(seconds)
