"""The web page at `/` against a real daemon and a real OctoPrint virtual printer: sign-in with a token or
a member's password, the session cookie's flags, sign-out, CSRF refusals, what a viewer is shown, and
every asset served by the daemon itself (nothing named from another host)."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx

from controller.api.tokens import Caller
from controller.config import Config, Role
from controller.web.sessions import FAILURES_PER_MINUTE, IDLE_S, LIFETIME_S, SessionStore
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, config_for

WEB = Path(__file__).resolve().parents[1] / "controller" / "web"
MEMBERS = """[membership]
unknown_owners = "allow"
[[members]]
name = "alice"
password_file = "secrets/alice.pw"
"""
ALICE_PASSWORD = "correct horse battery staple"
URL = re.compile(r"https?://[^\s\"'<>)]+", re.I)
# What changes the farm: a request other than GET, or the upload's file input.
MUTATING = re.compile(r"hx-(post|put|patch|delete)=|<input[^>]*type=\"file\"", re.I)
BUTTON = re.compile(r"<button[^>]*>(.*?)</button>", re.S)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.forms: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]
        if tag == "form":
            self.forms.append(values.get("action") or values.get("hx-post") or values.get("hx-get") or "")


def _refs(page: str) -> _Refs:
    parser = _Refs()
    parser.feed(page)
    return parser


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, f"no {name} field in the page"
    return found[1]


async def _sign_in(browser: httpx.AsyncClient, secret: str, member: str | None = None) -> httpx.Response:
    """What a person does: open /, fill in the form, send it."""
    form = await browser.get("/")
    assert form.status_code == 200
    fields = {"csrf": _field(form.text, "csrf"), "secret": secret}
    if member is not None:
        fields["member"] = member
    return await browser.post("/login", data=fields)


def _config(tmp_path: Path, peer_url: str, api_key: str, sections: str = "") -> Config:
    (tmp_path / "etc" / "secrets").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc" / "secrets" / "alice.pw").write_text(ALICE_PASSWORD + "\n")
    return config_for(tmp_path, [PrinterSpec("p1", peer_url, api_key)], tokens=TOKENS, sections=sections)


async def test_token_sign_in_sets_a_strict_session_and_sign_out_ends_it(
    tmp_path: Path, octoprint: OctoPrintFactory
) -> None:
    (peer,) = octoprint(1)
    config = _config(tmp_path, peer.url, peer.api_key)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        base = farm.api.base_url
        async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
            form = await browser.get("/")
            assert 'action="/login"' in form.text
            assert "printer-p1" not in form.text  # nothing of the farm before sign-in
            login_cookie = form.headers["set-cookie"].lower()  # the form's CSRF value
            assert "httponly" in login_cookie
            assert "samesite=strict" in login_cookie

            refused = await _sign_in(browser, "not-a-token")
            assert refused.status_code == 401
            assert "That token was refused" in refused.text
            assert "farmctl_session" not in browser.cookies

            done = await _sign_in(browser, farm.tokens["ops"])
            assert done.status_code == 303
            (cookie,) = [c for c in done.headers.get_list("set-cookie") if c.startswith("farmctl_session=")]
            flags = [f.strip().lower() for f in cookie.split(";")]
            assert "httponly" in flags
            assert "samesite=strict" in flags
            assert "path=/" in flags
            assert "secure" not in flags  # plain http on loopback: a Secure cookie would never come back
            assert farm.tokens["ops"] not in cookie

            page = await browser.get("/")
            assert page.status_code == 200
            assert 'id="printer-p1"' in page.text
            assert "ops <small>(operator)</small>" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            # The session opens the JSON API too (the page's scripts and its event stream use it).
            assert (await browser.get("/api/v1/printers")).status_code == 200

            csrf = _field(page.text, "csrf")
            assert (await browser.post("/logout", data={"csrf": "wrong"})).status_code == 403
            out = await browser.post("/logout", data={"csrf": csrf})
            assert out.status_code == 303
            again = await browser.get("/")
            assert 'action="/login"' in again.text
            assert (await browser.get("/api/v1/printers")).status_code == 401
            fragment = await browser.get("/ui/queue")
            assert fragment.status_code == 401
            assert fragment.headers["hx-redirect"] == "/"  # htmx shows the sign-in form


async def test_member_signs_in_with_password_as_operator_and_owns_uploads(
    tmp_path: Path, octoprint: OctoPrintFactory
) -> None:
    (peer,) = octoprint(1)
    config = _config(tmp_path, peer.url, peer.api_key, sections=MEMBERS)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser,
    ):
        assert (await _sign_in(browser, "wrong password", member="alice")).status_code == 401
        assert (await _sign_in(browser, ALICE_PASSWORD, member="bob")).status_code == 401
        assert (await _sign_in(browser, ALICE_PASSWORD, member="alice")).status_code == 303
        page = await browser.get("/")
        assert "alice <small>(operator)</small>" in page.text
        csrf = _field(page.text, "csrf")
        gcode = print_file(tmp_path / "part.gcode")
        sent = await browser.post(
            "/api/v1/jobs",
            files={"file": (gcode.name, gcode.read_bytes())},
            headers={"X-CSRF-Token": csrf},
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["jobs"][0]["owner"] == "alice"


async def test_requests_without_the_csrf_token_are_refused(
    tmp_path: Path, octoprint: OctoPrintFactory
) -> None:
    (peer,) = octoprint(1)
    config = _config(tmp_path, peer.url, peer.api_key)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser,
    ):
        await farm.clear_all()
        gcode = print_file(tmp_path / "part.gcode")
        # The sign-in form without its CSRF value (another site's form posting a token) is refused.
        assert (await browser.post("/login", data={"secret": farm.tokens["ops"]})).status_code == 403
        assert (await _sign_in(browser, farm.tokens["ops"])).status_code == 303
        csrf = _field((await browser.get("/")).text, "csrf")
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            upload = await browser.post(
                "/api/v1/jobs", files={"file": (gcode.name, gcode.read_bytes())}, headers=headers
            )
            assert upload.status_code == 403
            assert "X-CSRF-Token" in upload.json()["error"]
        assert await farm.jobs() == []
        # A GET changes nothing and needs no token; the real token lets the same POST through.
        assert (await browser.get("/api/v1/jobs")).status_code == 200
        ok = await browser.post(
            "/api/v1/jobs", files={"file": (gcode.name, gcode.read_bytes())}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 201


async def test_viewer_is_shown_no_mutating_control_and_the_api_refuses_one(
    tmp_path: Path, octoprint: OctoPrintFactory
) -> None:
    (peer,) = octoprint(1)
    config = _config(tmp_path, peer.url, peer.api_key)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        base = farm.api.base_url
        async with httpx.AsyncClient(base_url=base, timeout=30) as op:
            await _sign_in(op, farm.tokens["ops"])
            # A printer waiting for its bed to be cleared, and a queued job: an operator gets buttons.
            await farm.submit(print_file(tmp_path / "part.gcode"))
            async with asyncio.timeout(60):  # a fresh farm knows no bed as clear
                while (await farm.printers())["p1"]["state"] != "awaiting_clear":
                    await asyncio.sleep(0.2)
            operator_page = (await op.get("/")).text
            assert MUTATING.search(operator_page), "the operator's page shows no control: the check is blind"
            assert 'hx-post="/api/v1/printers/p1/clear"' in operator_page
            assert {"Bed is clear", "Cancel", "Queue it"} <= set(BUTTON.findall(operator_page))
        async with httpx.AsyncClient(base_url=base, timeout=30) as viewer:
            await _sign_in(viewer, farm.tokens["viewer"])
            page = await viewer.get("/")
            assert "viewer <small>(viewer)</small>" in page.text
            assert 'id="printer-p1"' in page.text
            assert "awaiting bed clear" in page.text  # the job's waiting reason is shown to everyone
            for text in [page.text] + [(await viewer.get(u)).text for u in ("/ui/printers", "/ui/queue")]:
                assert not MUTATING.search(text), MUTATING.search(text)
                assert set(BUTTON.findall(text)) <= {"Sign out"}
                assert _refs(text).forms in ([], ["/logout"], ["/ui/usage"], ["/logout", "/ui/usage"])
            csrf = _field(page.text, "csrf")
            refused = await viewer.post("/api/v1/printers/p1/clear", headers={"X-CSRF-Token": csrf})
            assert refused.status_code == 403
            assert "needs operator" in refused.json()["error"]


async def test_every_asset_comes_from_the_daemon_and_nothing_names_another_host(
    tmp_path: Path, octoprint: OctoPrintFactory
) -> None:
    (peer,) = octoprint(1)
    config = _config(tmp_path, peer.url, peer.api_key)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as stranger,
    ):
        await _sign_in(browser, farm.tokens["ops"])
        page = (await browser.get("/")).text
        refs = [r for r in _refs(page).refs if not r.startswith("/ui/")]
        assert {r for r in refs if r.startswith("/static/")} >= {
            "/static/htmx.min.js",
            "/static/uPlot.iife.min.js",
            "/static/farm.js",
            "/static/farm.css",
        }
        for ref in refs:
            assert ref.startswith("/"), ref
            assert not ref.startswith("//"), ref
            answer = await stranger.get(ref)  # the sign-in page needs them too: served without a session
            assert answer.status_code == 200, ref
            assert answer.content
    files = sorted(p for p in (WEB / "templates").iterdir()) + sorted((WEB / "static").iterdir())
    assert any(p.name == "htmx.LICENSE" for p in files)
    assert any(p.name == "uPlot.LICENSE" for p in files)
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".js":
            # A library's leading `/*! … */` banner credits its home page: text, never loaded.
            text = re.sub(r"\A/\*!.*?\*/", "", text, flags=re.S)
        if path.suffix in (".md",) or path.name.endswith("LICENSE"):
            continue
        assert not URL.search(text), f"{path.name} names {URL.search(text)}"


async def test_repeated_wrong_sign_ins_from_one_address_wait(
    tmp_path: Path, octoprint: OctoPrintFactory
) -> None:
    (peer,) = octoprint(1)
    config = _config(tmp_path, peer.url, peer.api_key)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser,
    ):
        for _ in range(FAILURES_PER_MINUTE):
            assert (await _sign_in(browser, "guess")).status_code == 401
        blocked = await _sign_in(browser, farm.tokens["ops"])  # even the right one, for now
        assert blocked.status_code == 429
        assert "wait a minute" in blocked.text


async def test_usage_csv_download_and_a_bad_month(tmp_path: Path, octoprint: OctoPrintFactory) -> None:
    (peer,) = octoprint(1)
    config = _config(tmp_path, peer.url, peer.api_key)
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        httpx.AsyncClient(base_url=farm.api.base_url, timeout=30) as browser,
    ):
        await _sign_in(browser, farm.tokens["viewer"])
        csv = await browser.get("/ui/usage.csv", params={"month": "2026-11"})
        assert csv.status_code == 200
        assert csv.headers["content-disposition"] == 'attachment; filename="usage-2026-11.csv"'
        assert csv.text.splitlines()[0] == (
            "owner,jobs,print_hours,filament_g,energy_kwh,cost,co2_g,waste_g,waste_kwh,currency"
        )
        bad = await browser.get("/ui/usage", params={"month": "2026-13"})
        assert bad.status_code == 422
        assert "YYYY-MM" in bad.json()["error"]


def test_sessions_expire_when_unused_and_stay_bounded() -> None:
    now = [1000.0]
    store = SessionStore(clock=lambda: now[0], limit=3)
    first = store.open(Caller("ops", Role.OPERATOR), "token")
    now[0] += IDLE_S - 1
    assert store.get(first.id) is first  # used in time: moved on
    now[0] += IDLE_S - 1
    assert store.get(first.id) is first
    now[0] += IDLE_S
    assert store.get(first.id) is None
    opened = now[0]
    kept = store.open(Caller("a", Role.VIEWER), "token")
    while store.get(kept.id) is not None:  # used every hour, it still ends after LIFETIME_S
        now[0] += 3600
    assert LIFETIME_S <= now[0] - opened < LIFETIME_S + 3600
    for name in "bcdef":
        store.open(Caller(name, Role.VIEWER), "token")
    assert len(store) == 3
