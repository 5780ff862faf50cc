"""Store API credentials and deletions: tokens never follow a redirect to another host, only
the API's own "no such product" deletes, and WOOCOMMERCE_URL is https with its path's case."""

from __future__ import annotations

import pytest

from app import runtime
from app.config import ConfigError
from app.platforms.fetch import (
    StoreFetchError,
    bigcommerce_session,
    request,
    shopify_session,
    woocommerce_fetcher,
    woocommerce_session,
)
from tests.constants import (
    BC_HASH,
    BC_TOKEN,
    SHOPIFY_TOKEN,
    WOO_CONSUMER_KEY,
    WOO_CONSUMER_SECRET,
)
from tests.fake_stores import fake_bigcommerce, fake_shopify, fake_woo
from tests.support import woo_product
from workers.sync import Syncer


@pytest.fixture
def elsewhere():
    """A second local HTTP server: the host a redirect points at."""
    w = fake_woo()
    yield w
    w.stop()


def woo_settings(make_settings, sandbox, url):
    return make_settings(
        personyze_base_url=sandbox.url,
        woocommerce_url=url,
        woocommerce_consumer_key=WOO_CONSUMER_KEY,
        woocommerce_consumer_secret=WOO_CONSUMER_SECRET,
    )


SESSIONS = {
    "woocommerce": (
        fake_woo,
        woocommerce_session,
        "/wp-json/wc/v3/products/5",
        WOO_CONSUMER_SECRET,
    ),
    "bigcommerce": (
        fake_bigcommerce,
        bigcommerce_session,
        f"/stores/{BC_HASH}/v3/catalog/products/5",
        BC_TOKEN,
    ),
    "shopify": (fake_shopify, shopify_session, "/admin/api/2025-01/products/5.json", SHOPIFY_TOKEN),
}


@pytest.mark.parametrize("platform", sorted(SESSIONS))
def test_no_credentials_follow_a_redirect_to_another_host(platform, make_settings, elsewhere):
    make_fake, make_session, path, secret = SESSIONS[platform]
    store_api = make_fake()
    try:
        store_api.redirects[path] = f"{elsewhere.url}{path}"
        settings = make_settings(
            woocommerce_url=store_api.url,
            woocommerce_consumer_key=WOO_CONSUMER_KEY,
            woocommerce_consumer_secret=WOO_CONSUMER_SECRET,
            bigcommerce_store_hash=BC_HASH,
            bigcommerce_access_token=BC_TOKEN,
            bigcommerce_api_url=store_api.url,
            shopify_admin_token=SHOPIFY_TOKEN,
            shopify_admin_api_url=store_api.url,
        )
        session = make_session(settings.stores["default"])
        with pytest.raises(StoreFetchError) as err:
            request(session, "GET", store_api.url + path, platform)
        assert err.value.permanent and "another origin" in str(err.value)
        assert secret not in str(err.value)
        assert store_api.requests == [path]  # asked once, redirected, and not followed
        assert elsewhere.requests == []  # the other host never saw a request, nor the token
    finally:
        store_api.stop()


def test_a_redirected_product_is_not_deleted(make_settings, webhooks, sandbox, woo, elsewhere):
    """The store moved (a redirect to another host): a store error in the DLQ entry, the row
    stays in Personyze, and the token never left."""
    rt = runtime.build(woo_settings(make_settings, sandbox, woo.url))
    woo.products[22] = woo_product(pid=22, type="variable", regular_price="", on_sale=True)
    site = webhooks.to(rt.settings)
    assert site.woocommerce("product.updated", woo.products[22]).status == "accepted_wake"
    s = Syncer(rt.settings, rt.state)
    assert s.run("default", "22") == "written"
    woo.redirects["/wp-json/"] = elsewhere.url + "/wp-json/wc/v3/products/22"
    site.woocommerce("product.updated", woo_product(pid=78, parent_id=22, at=5))
    assert s.run("default", "22") == "dead"  # permanent: the URL must be fixed, then replayed
    assert [r["internal_id"] for r in sandbox.rows("products")] == ["22"]
    [entry] = rt.state.dlq_list("default").values()
    assert "another origin" in entry["errors"][-1]["error"]
    assert (
        elsewhere.requests == []
        and WOO_CONSUMER_SECRET not in str(entry)
        and WOO_CONSUMER_KEY not in str(entry)
    )


@pytest.mark.parametrize(
    "answer",
    [
        "same-host redirect to a 404",
        "404 without Woo's body",
        "HTML page",
        "redirect loop",
        "3xx without Location",
    ],
)
def test_unexpected_answers_are_store_errors_not_deletions(answer, make_settings, sandbox, woo):
    settings = woo_settings(make_settings, sandbox, woo.url)
    fetch = woocommerce_fetcher(settings.stores["default"])
    woo.products[5] = woo_product(pid=5)
    assert fetch("5") is not None
    path = "/wp-json/wc/v3/products/5"
    if answer == "same-host redirect to a 404":
        woo.redirects[path] = "/old-site/wp-json/wc/v3/products/5"  # answered rest_no_route
    elif answer == "404 without Woo's body":
        woo.path_status[path] = 404  # {"code": "forced"}: a proxy's or a wrong route's 404
    elif answer == "HTML page":
        woo.html_paths.add(path)  # e.g. the REST API disabled: WordPress serves its theme
    elif answer == "redirect loop":
        woo.redirects[path] = "/same/host/loop"
        woo.redirects["/same/"] = "/same/host/loop"
    else:
        woo.redirects[path] = ""
    with pytest.raises(StoreFetchError) as err:
        fetch("5")
    assert "WooCommerce" in str(err.value)


def test_only_the_apis_own_not_found_is_a_deletion(make_settings, sandbox, woo):
    settings = woo_settings(make_settings, sandbox, woo.url)
    fetch = woocommerce_fetcher(settings.stores["default"])
    assert fetch("5") is None  # woocommerce_rest_product_invalid_id
    woo.products[6] = woo_product(pid=6, status="trash")
    assert fetch("6") is None  # the platform's explicit deleted state


def test_a_site_at_a_mixed_case_path_is_called_at_that_path(make_settings, sandbox):
    site = fake_woo("/Shop")
    try:
        settings = woo_settings(make_settings, sandbox, site.url + "/Shop/")
        store = settings.stores["default"]
        assert store.woocommerce_url == site.url + "/Shop"
        site.products[5] = woo_product(pid=5)
        product = woocommerce_fetcher(store)("5")
        assert product is not None and product.id == "5"
        assert site.requests == ["/Shop/wp-json/wc/v3/products/5"]
    finally:
        site.stop()


def test_webhook_source_matches_on_host_case_but_not_path_case(make_settings, webhooks):
    site = webhooks.to(make_settings(woocommerce_url="https://Woo.Example.com/Shop"))

    def post(source):
        return site.woocommerce("product.updated", woo_product(at=1), source=source).status_code

    assert post("https://woo.example.com/Shop/") == 200
    assert post("https://WOO.EXAMPLE.COM:443/Shop") == 200
    assert post("https://woo.example.com/shop/") == 401  # another site on that host
    assert post("https://woo.example.com/") == 401


@pytest.mark.parametrize(
    "url",
    [
        "http://woo.example.com",
        "ftp://woo.example.com",
        "https://user:pass@woo.example.com",
        "https://woo.example.com/?p=1",
        "https://woo.example.com:x",
    ],
)
def test_woocommerce_url_must_be_https(url, make_settings):
    with pytest.raises(ConfigError) as err:
        make_settings(woocommerce_url=url)
    assert "WOOCOMMERCE_URL" in str(err.value) and "pass" not in str(err.value)


def test_plain_http_only_for_loopback(make_settings):
    assert (
        make_settings(woocommerce_url="http://127.0.0.1:8080/").stores["default"].woocommerce_url
        == "http://127.0.0.1:8080"
    )
    assert (
        make_settings(woocommerce_url="http://localhost/Shop").stores["default"].woocommerce_url
        == "http://localhost/Shop"
    )
