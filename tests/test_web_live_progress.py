"""The printer card's progress bar and temperatures follow a print from the event stream alone, in
Debian's Chromium against a real daemon and a real OctoPrint virtual printer: no reload, and no request
for the printer list while the stream is open. Screenshots are saved as the browser test's are."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, running_farm
from tests.helpers import PrinterSpec, config_for
from tests.test_web_browser import Page, _gcode, _in_browser

# What the page fetched, by path, from the browser's own Resource Timing record (fetch, XHR and htmx
# alike); the buffer is enlarged so nothing recorded is pushed out.
FETCHED = """
return performance.getEntriesByType("resource")
  .filter(e => e.initiatorType === "fetch" || e.initiatorType === "xmlhttprequest")
  .map(e => new URL(e.name).pathname);
"""


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = Path(os.environ.get("FARMCTL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    for path in sorted(folder.glob("*live-progress-*.png")):
        print(f"screenshot: {path}")


def _live_progress_flow(page: Page, token: str) -> None:
    driver = page.driver
    page.sign_in(token)
    page.until(lambda d: page.text("#live") == "live", "the event stream to connect")
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "awaiting_clear", "the queued job")
    driver.execute_script(
        "window.farmctlTestMark = 'no reload';"
        "performance.setResourceTimingBufferSize(100000); performance.clearResourceTimings();"
    )
    page.click("#printer-p1 button.primary")  # "Bed is clear": the queued job starts
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "printing", "the print to start")

    bars: list[str] = []
    temps: set[str] = set()

    def moving(_: WebDriver) -> bool:
        value = page.attr("#printer-p1 progress", "value")
        if value not in ("", "0") and (not bars or bars[-1] != value):
            bars.append(value)
        temps.add(page.text("#printer-p1 [data-field=temps]"))
        return len(bars) >= 4 and len(temps) >= 3

    page.until(moving, "the progress bar and the temperatures to move")
    page.shot("live-progress-printing")
    assert [float(v) for v in bars] == sorted(float(v) for v in bars), bars
    assert page.text("#live") == "live"
    assert driver.execute_script("return window.farmctlTestMark;") == "no reload"
    fetched: list[str] = driver.execute_script(FETCHED)
    assert "/api/v1/printers" not in fetched, fetched
    # Figures are filled in, not fetched: the card is rendered again only when its state changes.
    cards = [path for path in fetched if path.startswith("/ui/printers")]
    assert len(cards) < len(bars), (cards, bars)

    page.until(lambda d: page.attr("#printer-p1", "data-state") == "awaiting_clear", "the print to end")
    page.shot("live-progress-finished")
    fetched = driver.execute_script(FETCHED)
    assert "/api/v1/printers" not in fetched, fetched
    assert driver.execute_script("return window.farmctlTestMark;") == "no reload"
    # The temperature chart is drawn from the stream's figures.
    assert driver.find_elements("css selector", "#chart-temps .uplot")
    assert page.errors() == []


@pytest.mark.peers
async def test_the_progress_bar_moves_from_the_event_stream_without_polling(
    tmp_path: Path, octoprint: OctoPrintFactory, shots: Path
) -> None:
    (peer,) = octoprint(1)
    config = config_for(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.submit(_gcode(tmp_path / "bracket.gcode"))
        base = str(farm.api.base_url).rstrip("/")
        ops = farm.tokens["ops"]
        await _in_browser("live-progress", tmp_path, base, shots, lambda page: _live_progress_flow(page, ops))
        job = await farm.job(1)
        assert job["state"] == "completed"
