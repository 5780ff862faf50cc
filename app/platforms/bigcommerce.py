"""BigCommerce: thin webhooks (`{"scope", "data": {"type": "product", "id"}, "hash", ...}`)
signed the Standard Webhooks way with the app's client secret as the key; the worker
fetches the product through the catalog API (BIGCOMMERCE_STORE_HASH, _ACCESS_TOKEN)."""

from __future__ import annotations

import base64
from typing import Any

from app.config import StoreConfig
from app.core.model import (
    BadPayload,
    Event,
    Kind,
    NotOurs,
    Product,
    integer,
    money,
    obj,
    product_id,
    text,
)
from app.platforms.base import HeaderMap, Ignore, body_kind
from app.platforms.standard import StandardWebhooks
from app.platforms.standard import header as sw_header

SCOPES: dict[str, Kind] = {
    "store/product/created": "refresh",
    "store/product/updated": "refresh",
    "store/product/deleted": "delete",
}


class BigCommerce(StandardWebhooks):
    """Signed like Standard Webhooks; only the key and the body differ."""

    name = "bigcommerce"

    def secrets(self, store: StoreConfig) -> list[str]:
        # BigCommerce's own sample passes base64(client_secret) to a Standard Webhooks
        # verifier, i.e. the HMAC key is the client secret's bytes.
        return [
            "whsec_" + base64.b64encode(s.get_secret_value().encode()).decode()
            for s in store.bigcommerce_webhook_secrets
        ]

    def parse(
        self, store: StoreConfig, body: bytes, headers: HeaderMap, now: float
    ) -> Event | Ignore:
        payload, kind = body_kind(body, "scope", SCOPES)
        # One app (one client secret) is installed in many stores and signs every store's
        # deliveries alike, so only `producer` (`stores/{store_hash}`) says which store a
        # delivery is about: another store's is refused (401), not synced into this store's
        # catalog. (`store_id` is the numeric id, which we are not configured with.)
        if not store.bigcommerce_store_hash or (
            payload.get("producer") != f"stores/{store.bigcommerce_store_hash}"
        ):
            raise NotOurs("delivery for another BigCommerce store")
        scope = payload["scope"]
        if kind is None:
            return Ignore("topic")
        data = obj(payload.get("data"), "data")
        pid = product_id(data.get("id"), "data.id", numeric=True)
        digest = payload.get("hash")
        dedupe = f"bc|{store.bigcommerce_store_hash}|{scope}|{digest or sw_header(headers, 'id')}"
        # The payload has no state and `created_at` counts whole seconds, too coarse to order
        # two changes; the fetch reads the current state anyway, so the arrival time orders.
        return Event(store.id, self.name, scope, pid, int(now * 1_000_000), kind, dedupe)


def normalize(p: dict[str, Any], pid: str, storefront: str | None = None) -> Product:
    """A catalog API v3 product (with variants and images) -> Product. `storefront` is the
    store's own base URL (fetch.bigcommerce_storefront); the product URL is made absolute
    here, never left as a path a mapping could put under another platform's domain."""
    price = money(p.get("price"), "price")
    sale = money(p.get("sale_price"), "sale_price")
    sale_price = sale if sale and price is not None and sale < price else price
    tracking = p.get("inventory_tracking") or "none"
    level = integer(p.get("inventory_level"), "inventory_level")
    variants = p.get("variants") or []
    if not isinstance(variants, list):
        raise BadPayload("variants must be a list")
    if tracking == "variant":
        levels = [
            integer(obj(v, "variant").get("inventory_level"), "variant.inventory_level") or 0
            for v in variants
            if not obj(v, "variant").get("purchasing_disabled")
        ]
        inventory: int | None = sum(levels)
        in_stock = any(x > 0 for x in levels)
    elif tracking == "product":
        inventory = level or 0
        in_stock = inventory > 0
    else:
        inventory, in_stock = None, True
    if p.get("availability") == "disabled":
        in_stock = False
    images = [i for i in (p.get("images") or []) if isinstance(i, dict)]
    images.sort(key=lambda i: not i.get("is_thumbnail"))
    image = text(images[0].get("url_standard"), "images[0].url_standard") if images else None
    path = (p.get("custom_url") or {}).get("url") if isinstance(p.get("custom_url"), dict) else None
    return Product(
        id=pid,
        title=text(p.get("name"), "name"),
        description_html=text(p.get("description"), "description"),
        price=price,
        sale_price=sale_price,
        in_stock=in_stock,
        inventory=inventory,
        image_url=image,
        url=_absolute(storefront, text(path, "custom_url.url")),
        sku=text(p.get("sku"), "sku") or None,
        status="active" if p.get("is_visible", True) else "draft",
        raw=p,
    )


def _absolute(storefront: str | None, path: str | None) -> str | None:
    if not storefront or not path:
        return None
    return storefront.rstrip("/") + ("" if path.startswith("/") else "/") + path
