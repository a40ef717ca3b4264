"""`farmctl run` as the reload tests need it: `python -m tests.reloading_daemon CONFIG`.

The daemon reads its config again on SIGHUP from the path it was started with; `farmctl run` does not
hand that path to run_daemon yet (controller/cli/daemon.py), so this runs the daemon as `run` does,
with the path.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from controller.config import load_config
from controller.daemon import run_daemon
from controller.logsetup import setup_logging

if __name__ == "__main__":
    path = Path(sys.argv[1])
    os.umask(0o027)
    config = load_config(path)
    setup_logging(config.controller.log_level)
    asyncio.run(run_daemon(config, config_path=path))
