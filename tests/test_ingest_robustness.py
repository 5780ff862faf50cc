"""Every sender-controlled input, fuzzed; and Redis going away under the web app."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app import create_app
from app.core import redisconn
from app.core.state import ledger_balance
from tests.support import shopify_product

ALLOWED = {200, 400, 401, 413}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
product_like = st.fixed_dictionaries(
    {
        "id": st.integers(-5, 2**70) | st.text(max_size=8) | st.none(),
        "updated_at": st.text(max_size=30)
        | st.integers()
        | st.sampled_from(
            ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789+05:30", "2026-13-01"]
        ),
    },
    optional={
        "variants": json_values,
        "title": json_values,
        "status": json_values,
        "images": json_values,
        "body_html": json_values,
    },
)
header_text = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=40)


def assert_consistent(state, r, prefix):
    led = state.ledger("default")
    assert ledger_balance(led) == 0
    for key in r.scan_iter(f"{prefix}:*:P:*"):
        product = state.product("default", key.decode().split(":P:", 1)[1])
        # a product is either pending with all its state, or synced/dead only
        if product.pending:
            assert product.pending_kind and product.pending_doc is not None
            assert product.received_at is not None


FUZZ = hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    payload=product_like | json_values,
    topic=st.sampled_from(
        ["products/update", "products/create", "products/delete", "orders/create", ""]
    )
    | header_text,
)
def test_fuzz_shopify_signed_garbage(app, webhooks, r, prefix, payload, topic):
    resp = webhooks.shopify(topic, json.dumps(payload).encode())
    assert resp.status_code in ALLOWED
    assert_consistent(app.extensions["personyze_sync"].state, r, prefix)


@FUZZ
@given(
    body=st.binary(max_size=300),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-Shopify-Topic",
                "X-Shopify-Hmac-Sha256",
                "X-Shopify-Shop-Domain",
                "X-Shopify-Event-Id",
                "X-Shopify-Triggered-At",
                "Content-Type",
            ]
        ),
        header_text,
    ),
)
def test_fuzz_shopify_random_bytes_and_headers(webhooks, body, headers):
    resp = webhooks.post_raw("/webhooks/shopify", body, headers)
    assert resp.status_code in ALLOWED


@FUZZ
@given(
    payload=st.fixed_dictionaries(
        {},
        optional={
            "id": st.integers(-3, 2**64) | st.text(max_size=5),
            "date_modified_gmt": header_text,
            "parent_id": json_values,
            "regular_price": json_values,
            "stock_quantity": json_values,
            "manage_stock": json_values,
            "status": json_values,
        },
    )
    | json_values,
    topic=st.sampled_from(["product.updated", "product.deleted", "product.restored", "x"]),
)
def test_fuzz_woo_signed_garbage(app, webhooks, r, prefix, payload, topic):
    resp = webhooks.woocommerce(topic, json.dumps(payload).encode())
    assert resp.status_code in ALLOWED
    assert_consistent(app.extensions["personyze_sync"].state, r, prefix)


@FUZZ
@given(
    payload=st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["product.updated", "product.deleted", "x"]) | json_values,
            "data": st.fixed_dictionaries(
                {},
                optional={
                    "id": json_values,
                    "updated_at": json_values,
                    "price": json_values,
                    "in_stock": json_values,
                    "inventory": json_values,
                    "status": json_values,
                },
            )
            | json_values,
        },
    )
    | json_values
)
def test_fuzz_standard_signed_garbage(app, webhooks, r, prefix, payload):
    resp = webhooks.standard(json.dumps(payload).encode())
    assert resp.status_code in ALLOWED
    assert_consistent(app.extensions["personyze_sync"].state, r, prefix)


def test_redis_down_is_503_then_recovers(make_settings, webhooks, tmp_path: Path):
    port = redisconn.free_port()
    server = redisconn.EmbeddedRedis(tmp_path / "a", port)
    url = f"redis://127.0.0.1:{port}/0"
    app = create_app(make_settings(redis_url=url))
    client = app.test_client()
    webhooks = webhooks.to(client)
    assert webhooks.shopify("products/update", shopify_product(at=1)).status_code == 200
    server.stop()
    delivery = webhooks.shopify_delivery("products/update", shopify_product(at=2))
    resp = webhooks.post(delivery)
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    server = redisconn.EmbeddedRedis(tmp_path / "b", port)  # an empty Redis comes back
    try:
        resp = webhooks.post(delivery)  # the platform's retry: the same delivery again
        assert resp.status_code == 200
        assert (
            redis.Redis.from_url(url).zcard(
                app.extensions["personyze_sync"].state.keys.due("default")
            )
            == 1
        )
    finally:
        server.stop()


@FUZZ
@given(
    payload=st.fixed_dictionaries(
        {},
        optional={
            "scope": st.sampled_from(["store/product/updated", "store/product/deleted", "x"])
            | json_values,
            "data": st.fixed_dictionaries({}, optional={"type": json_values, "id": json_values})
            | json_values,
            "hash": json_values,
        },
    )
    | json_values
)
def test_fuzz_bigcommerce_signed_garbage(make_settings, webhooks, r, prefix, payload):
    settings = make_settings(
        bigcommerce_client_secret="cs", bigcommerce_store_hash="h", bigcommerce_access_token="t"
    )
    app = create_app(settings)
    resp = webhooks.to(app).bigcommerce(json.dumps(payload).encode(), secret="cs")
    assert resp.status_code in ALLOWED
    assert_consistent(app.extensions["personyze_sync"].state, r, prefix)


@pytest.mark.parametrize(
    "path,method,status",
    [
        ("/webhooks/magento", "POST", 404),
        ("/webhooks/shopify/a/b", "POST", 404),
        ("/webhooks/shopify/", "POST", 401),  # the platform's own endpoint: unsigned
        ("/webhooks/shopify", "GET", 405),
        ("/webhooks/standard/nostore", "POST", 401),
    ],
)
def test_routing_answers_are_json_and_never_500(app, path, method, status):
    resp = app.test_client().open(path, method=method, data=b"{}")
    assert resp.status_code == status
    assert resp.is_json and resp.json["status"]
    if status == 405:
        assert resp.headers["Allow"] == "POST"


@pytest.mark.parametrize("ts", ["²", "1" * 5000, "-5", "1.5"])
def test_odd_standard_timestamps_are_401_not_500(webhooks, ts):
    signed = webhooks.standard_delivery(b"{}")
    assert webhooks.post(signed.with_headers(webhook_timestamp=ts)).status_code == 401


def test_nesting_too_deep_to_store_is_400(make_settings, webhooks, tmp_path):
    f = tmp_path / "stores.yaml"
    f.write_text(
        "stores:\n  - id: s\n    shopify_webhook_secrets: [k]\n"
        "    mapping: {add: {custom_1: tags}}\n"
    )
    app = create_app(make_settings(stores_file=str(f)))
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    resp = webhooks.to(app).shopify(
        "products/update", shopify_product(extra_field=deep), secret="k"
    )
    assert resp.status_code == 400 and "nested" in resp.json["error"]
