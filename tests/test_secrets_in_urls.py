"""A user name and password written into a printer or InfluxDB URL never reach the log or the API."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from devices.urls import redact_url, redact_urls_in
from tests.farm import TOKENS, running_farm
from tests.helpers import PrinterSpec, config_for
from tests.peers.base import free_port
from tests.peers.servers import InfluxPeer

SECRET = "s3cr3t-pw"


@pytest.fixture
def log_all(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_a_printer_url_with_a_password_stays_out_of_the_log_and_the_printer_detail(
    tmp_path: Path, log_all: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens: the printer is reported offline with the reason
    printer = PrinterSpec("p1", f"http://farm:{SECRET}@127.0.0.1:{port}/", "k")
    config = config_for(tmp_path, [printer], tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        async with asyncio.timeout(20):
            while not (detail := (await farm.printers())["p1"].get("detail")):
                await asyncio.sleep(0.2)
        as_viewer = await farm.api.get("/api/v1/printers", headers=farm.as_role("viewer"))
    assert f"127.0.0.1:{port}" in detail, detail  # the reason still names the host
    assert SECRET not in as_viewer.text
    assert "offline" in log_all.text
    assert SECRET not in log_all.text


def _influx_sections(url: str, api: str, tmp_path: Path) -> str:
    if api == "v2":
        (tmp_path / "etc/secrets").mkdir(parents=True, exist_ok=True)
        (tmp_path / "etc/secrets/influx.token").write_text("token\n")
        where = 'org = "workshop"\nbucket = "farm"\ntoken_file = "secrets/influx.token"\n'
    else:
        where = 'database = "farm"\n'
    return f'[influx]\napi = "{api}"\nurl = "{url}"\n{where}flush_interval = 0.2\nprinter_interval = 0.3\n'


async def _spooling_reason(tmp_path: Path, sections: str, caplog: pytest.LogCaptureFixture) -> str:
    """Run a farm whose telemetry cannot be written; the log line that says why."""
    printer = PrinterSpec(
        "p1", f"http://127.0.0.1:{free_port()}", "k"
    )  # offline: a printer point all the same
    config = config_for(tmp_path, [printer], tokens=TOKENS, sections=sections)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        async with asyncio.timeout(20):
            while "spooling to disk" not in caplog.text:
                await asyncio.sleep(0.2)
        metrics = await farm.api.get("/metrics", headers=farm.as_role("viewer"))
        printers = await farm.api.get("/api/v1/printers", headers=farm.as_role("viewer"))
    assert SECRET not in metrics.text + printers.text
    return next(r.getMessage() for r in caplog.records if "spooling to disk" in r.getMessage())


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_an_unreachable_influx_url_with_a_password_stays_out_of_the_log(
    tmp_path: Path, log_all: pytest.LogCaptureFixture, api: str
) -> None:
    port = free_port()
    url = f"http://farm:{SECRET}@127.0.0.1:{port}"
    line = await _spooling_reason(tmp_path, _influx_sections(url, api, tmp_path), log_all)
    # v2 sends its token as an Authorization header, which aiohttp will not mix with URL credentials.
    assert ("unreachable" if api == "v1" else "give credentials in the config") in line, line
    assert f"127.0.0.1:{port}" in line, line
    assert SECRET not in log_all.text


async def test_an_influx_url_whose_password_is_refused_stays_out_of_the_log(
    tmp_path: Path, log_all: pytest.LogCaptureFixture
) -> None:
    influx = InfluxPeer(tmp_path / "influxdb", auth=True)
    influx.start_and_wait()
    try:
        # InfluxDB 1.x checks credentials only once an admin exists.
        admin = "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES"
        assert httpx.post(f"{influx.url}/query", data={"q": admin}).status_code == 200
        url = influx.url.replace("http://", f"http://farm:{SECRET}@")
        line = await _spooling_reason(tmp_path, _influx_sections(url, "v1", tmp_path), log_all)
    finally:
        influx.stop()
    assert "refuses our credentials" in line, line
    assert "401" in line
    assert SECRET not in log_all.text


def test_redact_url_hides_user_and_password_and_keeps_the_rest() -> None:
    assert redact_url(f"http://farm:{SECRET}@10.0.0.5:5000/octo/") == "http://***@10.0.0.5:5000/octo/"
    assert redact_url("https://token@influx.lan/") == "https://***@influx.lan/"  # a token as user name
    assert redact_url("http://[::1]:8086") == "http://[::1]:8086"
    assert redact_url("http://farm:pw@[::1]:8086/x?q=a@b") == "http://***@[::1]:8086/x?q=a@b"
    text = f"ClientResponseError: 502, url='http://farm:{SECRET}@printer.lan/api/job' ws://a:{SECRET}@b/"
    assert SECRET not in redact_urls_in(text)
    assert "http://***@printer.lan/api/job" in redact_urls_in(text)
    assert redact_urls_in("mail farm@printer.lan") == "mail farm@printer.lan"
