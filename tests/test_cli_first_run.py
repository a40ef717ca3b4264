"""What a newcomer meets first: help, version, token and config mistakes, the demo's folder, and a
queued job that says why it waits, against the real daemon."""

from __future__ import annotations

import asyncio
import json
import re
from importlib.metadata import version
from pathlib import Path

import pytest

from controller.config import load_config
from controller.demo import MARKER, DemoError, prepare_workdir
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, write_config
from tests.peers.base import free_port
from tests.test_cli_queue import farmctl

COMMANDS = [
    ["run"],
    ["demo"],
    ["printers"],
    ["clear"],
    ["config", "check"],
    ["queue"],
    ["queue", "add"],
    ["queue", "list"],
    ["queue", "show"],
    ["queue", "cancel"],
]


async def test_version() -> None:
    out = await farmctl("--version")
    assert out.code == 0, out
    assert out.out.strip() == f"farmctl {version('farmctl')}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
async def test_every_help_has_an_example_and_the_exit_codes(command: list[str]) -> None:
    out = await farmctl(*command, "--help")
    assert out.code == 0, out
    assert "Example:\n    farmctl " + " ".join(command) in out.out
    assert "Exit codes: 0 ok" in out.out
    assert "78 bad" in out.out
    # Flags read as flags, not as options taking a value.
    assert "<bool>" not in out.out
    if "--json" in out.out:
        assert re.search(r"^\s+--json\s+Print JSON", out.out, re.MULTILINE), out.out


async def test_a_token_file_name_in_farmctl_token_gets_a_hint(tmp_path: Path) -> None:
    token = tmp_path / "admin.token"
    token.write_text("secret-token\n")
    api = f"http://127.0.0.1:{free_port()}"
    out = await farmctl("printers", "--api", api, env={"FARMCTL_TOKEN": str(token)})
    assert out.code == 64, out
    assert f"$FARMCTL_TOKEN holds a file name ({token})" in out.err
    assert f"use --token-file {token} or FARMCTL_TOKEN_FILE={token}" in out.err
    assert "secret-token" not in out.err
    # The same file through $FARMCTL_TOKEN_FILE is taken: the daemon is down, so exit 69, not a token error.
    down = await farmctl("printers", "--api", api, env={"FARMCTL_TOKEN_FILE": str(token)})
    assert down.code == 69, down


async def test_api_without_a_token_says_so() -> None:
    api = f"http://127.0.0.1:{free_port()}"
    out = await farmctl("queue", "--api", api)
    assert out.code == 77, out
    assert f"--api {api} needs a token: --token-file FILE, $FARMCTL_TOKEN_FILE or $FARMCTL_TOKEN" in out.err


async def test_no_config_points_to_config_and_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    out = await farmctl("printers", env={"FARMCTL_CONFIG": str(missing)})
    assert out.code == 78, out
    assert f"{missing}: cannot read config" in out.err
    assert "pass --config FILE or set FARMCTL_CONFIG" in out.err


async def test_config_check_warns_about_an_api_open_to_the_network(tmp_path: Path) -> None:
    path = write_config(tmp_path, [PrinterSpec("p1", "http://127.0.0.1:1", "k")], tokens=TOKENS)
    path.write_text(re.sub(r'listen = "127\.0\.0\.1:', 'listen = "0.0.0.0:', path.read_text()))
    out = await farmctl("config", "check", str(path))
    assert out.code == 0, out
    assert f"{path}: ok: 1 printer, 3 API tokens" in out.out
    assert f"{path}: warning: api.listen 0.0.0.0:" in out.err
    assert "without TLS" in out.err


def test_demo_dir_is_never_emptied_unless_the_demo_made_it(tmp_path: Path) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(DemoError, match="was not made by `farmctl demo`"):
        prepare_workdir(mine)
    assert (mine / "holiday.jpg").read_bytes() == b"\xff\xd8"

    demo = tmp_path / "demo"
    prepare_workdir(demo)  # new: made and marked
    (demo / "state").mkdir()
    prepare_workdir(demo)  # made by an earlier demo: emptied
    assert sorted(p.name for p in demo.iterdir()) == [MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_workdir(empty)
    assert (empty / MARKER).is_file()


async def test_demo_command_refuses_a_foreign_folder(tmp_path: Path) -> None:
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    out = await farmctl("demo", "--dir", str(mine), "--octoprint", "/bin/true")
    assert out.code == 64, out
    assert "is not empty and was not made by `farmctl demo`" in out.err
    assert (mine / "notes.txt").read_text() == "keep me\n"


async def test_queued_job_says_why_it_waits(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    (peer,) = octoprint(1)
    path = write_config(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    config = load_config(path, env={})
    ops = ("--config", str(path), "--token-file", str(tmp_path / "etc/secrets/ops.token"))
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        # A binary upload is refused in the words of the user's file, not of the stored copy.
        blob = tmp_path / "blob.gcode"
        blob.write_bytes(b"G28\n\0\0\0")
        refused = await farmctl("queue", "add", str(blob), *ops)
        assert refused.code == 65, refused
        assert refused.err.strip() == "farmctl: blob.gcode: binary file (NUL bytes), not G-code text"

        # A fresh farm has not seen p1's bed confirmed: the job waits for it and says so.
        (job,) = await farm.submit(print_file(tmp_path / "part.gcode"))
        async with asyncio.timeout(30):
            while (job := await farm.job(job["id"]))["waiting"] != "p1 awaiting bed clear":
                await asyncio.sleep(0.2)
        listing = await farmctl("queue", *ops)
        assert "p1 awaiting bed clear" in listing.out, listing
        shown = await farmctl("queue", "show", str(job["id"]), "--json", *ops)
        assert shown.code == 0, shown
        detail = json.loads(shown.out)
        assert detail["waiting"] == "p1 awaiting bed clear"
        assert [e["state"] for e in detail["events"]] == ["queued"]
        table = await farmctl("queue", "show", str(job["id"]), *ops)
        assert re.search(r"waiting\s+p1 awaiting bed clear", table.out), table
        printers = await farmctl("printers", *ops)
        assert re.search(r"p1 .*0\.4 .*PLA .*to clear", printers.out), printers
        assert (await farmctl("queue", "show", "999999", *ops)).code == 1

        # Cleared, the job starts: no reason any more, and its events say where it went.
        assert (await farm.clear("p1")).status_code == 200
        started = await farm.wait_job(job["id"], {"printing", "completed"})
        assert started["waiting"] is None
        shown = json.loads((await farmctl("queue", "show", str(job["id"]), "--json", *ops)).out)
        assert [e["state"] for e in shown["events"]][:3] == ["queued", "dispatching", "printing"]
        assert shown["events"][1]["printer"] == "p1"
