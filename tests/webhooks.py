"""Signed deliveries as each platform sends them, posted to the app under test.

The `webhooks` fixture (tests/conftest.py) is a `Webhooks` bound to the test's app:

    reply = webhooks.shopify("products/update", shopify_product(at=1))
    assert reply.status == "accepted_wake"

Each platform signs the way its own documentation says (Shopify and WooCommerce: base64
HMAC-SHA256 of the body; Standard Webhooks: the reference `standardwebhooks` library;
BigCommerce: Standard Webhooks keyed by its app's client secret), so a test that passes here
passes against the real sender. `webhooks.to(...)` posts to another app (its settings, a Flask
app or test client) or to a live server's base URL (gunicorn), through the same methods. Tests
that build a hostile request on purpose (a tampered body, a header dropped) start from the
`*_delivery` methods, change the `Delivery`, and `post` it, or use `post_raw`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient
from requests.structures import CaseInsensitiveDict

from app import create_app
from app.config import Settings
from tests.constants import (
    BC_CLIENT_SECRET,
    SHOP,
    SHOPIFY_SECRET,
    STANDARD_SECRET,
    T0,
    WOO_SECRET,
    WOO_URL,
)

# Where deliveries go: a test client, a Flask app, settings to build an app on, or the base
# URL of a live server.
Target = FlaskClient | Flask | Settings | str
# A body: any JSON value (encoded here), or bytes sent as they are (a test's own bytes).
Payload = Any


def hmac_base64(secret: str, body: bytes) -> str:
    """Shopify's and WooCommerce's signature: base64 of the body's HMAC-SHA256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _encode(payload: Payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


@dataclass(frozen=True)
class Delivery:
    """One signed request: the path under the app, the body, the headers."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def with_headers(self, **changes: str | None) -> Delivery:
        """The same delivery with headers changed (`None` drops one); names use `_` for `-`."""
        headers = dict(self.headers)
        for name, value in changes.items():
            name = name.replace("_", "-")
            key = next((k for k in headers if k.lower() == name.lower()), name)
            if value is None:
                headers.pop(key, None)
            else:
                headers[key] = value
        return replace(self, headers=headers)


@dataclass(frozen=True)
class Reply:
    """The app's answer, the same whether it came from a test client or over HTTP."""

    status_code: int
    json: Any  # the parsed body, None when it is not JSON
    text: str
    headers: Mapping[str, str]  # case-insensitive, as HTTP header names are

    @property
    def status(self) -> str:
        """What the app did with a delivery it took ("accepted_wake", "accepted", "duplicate",
        "stale", "ignored"). Only a 200 has one: asking a refused delivery for it fails the
        test with the app's answer (a test about a refusal asserts `status_code`)."""
        assert self.status_code == 200, (self.status_code, self.text)
        return str(self.json["status"])


class Webhooks:
    """Signs and posts deliveries for every platform to one target (without one it only
    signs: the `*_delivery` methods); keyword defaults are the test settings' secrets and
    shop (tests/constants.py)."""

    def __init__(
        self,
        target: Target | None = None,
        *,
        shop: str = SHOP,
        shopify_secret: str = SHOPIFY_SECRET,
        woo_source: str = WOO_URL + "/",
        woo_secret: str = WOO_SECRET,
        standard_secret: str = STANDARD_SECRET,
        bigcommerce_secret: str = BC_CLIENT_SECRET,
        timeout: float = 10.0,
    ) -> None:
        self._target = target
        self._client: FlaskClient | str | None = None
        self._others: dict[tuple[int, tuple[tuple[str, Any], ...]], tuple[Target, Webhooks]] = {}
        self.shop = shop
        self.shopify_secret = shopify_secret
        self.woo_source = woo_source
        self.woo_secret = woo_secret
        self.standard_secret = standard_secret
        self.bigcommerce_secret = bigcommerce_secret
        self.timeout = timeout

    def to(self, target: Target, **defaults: Any) -> Webhooks:
        """The same signer posting to `target`, with `defaults` changed (e.g. `woo_source`).
        Asked again for the same target, it is the same one: an app is built once per
        settings (each app holds Redis connections of its own)."""
        key = (id(target), tuple(sorted(defaults.items())))
        if key not in self._others:  # the target is kept with it, so its id is not reused
            self._others[key] = (target, self._with(target, defaults))
        return self._others[key][1]

    def _with(self, target: Target, defaults: dict[str, Any]) -> Webhooks:
        kept: dict[str, Any] = {
            "shop": self.shop,
            "shopify_secret": self.shopify_secret,
            "woo_source": self.woo_source,
            "woo_secret": self.woo_secret,
            "standard_secret": self.standard_secret,
            "bigcommerce_secret": self.bigcommerce_secret,
            "timeout": self.timeout,
        }
        if isinstance(target, Settings) and "woo_source" not in defaults:
            # WooCommerce names its site in every delivery: the settings' own site
            site = next(iter(target.stores.values())).woocommerce_url
            kept["woo_source"] = f"{site}/" if site else self.woo_source
        return Webhooks(target, **(kept | defaults))

    # -- sending ----------------------------------------------------------------------------

    def shopify(self, topic: str, payload: Payload, **signing: Any) -> Reply:
        """POST /webhooks/shopify, e.g. `shopify("products/update", shopify_product())`."""
        return self.post(self.shopify_delivery(topic, payload, **signing))

    def woocommerce(self, topic: str, payload: Payload, **signing: Any) -> Reply:
        """POST /webhooks/woocommerce, e.g. `woocommerce("product.updated", woo_product())`."""
        return self.post(self.woocommerce_delivery(topic, payload, **signing))

    def bigcommerce(self, payload: Payload, **signing: Any) -> Reply:
        """POST /webhooks/bigcommerce; the scope is in the body (support.bigcommerce_body)."""
        return self.post(self.bigcommerce_delivery(payload, **signing))

    def standard(self, payload: Payload, **signing: Any) -> Reply:
        """POST /webhooks/standard; the type is in the body (support.standard_body)."""
        return self.post(self.standard_delivery(payload, **signing))

    def post(self, delivery: Delivery) -> Reply:
        return self.post_raw(delivery.path, delivery.body, delivery.headers)

    def post_raw(self, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Any bytes with any headers (unsigned unless the caller signed them)."""
        client = self._resolve()
        if isinstance(client, str):
            resp = requests.post(client + path, data=body, headers=headers, timeout=self.timeout)
            try:
                parsed = resp.json()
            except ValueError:
                parsed = None
            return Reply(resp.status_code, parsed, resp.text, resp.headers)
        got = client.post(path, data=body, headers=dict(headers))
        return Reply(
            got.status_code,
            got.get_json(silent=True),
            got.get_data(as_text=True),
            CaseInsensitiveDict(got.headers.items()),
        )

    def _resolve(self) -> FlaskClient | str:
        if self._client is None:
            target = self._target
            if target is None:
                raise RuntimeError("Webhooks has no target: use webhooks.to(...)")
            if isinstance(target, Settings):
                target = create_app(target)
            if isinstance(target, Flask):
                target = target.test_client()
            self._client = target.rstrip("/") if isinstance(target, str) else target
        return self._client

    # -- signing ----------------------------------------------------------------------------

    def shopify_delivery(
        self,
        topic: str,
        payload: Payload,
        *,
        secret: str | None = None,
        shop: str | None = None,
        event_id: str | None = None,
        webhook_id: str | None = None,
        triggered_at: str | None = None,
        store: str | None = None,
    ) -> Delivery:
        """Signed as Shopify signs (shopify.dev, "Verify webhooks"): base64 HMAC-SHA256 of
        the body. Triggered at T0 unless `triggered_at` says (in the shop's local offset, as
        Shopify sends it); `store` posts to a store's own endpoint, /webhooks/shopify/<store>."""
        body = _encode(payload)
        return Delivery(
            _path("shopify", store),
            body,
            {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": hmac_base64(secret or self.shopify_secret, body),
                "X-Shopify-Shop-Domain": shop or self.shop,
                "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
                "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
                "X-Shopify-Triggered-At": triggered_at or T0.astimezone().isoformat(),
            },
        )

    def woocommerce_delivery(
        self,
        topic: str,
        payload: Payload,
        *,
        secret: str | None = None,
        source: str | None = None,
        delivery_id: str | None = None,
        store: str | None = None,
    ) -> Delivery:
        """Signed as WooCommerce signs (WC_Webhook::generate_signature): base64 HMAC-SHA256
        of the body, with the site's URL as the source."""
        body = _encode(payload)
        resource, _, event = topic.partition(".")
        return Delivery(
            _path("woocommerce", store),
            body,
            {
                "Content-Type": "application/json",
                "X-WC-Webhook-Source": source or self.woo_source,
                "X-WC-Webhook-Topic": topic,
                "X-WC-Webhook-Resource": resource,
                "X-WC-Webhook-Event": event,
                "X-WC-Webhook-Signature": hmac_base64(secret or self.woo_secret, body),
                "X-WC-Webhook-ID": "3",
                "X-WC-Webhook-Delivery-ID": delivery_id or uuid.uuid4().hex,
            },
        )

    def standard_delivery(
        self,
        payload: Payload,
        *,
        secret: str | None = None,
        msg_id: str | None = None,
        timestamp: datetime | None = None,
        store: str | None = None,
    ) -> Delivery:
        """Signed by the reference `standardwebhooks` library, not by our own code."""
        return _standard(
            _path("standard", store),
            _encode(payload),
            secret or self.standard_secret,
            msg_id,
            timestamp,
        )

    def bigcommerce_delivery(
        self,
        payload: Payload,
        *,
        secret: str | None = None,
        msg_id: str | None = None,
        timestamp: datetime | None = None,
        store: str | None = None,
    ) -> Delivery:
        """Signed as BigCommerce's docs show: Standard Webhooks keyed by base64 of the app's
        client secret (`secret`)."""
        key = base64.b64encode((secret or self.bigcommerce_secret).encode()).decode()
        return _standard(_path("bigcommerce", store), _encode(payload), key, msg_id, timestamp)


def _path(platform: str, store: str | None) -> str:
    return f"/webhooks/{platform}" + (f"/{store}" if store else "")


def _standard(
    path: str, body: bytes, secret: str, msg_id: str | None, timestamp: datetime | None
) -> Delivery:
    from standardwebhooks.webhooks import Webhook

    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = timestamp or datetime.now(UTC)
    return Delivery(
        path,
        body,
        {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
        },
    )
