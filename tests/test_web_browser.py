"""The web page in a real browser (Debian's Chromium through its chromedriver, driven by Selenium) against
a real daemon and a real OctoPrint virtual printer: sign in, upload with the progress bar, the job's
waiting reason, the print followed live without a reload, the bed cleared, the job in the history; a
viewer finds no control; at 360 px the grid fits and its buttons work. A screenshot of each step is
saved (the paths are printed; FARMCTL_SCREENSHOTS names a folder to keep them in)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, config_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 60.0  # generous: two cores shared with other test runs


def _driver(user_data: Path) -> WebDriver:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (tests/run does)"
        )
    options = webdriver.ChromeOptions()
    # Given explicitly, so Selenium Manager never tries to download a browser or a driver.
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={user_data}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


class Page:
    """One browser tab on the daemon, with screenshots numbered in the order they are taken."""

    def __init__(self, driver: WebDriver, base: str, shots: Path) -> None:
        self.driver, self.base, self.shots = driver, base, shots

    def shot(self, name: str) -> None:
        number = len(list(self.shots.glob("*.png"))) + 1
        assert self.driver.save_screenshot(str(self.shots / f"{number:02d}-{name}.png"))

    def until(self, check: Callable[[WebDriver], object], what: str) -> object:
        return WebDriverWait(self.driver, WAIT_S, poll_frequency=0.1).until(check, f"waited for {what}")

    def one(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    # Read through the page's own DOM in one call: htmx swaps fragments at any moment, and an element
    # Selenium found a moment ago may be gone by the time it asks for its text.
    def text(self, css: str) -> str:
        found = self.driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
        )
        return str(found)

    def attr(self, css: str, name: str) -> str:
        found = self.driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : '';",
            css,
            name,
        )
        return str(found or "")

    def rect(self, css: str) -> dict[str, float]:
        found: dict[str, float] = self.driver.execute_script(
            "return document.querySelector(arguments[0]).getBoundingClientRect().toJSON();", css
        )
        return found

    def click(self, css: str) -> None:
        """Click what matches `css` now, finding it again if a swap replaced it in between."""

        def clicked(driver: WebDriver) -> bool:
            try:
                driver.find_element(By.CSS_SELECTOR, css).click()
            except StaleElementReferenceException:
                return False
            return True

        self.until(clicked, f"a click on {css}")

    def sign_in(self, secret: str) -> None:
        self.driver.get(self.base + "/")
        self.one("input[name=secret]").send_keys(secret)
        self.one("form.signin-form button[type=submit]").click()
        self.until(lambda d: d.find_elements(By.ID, "printers"), "the printer grid after sign-in")

    def buttons(self) -> list[str]:
        return [b.text for b in self.driver.find_elements(By.TAG_NAME, "button") if b.is_displayed()]

    def errors(self) -> list[str]:
        """The console's errors, less the favicon the page does not have."""
        logs: list[dict[str, str]] = self.driver.get_log("browser")  # type: ignore[attr-defined]
        return [e["message"] for e in logs if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = Path(os.environ.get("FARMCTL_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    for path in sorted(folder.glob("*.png")):
        print(f"screenshot: {path}")


def _gcode(path: Path) -> Path:
    """A print of about 20 s whose G-code is ~2.5 MB: the upload takes many progress events, and
    OctoPrint's progress (its place in the file) climbs steadily while it prints."""
    print_file(path, seconds=20.0)
    lines = path.read_text().splitlines()
    padded: list[str] = []
    for line in lines:
        padded.append(line)
        if line.startswith("G4 "):
            padded += ["; padding so the file is long enough to show progress"] * 500
    path.write_text("\n".join(padded) + "\n")
    return path


def _operator_flow(page: Page, token: str, gcode: Path) -> None:
    driver = page.driver
    driver.get(page.base + "/")
    page.shot("sign-in-form")
    page.sign_in(token)
    page.until(lambda d: page.text("#live") == "live", "the event stream to connect")
    page.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-temps .uplot"), "the temperature chart")
    page.shot("signed-in")
    # The page stays this one document from here on: a reload would lose this mark.
    driver.execute_script("window.farmctlTestMark = 'no reload';")

    # Loopback sends 2.5 MB in an instant: the browser's own throttle makes it a workshop Wi-Fi's
    # ~1 MB/s, so the bar is seen part-way.
    driver.execute_cdp_cmd("Network.enable", {})
    throttle = {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 1_000_000}
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", throttle)
    page.one("#upload-file").send_keys(str(gcode))
    page.one("#upload-send").click()
    page.until(lambda d: 0 < int(page.attr("#upload-progress", "value") or 0) < 100, "the bar part-way")
    page.shot("uploading-progress-bar")
    page.until(lambda d: "Queued as job #1" in page.text("#upload-result"), "the upload's answer")
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {**throttle, "uploadThroughput": -1})
    assert page.attr("#upload-progress", "value") == "100"
    assert int(page.attr("#upload-progress", "data-events")) >= 3, "the bar did not move along"
    page.shot("uploaded")

    # A fresh farm knows no bed as clear: the job waits, and says why.
    page.until(lambda d: "p1 awaiting bed clear" in page.text("#job-1 .waiting"), "the waiting reason")
    assert "empty the bed" in page.text("#printer-p1 .why")
    page.shot("job-waiting-reason")

    page.click("#printer-p1 button.primary")  # "Bed is clear"
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "printing", "the print to start")
    seen: set[str] = set()

    in_queue: set[str] = set()

    def progressing(_: WebDriver) -> bool:
        seen.add(page.attr("#printer-p1 progress", "value"))
        in_queue.add(page.attr("#job-1 progress", "value"))
        # Two different figures on the card while printing (pushed, not reloaded), and the job's line in
        # the queue following along.
        return len(seen - {"0", ""}) >= 2 and bool(in_queue - {"0", ""})

    page.until(progressing, "the progress to move live")
    page.shot("printing-live")
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "awaiting_clear", "the print to end")
    assert driver.execute_script("return window.farmctlTestMark;") == "no reload"
    page.shot("finished-awaiting-clear")

    # At phone width: the grid fits without scrolling sideways, and its button is there and works.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 360, "height": 780, "deviceScaleFactor": 2, "mobile": False},
    )
    page.until(lambda d: d.execute_script("return window.innerWidth") == 360, "a 360 px viewport")
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
    )
    wide = driver.execute_script(
        "const w = document.documentElement.clientWidth;"
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1)"
        ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className);"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at 360 px: {wide}"
    driver.execute_script("document.querySelector('#printer-p1').scrollIntoView({block: 'center'});")
    rect = page.rect("#printer-p1 button.primary")
    assert rect["left"] >= 0
    assert rect["right"] <= 360
    assert rect["height"] >= 32, "a button too small for a finger"
    assert page.rect("#printer-p1")["right"] <= 360
    page.shot("phone-360px-awaiting-clear")
    page.click("#printer-p1 button.primary")
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "idle", "the printer to be idle")
    page.until(lambda d: "completed" in page.text("#history-1"), "the job in the history")
    driver.execute_script("document.getElementById('history-section').scrollIntoView();")
    page.shot("phone-360px-history")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert driver.execute_script("return window.farmctlTestMark;") == "no reload"
    # No metering plug here: the energy chart says so instead of drawing zeros.
    page.until(lambda d: "No measured energy" in page.text("#chart-kwh"), "the kWh chart's note")
    assert "p1" in page.text("#history-1")
    assert page.errors() == []


def _viewer_flow(page: Page, token: str) -> None:
    page.sign_in(token)
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "idle", "the grid")
    page.until(lambda d: "completed" in page.text("#history-1"), "the history")
    assert "(viewer)" in page.text("header.top")
    controls = page.driver.find_elements(
        By.CSS_SELECTOR, "[hx-post], [hx-put], [hx-patch], [hx-delete], input[type=file], #upload"
    )
    assert controls == []
    assert page.buttons() == ["Sign out"]
    page.shot("viewer-no-controls")
    assert page.errors() == []


async def _in_browser(
    name: str, tmp_path: Path, base: str, shots: Path, flow: Callable[[Page], None]
) -> None:
    """Run `flow` in a fresh browser in a thread: Selenium blocks, and the daemon needs this loop."""
    driver = await asyncio.to_thread(_driver, tmp_path / f"chromium-{name}")
    page = Page(driver, base, shots)
    try:
        await asyncio.to_thread(flow, page)
    except Exception:
        await asyncio.to_thread(page.shot, f"{name}-failed")
        print(f"{name} failed; the page's message: {page.text('#toast')!r}; console: {page.errors()}")
        raise
    finally:
        await asyncio.to_thread(driver.quit)


async def test_operator_and_viewer_in_a_real_browser(
    tmp_path: Path, octoprint: OctoPrintFactory, shots: Path
) -> None:
    (peer,) = octoprint(1)
    config = config_for(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    gcode = _gcode(tmp_path / "bracket.gcode")
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        base = str(farm.api.base_url).rstrip("/")
        ops, viewer = farm.tokens["ops"], farm.tokens["viewer"]
        await _in_browser("operator", tmp_path, base, shots, lambda page: _operator_flow(page, ops, gcode))
        await _in_browser("viewer", tmp_path, base, shots, lambda page: _viewer_flow(page, viewer))
        job = await farm.job(1)
        assert job["state"] == "completed"


def _operations_flow(page: Page, token: str) -> None:
    driver = page.driver
    page.sign_in(token)
    page.until(lambda d: page.text("#live") == "live", "the event stream to connect")
    page.until(lambda d: page.attr(".jobs li:nth-child(2)", "id") == "job-2", "both jobs in the queue")
    assert page.attr(".jobs li:nth-child(1)", "id") == "job-1"  # equal priority: the older first

    page.click("#job-2 button[title='Move up']")
    page.until(lambda d: page.attr(".jobs li:nth-child(1)", "id") == "job-2", "job 2 moved to the front")
    page.shot("operations-queue-moved-up")

    page.click("#printer-p1 details.maint summary")
    page.one("#printer-p1 details.maint input[name=reason]").send_keys("nozzle swap")
    page.click("#printer-p1 details.maint button[type=submit]")
    page.until(
        lambda d: "out of service: nozzle swap" in page.text("#printer-p1"), "the printer out of service"
    )
    page.shot("operations-out-of-service")
    page.click("#printer-p1 button[hx-delete]")  # Back in service
    page.until(lambda d: page.attr("#printer-p1", "data-maintenance") == "false", "the printer back")

    page.click("#printer-p1 button.primary")  # Bed is clear: the moved job starts first
    page.until(lambda d: page.attr("#printer-p1", "data-job") == "2", "job 2 on the printer")
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "printing", "job 2 printing")
    page.click("#printer-p1 button[hx-post$='/pause']")
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "paused", "the print paused")
    # OctoPrint says Pausing until the head is parked, and takes no resume before Paused.
    page.until(lambda d: page.attr("#printer-p1", "data-detail") == "Paused", "the head parked")
    page.shot("operations-paused")
    page.click("#printer-p1 button[hx-post$='/resume']")
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "printing", "the print resumed")

    page.click("#job-1 button.danger")  # Cancel asks first
    WebDriverWait(driver, WAIT_S).until(lambda d: d.switch_to.alert).accept()
    page.until(lambda d: "cancelled" in page.text("#history-1"), "job 1 cancelled in the history")
    page.until(lambda d: page.attr("#printer-p1", "data-state") == "awaiting_clear", "job 2 finished")
    page.until(lambda d: "completed" in page.text("#history-2"), "job 2 completed in the history")
    page.click("#history-2 button[hx-post$='/reprint']")
    page.until(lambda d: page.attr("#job-3", "data-state") == "queued", "the reprint queued as job 3")
    driver.execute_script("document.getElementById('queue-section').scrollIntoView();")
    page.shot("operations-reprinted")
    assert page.errors() == []


async def test_operator_controls_move_maintenance_pause_cancel_reprint(
    tmp_path: Path, octoprint: OctoPrintFactory, shots: Path
) -> None:
    (peer,) = octoprint(1)
    config = config_for(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.submit(print_file(tmp_path / "short.gcode", seconds=1.0))
        await farm.submit(_gcode(tmp_path / "long.gcode"))
        base = str(farm.api.base_url).rstrip("/")
        ops = farm.tokens["ops"]
        await _in_browser("operations", tmp_path, base, shots, lambda page: _operations_flow(page, ops))
        states = {j["id"]: j["state"] for j in await farm.jobs()}
        assert states == {1: "cancelled", 2: "completed", 3: "queued"}
