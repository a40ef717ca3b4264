"""/docs works on a Pi without internet: every asset it references comes from the daemon."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from tests.farm import TOKENS, running_farm
from tests.helpers import config_for


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


async def test_docs_load_every_asset_from_the_daemon(tmp_path: Path) -> None:
    config = config_for(tmp_path, [], tokens=TOKENS)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        # No token: the docs are open, like /healthz.
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser,
    ):
        resp = await browser.get("/docs")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("text/html")
        page = resp.text
        # No absolute URL anywhere on the page, not even in its inline script.
        assert "http://" not in page
        assert "https://" not in page
        urls = _references(page)
        # Stylesheet, icon, script, OpenAPI document, OAuth2 redirect page: a parser that found fewer
        # would prove nothing.
        assert len(urls) >= 5, urls
        daemon = urlsplit(str(farm.api.base_url)).netloc
        for url in urls:
            assert not url.startswith("//"), f"/docs references another host: {url}"
            absolute = urljoin(f"{farm.api.base_url}/docs", url)
            assert urlsplit(absolute).netloc == daemon, f"/docs references another host: {url}"
            asset = await browser.get(absolute)
            assert asset.status_code == 200, f"{url}: {asset.status_code}"
            assert asset.content, f"{url} is empty"
        assert "/openapi.json" in urls
        assert any(u.endswith(".js") for u in urls)
        assert any(u.endswith(".css") for u in urls)
        # ReDoc always loads its maker's logo from the internet, so the daemon does not offer it.
        assert (await browser.get("/redoc")).status_code == 404
