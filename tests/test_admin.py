"""The admin page and endpoints: login cookie, bearer for scripts, CSRF, DLQ ids with `/`
(issue 8 point 8); the page itself in headless Chromium against real gunicorn."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from app import create_app, runtime
from tests.servers import ROOT, Gunicorn, settings_env
from tests.support import dead_letters

TOKEN = "admin-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SLASH_ID = "shirts/blue/xl 50%"  # a SKU-like Standard Webhooks id: `/`, space and `%`


@pytest.fixture
def settings(make_settings, sandbox):
    return make_settings(admin_token=TOKEN, personyze_base_url=sandbox.url)


@pytest.fixture
def rt(settings):
    return runtime.build(settings)


def login(client) -> str:
    resp = client.post("/admin/login", data={"token": TOKEN})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/admin")
    return resp.headers["Set-Cookie"]


def csrf_of(client) -> str:
    html = client.get("/admin").get_data(as_text=True)
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_page_redirects_to_login_and_the_cookie_is_strict(rt):
    client = create_app(rt.settings).test_client()
    resp = client.get("/admin")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/admin/login")
    assert client.get("/admin/status").status_code == 401  # JSON: no redirect for scripts
    assert client.post("/admin/login", data={"token": "wrong-token-0123456789"}).status_code == 401
    cookie = login(client)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie and TOKEN not in cookie
    page = client.get("/admin")
    assert page.status_code == 200 and "Store <code>default</code>" in page.get_data(as_text=True)
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    secure = (
        create_app(rt.settings)
        .test_client()
        .post("/admin/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"})
    )
    assert "Secure" in secure.headers["Set-Cookie"]
    forged = create_app(rt.settings).test_client()
    forged.set_cookie("psync_admin", "9999999999.deadbeef", path="/admin")
    assert forged.get("/admin").status_code == 303


def test_cookie_posts_need_the_csrf_token_bearer_does_not(rt, sandbox):
    dead_letters(rt, sandbox, "a1", "a2")
    client = create_app(rt.settings).test_client()
    login(client)
    assert client.post("/admin/dlq/default/a1/purge").status_code == 403
    assert client.post("/admin/dlq/default/a1/purge", data={"csrf": "0" * 64}).status_code == 403
    token = csrf_of(client)
    cross = client.post(
        "/admin/dlq/default/a1/purge",
        data={"csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert set(rt.state.dlq_list("default")) == {"a1", "a2"}  # nothing happened
    ok = client.post("/admin/dlq/default/a1/purge", data={"csrf": token})
    assert ok.status_code == 303 and "purged+1" in ok.headers["Location"]
    scripted = create_app(rt.settings).test_client()
    assert scripted.post("/admin/dlq/default/a2/replay", headers=BEARER).json == {
        "replayed": ["a2"],
        "superseded": [],
    }
    assert rt.state.dlq_list("default") == {}


def test_replay_and_purge_one_id_with_a_slash(rt, sandbox):
    dead_letters(rt, sandbox, SLASH_ID, "shirts")
    client = create_app(rt.settings).test_client()
    encoded = quote(SLASH_ID, safe="")
    assert "%2F" in encoded
    resp = client.post(f"/admin/dlq/default/{encoded}/replay", headers=BEARER)
    assert resp.status_code == 200 and resp.json == {"replayed": [SLASH_ID], "superseded": []}
    assert set(rt.state.dlq_list("default")) == {"shirts"}  # only that one
    assert rt.state.ledger("default")["pending"] == 1
    missing = client.post(f"/admin/dlq/default/{encoded}/replay", headers=BEARER)
    assert missing.status_code == 404
    dead_letters(rt, sandbox, SLASH_ID)
    resp = client.post(f"/admin/dlq/default/{encoded}/purge", headers=BEARER)
    assert resp.json == {"purged": [SLASH_ID]}
    assert set(rt.state.dlq_list("default")) == {"shirts"}


def _chromium() -> str | None:
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"


def test_admin_page_in_headless_chromium(rt, settings, sandbox):
    chromium = _chromium()
    if chromium is None:
        pytest.skip(
            "no chromium on this machine (Debian package `chromium`; .ci/run installs it "
            "where apt-get works)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    dead_letters(rt, sandbox, SLASH_ID, "other-1")
    web = Gunicorn(settings_env(settings), workers=1, threads=2)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(web.url + "/admin")
            assert page.url.endswith("/admin/login")
            page.fill("#token", "not-the-token-0123456789")
            page.click("button[type=submit]")
            assert page.locator("[role=alert]").inner_text() == "Wrong token."
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_url(web.url + "/admin")
            cookie = next(c for c in page.context.cookies() if c["name"] == "psync_admin")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            store = page.locator("#store-default")
            assert store.locator("[data-k=dlq]").inner_text() == "2"
            assert store.locator("[data-k=balance]").inner_text() == "0"
            assert store.locator("[data-k=pause]").inner_text() == "writing"
            row = store.locator(f'tr[data-product="{SLASH_ID}"]')
            assert "PersonyzeBadRequest" in row.locator(".errors").inner_text()
            assert store.locator("table.recent").inner_text().count("dead") == 2
            page.screenshot(path=str(ARTIFACTS / "admin-before.png"), full_page=True)
            row.get_by_role("button", name=f"Replay {SLASH_ID}").click()
            page.wait_for_url("**/admin?note=*")
            assert page.locator("[role=status]").inner_text() == (
                "default: replayed 1, superseded 0"
            )
            assert store.locator("[data-k=dlq]").inner_text() == "1"
            assert store.locator(f'tr[data-product="{SLASH_ID}"]').count() == 0
            page.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)
            print(f"screenshot: {ARTIFACTS / 'admin.png'}")
            browser.close()
    finally:
        web.stop()
    assert set(rt.state.dlq_list("default")) == {"other-1"}
    assert rt.state.ledger("default")["pending"] == 1  # replayed: pending again
    assert Path(ARTIFACTS / "admin.png").stat().st_size > 10_000
