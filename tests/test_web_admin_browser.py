"""The Admin view in a real browser (Debian's Chromium through Selenium) against a real daemon: an admin
finds the Admin link, makes a token and sees its secret once, the token works and is refused once
revoked from the page; a member is added and their quota changed and removed; an operator finds no
Admin link and is refused the view. Screenshots as in tests/test_web_browser.py, named `admin-…`."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from tests.farm import TOKENS, running_farm
from tests.helpers import closed_port_printers, config_for
from tests.test_web_browser import Page, _in_browser
from tests.test_web_browser import shots as shots  # the fixture: one screenshot folder for both files


def _status(base: str, secret: str) -> int:
    answer = httpx.get(f"{base}/api/v1/printers", headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    return answer.status_code


def _admin_flow(page: Page, token: str) -> None:
    driver = page.driver
    page.sign_in(token)
    page.shot("admin-signed-in")
    page.click("#admin-link")
    page.until(lambda d: d.find_elements(By.ID, "tokens-section"), "the Admin view")
    assert page.attr("#token-ops", "data-source") == "config"
    assert "edit the file" in page.text("#token-ops")  # no revoke button for farmctl.toml's
    page.shot("admin-view")

    page.one("#add-token input[name=name]").send_keys("kiosk")
    Select(page.one("#add-token select[name=role]")).select_by_value("viewer")
    page.click("#add-token button[type=submit]")
    page.until(lambda d: page.text("#secret-value"), "the new token's secret")
    secret = page.text("#secret-value").strip()
    assert len(secret) >= 43
    assert "shown this once" in page.text("#new-secret")
    assert page.text("#token-kiosk").split()[:2] == ["kiosk", "viewer"]
    page.shot("admin-token-secret-shown-once")
    assert _status(page.base, secret) == 200  # it works at once, as a viewer

    driver.get(page.base + "/admin")  # shown once: not on the next visit
    page.until(lambda d: d.find_elements(By.ID, "token-kiosk"), "the Admin view again")
    assert driver.find_elements(By.ID, "secret-value") == []
    assert secret not in driver.page_source

    page.click("#token-kiosk button.danger")  # Revoke
    page.until(lambda d: "Token kiosk revoked." in page.text("#admin-done"), "the revocation")
    assert driver.find_elements(By.ID, "token-kiosk") == []
    assert _status(page.base, secret) == 401
    page.shot("admin-token-revoked")

    page.one("#add-member input[name=name]").send_keys("dana")
    page.one("#add-member input[name=quota_g]").send_keys("500")
    page.one("#add-member input[name=password]").send_keys("a long workshop passphrase")
    page.click("#add-member button[type=submit]")
    page.until(lambda d: "Member dana added." in page.text("#admin-done"), "the member added")
    quota = page.one("#member-dana input[name=quota_g]")
    assert quota.get_attribute("value") == "500"
    quota.clear()
    quota.send_keys("750")
    page.click("#member-dana button[type=submit]")  # Save
    page.until(lambda d: "Member dana changed." in page.text("#admin-done"), "the quota changed")
    assert page.one("#member-dana input[name=quota_g]").get_attribute("value") == "750"
    page.shot("admin-member-quota-changed")
    page.click("#member-dana button.danger")  # Remove
    page.until(lambda d: "Member dana removed" in page.text("#admin-done"), "the member removed")
    assert page.errors() == []


def _operator_flow(page: Page, token: str) -> None:
    page.sign_in(token)
    assert page.driver.find_elements(By.ID, "admin-link") == []
    assert "Admin" not in page.text("nav.tabs")
    page.shot("admin-operator-has-no-link")
    page.driver.get(page.base + "/admin")
    page.until(lambda d: "needs admin" in d.page_source, "the refusal")
    assert page.driver.find_elements(By.ID, "tokens-section") == []


async def test_admin_makes_and_revokes_a_token_on_the_page_and_an_operator_has_no_admin_view(
    tmp_path: Path, shots: Path
) -> None:
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        base = str(farm.api.base_url).rstrip("/")
        admin, ops = farm.tokens["admin"], farm.tokens["ops"]
        await _in_browser("admin", tmp_path, base, shots, lambda page: _admin_flow(page, admin))
        await _in_browser("admin-operator", tmp_path, base, shots, lambda page: _operator_flow(page, ops))
        members = (await farm.api.get("/api/v1/admin/members", headers=farm.as_role("admin"))).json()
        assert members == {"members": []}
