"""/docs works on a Pi without internet (every asset it references comes from the daemon), and it and
/openapi.json need a token unless `[api] docs` opens them or turns them off."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from controller.api.docs import COOKIE, SESSION_S, DocsSessions
from controller.config import Config, load_config
from tests.farm import TOKENS, running_farm
from tests.helpers import write_config

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what browsers send


class _References(HTMLParser):
    """Collects the src and href attributes of a page and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    urls = list(parser.urls)
    for script in parser.scripts:
        # Swagger UI's inline set-up names the OpenAPI document (`url: '/openapi.json'`) and the
        # OAuth2 redirect page (`window.location.origin + '/docs/oauth2-redirect'`).
        urls += re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", script)
        urls += re.findall(r"""location\.origin\s*\+\s*['"]([^'"]+)['"]""", script)
    return urls


def _config(tmp_path: Path, docs: str | None = None) -> Config:
    env = {"FARMCTL_API__DOCS": docs} if docs else {}
    return load_config(write_config(tmp_path, [], tokens=TOKENS), env=env)


async def _sign_in(browser: httpx.AsyncClient, token: str) -> httpx.Response:
    """What the sign-in form on /docs sends: the token, once, in a POST body."""
    return await browser.post("/docs/sign-in", data={"token": token})


async def test_docs_load_every_asset_from_the_daemon(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        # A browser: no Authorization header, only what the sign-in form gives it.
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30, headers={"Accept": HTML}) as browser,
        httpx.AsyncClient(timeout=30) as signed_out,
    ):
        form = await browser.get("/docs")
        assert form.status_code == 401
        assert form.headers["content-type"].startswith("text/html")
        assert 'action="/docs/sign-in"' in form.text
        assert "http://" not in form.text
        assert "https://" not in form.text
        signed_in = await _sign_in(browser, farm.tokens["viewer"])
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/docs"
        resp = await browser.get("/docs")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("text/html")
        page = resp.text
        # No absolute URL anywhere on the page, not even in its inline script.
        assert "http://" not in page
        assert "https://" not in page
        urls = _references(page)
        # Stylesheet, icon, script, OpenAPI document: a parser that found fewer would prove nothing.
        assert len(urls) >= 4, urls
        daemon = urlsplit(str(farm.api.base_url)).netloc
        for url in urls:
            assert not url.startswith("//"), f"/docs references another host: {url}"
            absolute = urljoin(f"{farm.api.base_url}/docs", url)
            assert urlsplit(absolute).netloc == daemon, f"/docs references another host: {url}"
            asset = await browser.get(absolute)
            assert asset.status_code == 200, f"{url}: {asset.status_code}"
            assert asset.content, f"{url} is empty"
            # Signed out, none of them is served.
            assert (await signed_out.get(absolute)).status_code == 401, url
        assert "/openapi.json" in urls
        assert any(u.endswith(".js") for u in urls)
        assert any(u.endswith(".css") for u in urls)
        # ReDoc always loads its maker's logo from the internet, so the daemon does not offer it.
        assert (await browser.get("/redoc")).status_code == 404


async def test_docs_and_schema_need_a_token_and_the_sign_in_opens_nothing_else(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as anonymous,
    ):
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            resp = await anonymous.get(path)
            assert resp.status_code == 401, path
            assert "sign in on /docs" in resp.json()["error"], path
        # curl and scripts: the bearer header opens the docs and the schema, any role.
        viewer = farm.as_role("viewer")
        assert (await anonymous.get("/openapi.json", headers=viewer)).json()["info"]["title"] == "farmctl"
        assert (await anonymous.get("/docs", headers=viewer)).status_code == 200
        bad = {"Authorization": "Bearer not-a-token"}
        assert (await anonymous.get("/openapi.json", headers=bad)).status_code == 401

        refused = await _sign_in(anonymous, "not-a-token")
        assert refused.status_code == 401
        assert "refused" in refused.text
        assert "set-cookie" not in refused.headers
        signed_in = await _sign_in(anonymous, farm.tokens["viewer"])
        cookie = signed_in.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=strict", "Max-Age=3600", "Path=/"):
            assert attribute.lower() in cookie.lower(), cookie
        assert farm.tokens["viewer"] not in cookie
        assert (await anonymous.get("/openapi.json")).status_code == 200
        # The sign-in is for the docs only: the API still wants the token itself.
        api = await anonymous.get("/api/v1/jobs")
        assert api.status_code == 401
        # A forged or altered cookie opens nothing.
        value = anonymous.cookies[COOKIE]
        for forged in (value[:-1] + ("0" if value[-1] != "0" else "1"), "9999999999.00", "x"):
            anonymous.cookies.set(COOKIE, forged)
            assert (await anonymous.get("/openapi.json")).status_code == 401, forged


def test_a_docs_sign_in_expires() -> None:
    sessions = DocsSessions()
    now = 1_000_000.0
    cookie = sessions.issue(now)
    assert sessions.valid(cookie, now + SESSION_S - 1)
    assert not sessions.valid(cookie, now + SESSION_S)
    assert not DocsSessions().valid(cookie, now)  # another start of the daemon signed everyone out


@pytest.mark.parametrize("mode", ["open", "off"])
async def test_docs_open_or_off_as_configured(tmp_path: Path, mode: str) -> None:
    config = _config(tmp_path, mode)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as anonymous,
    ):
        want = 200 if mode == "open" else 404
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
            assert (await anonymous.get(path)).status_code == want, path
            assert (await anonymous.get(path, headers=farm.as_role("admin"))).status_code == want, path
        assert (await _sign_in(anonymous, farm.tokens["viewer"])).status_code in (404, 405)
        # Open docs open nothing else.
        assert (await anonymous.get("/api/v1/printers")).status_code == 401
