"""`personyze-sync connect` and the scheduler's subscription repair, against fake store APIs
that keep subscription state (tests/fake_store_hooks.py) over real HTTP."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from app import runtime
from app.core.state import repairs_of
from app.platforms.subscriptions import Shopify, connect_store, ensure
from tests.constants import (
    HOOKS_BC_HASH,
    HOOKS_BC_TOKEN,
    HOOKS_SHOPIFY_TOKEN,
    HOOKS_WOO_KEY,
    HOOKS_WOO_RO_KEY,
    HOOKS_WOO_RO_SECRET,
    HOOKS_WOO_SECRET,
    WOO_SECRET,
)
from tests.fake_store_hooks import FakeBigCommerceHooks, FakeShopifyHooks, FakeWooHooks
from tests.servers import CLI, ROOT, eventually, settings_env
from workers.subscriptions import check_store

BASE = "https://sync.example.com"
SHOPIFY_TOPICS = ("PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE")
WOO_TOPICS = ("product.created", "product.updated", "product.deleted", "product.restored")
BC_SCOPES = ("store/product/created", "store/product/updated", "store/product/deleted")
CREDENTIALS = (
    HOOKS_SHOPIFY_TOKEN,
    HOOKS_WOO_KEY,
    HOOKS_WOO_SECRET,
    HOOKS_BC_TOKEN,
    WOO_SECRET,
    HOOKS_WOO_RO_SECRET,
)


@pytest.fixture
def fakes():
    s, w, b = FakeShopifyHooks(), FakeWooHooks(), FakeBigCommerceHooks()
    # other apps' and other URLs' subscriptions: never to be touched
    s.add("PRODUCTS_UPDATE", "https://other-app.example.com/hooks")
    s.add("ORDERS_CREATE", f"{BASE}/webhooks/shopify")
    w.add("product.updated", "https://other-app.example.com/woo", status="disabled")
    w.add("order.created", "https://erp.example.com/orders", status="paused")
    b.add(
        "store/product/updated",
        "https://other-app.example.com/bc",
        active=False,
        client_id="someone-else",
    )
    yield s, w, b
    for f in (s, w, b):
        f.stop()


@pytest.fixture
def connected_settings(make_settings, fakes):
    s, w, b = fakes

    def make(**overrides):
        env = dict(
            shopify_admin_token=HOOKS_SHOPIFY_TOKEN,
            shopify_admin_api_url=s.url,
            woocommerce_url=w.url,
            woocommerce_consumer_key=HOOKS_WOO_KEY,
            woocommerce_consumer_secret=HOOKS_WOO_SECRET,
            bigcommerce_store_hash=HOOKS_BC_HASH,
            bigcommerce_access_token=HOOKS_BC_TOKEN,
            bigcommerce_client_secret="bc-client-secret",
            bigcommerce_api_url=b.url,
            reconcile_interval_seconds=0,
        )
        env.update(overrides)
        return make_settings(**env)

    return make


def run_cli(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "connect", *args],
        env=dict(settings_env(settings), **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ours(fake, url: str) -> dict:
    """Our subscriptions in a fake: topic -> (id, state)."""
    if isinstance(fake, FakeShopifyHooks):
        return {
            v["topic"]: (k, "active")
            for k, v in fake.subs.items()
            if v["uri"] == url and v["topic"] in SHOPIFY_TOPICS
        }
    if isinstance(fake, FakeWooHooks):
        return {
            h["topic"]: (i, h["status"]) for i, h in fake.hooks.items() if h["delivery_url"] == url
        }
    return {
        h["scope"]: (i, h["is_active"]) for i, h in fake.hooks.items() if h["destination"] == url
    }


def foreign(fakes) -> list:
    s, w, b = fakes
    return [
        copy.deepcopy(
            {
                k: v
                for k, v in s.subs.items()
                if v["topic"] == "ORDERS_CREATE" or "other-app" in v["uri"]
            }
        ),
        copy.deepcopy({k: v for k, v in w.hooks.items() if "/webhooks/" not in v["delivery_url"]}),
        copy.deepcopy({k: v for k, v in b.hooks.items() if "/webhooks/" not in v["destination"]}),
    ]


def test_connect_creates_every_subscription_then_changes_nothing(connected_settings, fakes):
    s, w, b = fakes
    settings = connected_settings()
    before = foreign(fakes)
    p = run_cli(settings, "--url", BASE + "/")
    assert p.returncode == 0, p.stderr
    assert set(ours(s, f"{BASE}/webhooks/shopify")) == set(SHOPIFY_TOPICS)
    assert {t: st for t, (_, st) in ours(w, f"{BASE}/webhooks/woocommerce").items()} == {
        t: "active" for t in WOO_TOPICS
    }
    assert {t: st for t, (_, st) in ours(b, f"{BASE}/webhooks/bigcommerce").items()} == {
        t: True for t in BC_SCOPES
    }
    # WooCommerce signs with the first configured secret, the one our receiver checks
    assert {h["secret"] for h in w.hooks.values() if "/webhooks/" in h["delivery_url"]} == {
        WOO_SECRET
    }
    assert "created PRODUCTS_CREATE, PRODUCTS_UPDATE, PRODUCTS_DELETE" in p.stdout
    assert "created product.created, product.updated, product.deleted, product.restored" in p.stdout
    assert foreign(fakes) == before

    for f in fakes:
        f.requests.clear()
    s.mutations.clear()
    again = run_cli(settings, "--url", BASE)
    assert again.returncode == 0, again.stderr
    assert [f.writes() for f in fakes] == [[], [], []]  # idempotent: no POST, no PUT
    assert again.stdout.count(": healthy ") == 3 and ": created" not in again.stdout
    assert foreign(fakes) == before


def test_disabled_and_removed_subscriptions_are_repaired_in_place(connected_settings, fakes):
    s, w, b = fakes
    settings = connected_settings()
    assert run_cli(settings, "--url", BASE).returncode == 0
    su, wu, bu = (f"{BASE}/webhooks/{n}" for n in ("shopify", "woocommerce", "bigcommerce"))
    # what the platforms do after failed deliveries
    gone = ours(s, su)["PRODUCTS_UPDATE"][0]
    del s.subs[gone]
    wid = ours(w, wu)["product.updated"][0]
    w.hooks[wid]["status"] = "disabled"
    w.hooks[wid]["secret"] = "an-old-secret"
    hid = ours(b, bu)["store/product/deleted"][0]
    b.hooks[hid]["is_active"] = False
    counts = (len(s.subs), len(w.hooks), len(b.hooks))
    before = foreign(fakes)
    for f in fakes:
        f.requests.clear()
    s.mutations.clear()

    check = run_cli(settings, "--check", "--url", BASE)
    assert check.returncode == 1
    assert "missing PRODUCTS_UPDATE" in check.stdout
    assert "disabled product.updated" in check.stdout
    assert "disabled store/product/deleted" in check.stdout
    assert [f.writes() for f in fakes] == [[], [], []]  # --check only reports

    p = run_cli(settings, "--url", BASE)
    assert p.returncode == 0, p.stderr
    assert "created PRODUCTS_UPDATE" in p.stdout
    assert "re-enabled product.updated" in p.stdout
    assert "re-enabled store/product/deleted" in p.stdout
    # re-enabled in place (same id, PUT), Shopify's re-created (POST), nothing deleted
    assert w.hooks[wid]["status"] == "active" and w.hooks[wid]["secret"] == WOO_SECRET
    assert b.hooks[hid]["is_active"] is True
    assert ("PUT", f"/wp-json/wc/v3/webhooks/{wid}") in w.writes()
    assert ("PUT", f"/stores/{HOOKS_BC_HASH}/v3/hooks/{hid}") in b.writes()
    assert [m for m, _ in w.writes() + b.writes()] == ["PUT", "PUT"]
    assert (len(s.subs), len(w.hooks), len(b.hooks)) == (counts[0] + 1, *counts[1:])
    assert "PRODUCTS_UPDATE" in ours(s, su)
    assert foreign(fakes) == before
    assert run_cli(settings, "--check", "--url", BASE).returncode == 0


def test_paused_woocommerce_webhook_is_left_to_the_admin(connected_settings, fakes):
    _, w, _ = fakes
    settings = connected_settings()
    wu = f"{BASE}/webhooks/woocommerce"
    wid = w.add("product.deleted", wu, status="paused", secret=WOO_SECRET)
    p = run_cli(settings, "--url", BASE)
    assert p.returncode == 0, p.stderr
    assert "paused by an admin (left as is) product.deleted" in p.stdout
    assert w.hooks[wid]["status"] == "paused"
    assert [h["topic"] for h in w.hooks.values() if h["delivery_url"] == wu].count(
        "product.deleted"
    ) == 1  # no second one beside it
    assert run_cli(settings, "--check", "--url", BASE).returncode == 1


def assert_one_clean_line(p: subprocess.CompletedProcess, platform: str, *needles: str):
    lines = [ln for ln in p.stderr.splitlines() if f" {platform}: error:" in ln]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    out = p.stdout + p.stderr
    assert "Traceback" not in out
    for secret in CREDENTIALS:
        assert secret not in out


def test_store_api_errors_are_one_line_without_credentials(connected_settings, fakes):
    s, w, b = fakes
    settings = connected_settings(
        shopify_admin_token="shpat_wrong_token_123",
        woocommerce_consumer_key="ck_wrong_key_123",
        bigcommerce_access_token="bc_wrong_token_123",
    )
    p = run_cli(settings, "--url", BASE)
    assert p.returncode == 1
    assert_one_clean_line(p, "shopify", "Shopify refused the credentials (401)")
    assert_one_clean_line(
        p,
        "woocommerce",
        "WooCommerce refused the credentials (401 woocommerce_rest_authentication_error)",
    )
    assert_one_clean_line(p, "bigcommerce", "BigCommerce refused the credentials (401")
    for wrong in ("shpat_wrong_token_123", "ck_wrong_key_123", "bc_wrong_token_123"):
        assert wrong not in p.stdout + p.stderr
    assert [f.writes() for f in fakes] == [[], [], []]

    # a read-only WooCommerce key lists but cannot create; 5xx; an unreachable API
    s.force = 503
    closed = FakeBigCommerceHooks()
    closed.stop()
    settings = connected_settings(
        woocommerce_consumer_key=HOOKS_WOO_RO_KEY,
        woocommerce_consumer_secret=HOOKS_WOO_RO_SECRET,
        bigcommerce_api_url=closed.url,
    )
    p = run_cli(settings, "--url", BASE)
    assert p.returncode == 1
    assert_one_clean_line(p, "shopify", "Shopify API answered 503")
    assert_one_clean_line(p, "woocommerce", "(401 woocommerce_rest_authentication_error)")
    assert_one_clean_line(p, "bigcommerce", "BigCommerce API unreachable: ConnectionError")
    assert HOOKS_WOO_RO_SECRET not in p.stdout + p.stderr


def test_connect_without_url_or_credentials_says_what_to_set(connected_settings, fakes):
    p = run_cli(connected_settings(), "--check")
    assert p.returncode == 2 and "pass --url" in p.stderr
    p = run_cli(connected_settings(), "--url", "http://sync.example.com")
    assert p.returncode == 2 and "must be https" in p.stderr
    p = run_cli(connected_settings(shopify_admin_token=None), "--url", BASE, "--check")
    assert "shopify: set SHOPIFY_ADMIN_TOKEN" in p.stderr and p.returncode == 2


def test_bigcommerce_url_names_the_store_with_a_stores_file(make_settings, fakes, tmp_path):
    _, _, b = fakes
    stores = tmp_path / "stores.yaml"
    stores.write_text(
        json.dumps(
            {
                "stores": [
                    {
                        "id": "eu",
                        "bigcommerce_store_hash": HOOKS_BC_HASH,
                        "bigcommerce_access_token": HOOKS_BC_TOKEN,
                        "bigcommerce_webhook_secrets": ["x"],
                        "bigcommerce_api_url": b.url,
                    },
                    {"id": "us", "standard_webhook_secrets": ["whsec_" + "A" * 32]},
                ]
            }
        )
    )
    settings = make_settings(stores_file=str(stores))
    outcomes = connect_store(settings, settings.stores["eu"], BASE)
    assert [o.url for o in outcomes] == [f"{BASE}/webhooks/bigcommerce/eu"]
    assert set(ours(b, f"{BASE}/webhooks/bigcommerce/eu")) == set(BC_SCOPES)


def test_shopify_pages_and_reads_the_older_callback_url(connected_settings, fakes):
    s, _, _ = fakes
    s.page_size = 1
    s.legacy_nodes = True  # nodes carry only endpoint.callbackUrl
    url = f"{BASE}/webhooks/shopify"
    for t in SHOPIFY_TOPICS:
        s.add(t, url)
    store = connected_settings().stores["default"]
    found = ensure(Shopify(store, url))
    assert [x.topic for x in found.healthy] == list(SHOPIFY_TOPICS) and not found.create
    assert not s.writes()
    assert len(s.requests) == 4  # pages of one: our three and another app's


def test_failed_repair_is_reported_to_sentry_without_credentials(
    connected_settings, fakes, receiver
):
    """Through the production Sentry setup (init_sentry) to a local envelope receiver."""
    import sentry_sdk

    from app.observability import init_sentry

    settings = connected_settings(
        bigcommerce_access_token="bc_wrong_token_123", sentry_dsn=receiver.dsn
    )
    assert init_sentry(settings, "scheduler")
    rt = runtime.build(settings)
    outcomes = check_store(rt, "default", BASE)
    sentry_sdk.flush(5)
    assert {o.platform: bool(o.error) for o in outcomes} == {
        "shopify": False,
        "woocommerce": False,
        "bigcommerce": True,
    }
    events = receiver.events()
    text = json.dumps(events)
    assert len(events) == 1 and "bigcommerce" in text and "refused the credentials" in text
    for raw in receiver.raw:
        assert b"bc_wrong_token_123" not in raw and HOOKS_SHOPIFY_TOKEN.encode() not in raw
    assert repairs_of(rt.state.stats("default")) == {"shopify": 3, "woocommerce": 4}


def test_scheduler_process_repairs_once_per_interval(connected_settings, fakes, client, tmp_path):
    """Two real `personyze-sync scheduler` processes and the URL `connect` recorded: the
    subscriptions the platforms turned off come back, once, and /metrics counts them."""
    s, w, b = fakes
    settings = connected_settings(subscription_check_seconds=3600)
    assert run_cli(settings, "--url", BASE).returncode == 0  # records the URL in Redis
    su, wu, bu = (f"{BASE}/webhooks/{n}" for n in ("shopify", "woocommerce", "bigcommerce"))
    del s.subs[ours(s, su)["PRODUCTS_DELETE"][0]]
    wid = ours(w, wu)["product.created"][0]
    w.hooks[wid]["status"] = "disabled"
    hid = ours(b, bu)["store/product/updated"][0]
    b.hooks[hid]["is_active"] = False
    before = foreign(fakes)
    for f in fakes:
        f.requests.clear()
    s.mutations.clear()

    env = dict(settings_env(settings), SUBSCRIPTION_CHECK_SECONDS="3600", LOG_LEVEL="DEBUG")
    env.pop("PUBLIC_URL", None)
    logs = [tmp_path / f"scheduler{i}.log" for i in range(2)]
    procs = [
        subprocess.Popen(
            [CLI, "scheduler"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            start_new_session=True,
        )
        for log in logs
    ]

    def both_passed() -> bool:
        text = sorted(log.read_text() for log in logs)
        return any("subscriptions_repaired" in t for t in text) and any(
            "subscriptions_done_elsewhere" in t for t in text
        )

    try:
        eventually(
            lambda: (
                "PRODUCTS_DELETE" in ours(s, su)
                and w.hooks[wid]["status"] == "active"
                and b.hooks[hid]["is_active"]
            ),
            timeout=30,
        )
        rt = runtime.build(settings)
        eventually(
            lambda: (
                repairs_of(rt.state.stats("default"))
                == {"shopify": 1, "woocommerce": 1, "bigcommerce": 1}
            ),
            timeout=10,
        )
        eventually(both_passed, timeout=30)  # the second scheduler found the interval taken
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
    errs = [log.read_text() for log in logs]
    # one scheduler took the interval: one listing per platform, one write each
    assert [len(f.requests) - len(f.writes()) for f in fakes] == [1, 1, 1]
    assert [len(f.writes()) for f in fakes] == [1, 1, 1]
    assert foreign(fakes) == before
    metrics = client.get("/metrics").get_data(as_text=True)
    for platform in ("shopify", "woocommerce", "bigcommerce"):
        line = f'personyze_sync_subscription_repairs_total{{platform="{platform}",store="default"}}'
        assert f"{line} 1.0" in metrics
    assert "Traceback" not in "".join(errs)


def test_public_url_setting_wins_and_is_checked(connected_settings, fakes):
    import threading

    from app.config import ConfigError
    from workers.subscriptions import record_public_url, run_periodic

    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        connected_settings(public_url="http://sync.example.com")
    s, _, _ = fakes
    rt = runtime.build(connected_settings(public_url=BASE + "/", subscription_check_seconds=3600))
    record_public_url(rt, "https://old.example.com")
    stop = threading.Event()
    t = threading.Thread(target=run_periodic, args=(rt, stop))
    t.start()
    try:
        eventually(lambda: set(ours(s, f"{BASE}/webhooks/shopify")) == set(SHOPIFY_TOPICS))
    finally:
        stop.set()
        t.join(10)
    assert not any("old.example.com" in v["uri"] for v in s.subs.values())
