"""Shopify: `X-Shopify-Hmac-Sha256` over the raw body; product topics; REST product payloads."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from app.config import StoreConfig
from app.core.model import (
    BadPayload,
    Event,
    Product,
    first_src,
    integer,
    money,
    obj,
    parse_json,
    parse_time,
    product_id,
    text,
)
from app.platforms.base import HeaderMap, HmacPlatform, Ignore, refuse_replayed_delete

PRODUCT_TOPICS = {"products/create", "products/update", "products/delete"}
# Mandatory for App Store apps; we keep no customer data, so verified = done.
COMPLIANCE_TOPICS = {"customers/data_request", "customers/redact", "shop/redact"}
# Product.status of an active product with `published_at: null` (not on the online store).
UNPUBLISHED = "unpublished"


class Shopify(HmacPlatform):
    name = "shopify"
    origin_header = "X-Shopify-Shop-Domain"
    signature_header = "X-Shopify-Hmac-Sha256"
    topic_header = "X-Shopify-Topic"

    def origin_of(self, store: StoreConfig) -> str | None:
        return store.shopify_shop_domain

    def secrets_of(self, store: StoreConfig) -> list[SecretStr]:
        return store.shopify_webhook_secrets

    def parse(
        self, store: StoreConfig, body: bytes, headers: HeaderMap, now: float
    ) -> Event | Ignore:
        topic = self.topic(headers)
        if topic not in PRODUCT_TOPICS:
            return Ignore("compliance" if topic in COMPLIANCE_TOPICS else "topic")
        payload = obj(parse_json(body), "body")
        pid = product_id(payload.get("id"), numeric=True)
        shop = self.origin(headers)
        delivery = headers.get("X-Shopify-Event-Id") or headers.get("X-Shopify-Webhook-Id")
        if not delivery:
            delivery = hashlib.sha256(body).hexdigest()
        dedupe = f"shopify|{shop}|{topic}|{delivery}"
        if topic == "products/delete":
            return Event(
                store.id,
                self.name,
                topic,
                pid,
                delete_version(payload, headers.get("X-Shopify-Triggered-At"), now),
                "delete",
                dedupe,
            )
        version = tie_break(
            parse_time(payload.get("updated_at"), "updated_at"),
            headers.get("X-Shopify-Triggered-At"),
            now,
        )
        return Event(
            store.id, self.name, topic, pid, version, "upsert", dedupe, normalize(payload, pid)
        )


def delete_version(payload: dict[str, Any], triggered_at: str | None, now: float) -> int:
    """Shopify signs only the body; topic, event id and `X-Shopify-Triggered-At` are not. A
    genuine delete body is only `{"id"}`: anything more is some other signed body resent as a
    delete, and is refused (docs/design.md, Security). The version comes from the unsigned
    Triggered-At, so it is never later than our receipt: a forged header cannot date a delete
    ahead of the store's next real change."""
    refuse_replayed_delete(payload)
    received = int(now * 1_000_000)
    if not triggered_at:
        return received
    return min(parse_time(triggered_at, "X-Shopify-Triggered-At"), received)


def tie_break(updated: int, triggered_at: str | None, now: float) -> int:
    """`updated_at` counts whole seconds, so two changes in one second would tie and the
    second be dropped as stale. `X-Shopify-Triggered-At` (nanoseconds, the same on every
    retry of an event) orders them: its distance from `updated_at`, clamped into that second,
    fills the free microseconds. The header is unsigned, so what it adds never takes the
    version past the time we received the delivery."""
    if updated % 1_000_000 or not triggered_at:
        return updated
    try:
        triggered = parse_time(triggered_at, "X-Shopify-Triggered-At")
    except BadPayload:
        return updated
    received = int(now * 1_000_000)
    return updated + min(max(triggered - updated, 0), 999_999, max(received - updated, 0))


def normalize(p: dict[str, Any], pid: str) -> Product:
    """Shopify REST product (the webhook body, API 2023-07 through 2026-01) -> Product, with
    the price and stock rules of docs/design.md (Shopify stock).

    Since API 2024-07 product webhooks carry no `variants[].inventory_management` (Shopify's
    product variant field clean-up), so whether a variant is tracked is unknown from the
    payload. Where the key is present (older versions, and our GraphQL adapter) untracked
    variants are sellable; where it is absent a variant is sellable when its quantity is above
    0 or its policy is `continue`. So an untracked variant with quantity 0 and policy `deny`
    reads as out of stock: with SHOPIFY_ADMIN_TOKEN the worker re-reads the product through
    the GraphQL Admin API (`verify_with`) and writes Shopify's own `availableForSale`."""
    variants = p.get("variants")
    if variants is None:
        variants = []
    if not isinstance(variants, list):
        raise BadPayload("variants must be a list")
    best: tuple[Decimal, Decimal | None] | None = None
    sellable: bool | None = None
    inventory: int | None = None
    for i, v in enumerate(variants):
        v = obj(v, f"variants[{i}]")
        price = money(v.get("price"), f"variants[{i}].price")
        compare = money(v.get("compare_at_price"), f"variants[{i}].compare_at_price")
        if price is not None and (best is None or price < best[0]):
            best = (price, compare)
        qty = integer(v.get("inventory_quantity"), f"variants[{i}].inventory_quantity") or 0
        # None: the payload does not say (API 2024-07 and later)
        tracked = bool(v["inventory_management"]) if "inventory_management" in v else None
        if tracked is not False:
            # An oversold variant (policy continue, quantity below 0) takes nothing away from
            # the stock of the others. Untracked variants' quantities are meaningless; with
            # unknown tracking they count (inferred: an untracked variant mostly reads 0).
            inventory = (inventory or 0) + max(qty, 0)
        ok = tracked is False or qty > 0 or v.get("inventory_policy") == "continue"
        sellable = bool(sellable) or ok
    price = sale = None
    if best is not None:
        sale = best[0]
        price = best[1] if best[1] is not None and best[1] > best[0] else best[0]
    image = first_src(p.get("images"), "images") or first_src([p.get("image")], "image")
    first = variants[0] if variants else {}
    status = p.get("status") or "active"
    if not isinstance(status, str):
        raise BadPayload("status must be a string")
    if status == "active" and "published_at" in p and p["published_at"] is None:
        # Active but not published to the online store: customers cannot open it.
        status = UNPUBLISHED
    return Product(
        id=pid,
        title=text(p.get("title"), "title"),
        description_html=text(p.get("body_html"), "body_html"),
        price=price,
        sale_price=sale,
        in_stock=sellable,
        inventory=inventory,
        image_url=image,
        path=f"/products/{handle}" if (handle := text(p.get("handle"), "handle")) else None,
        brand=text(p.get("vendor"), "vendor"),
        category=text(p.get("product_type"), "product_type"),
        sku=text(first.get("sku"), "variants[0].sku"),
        status=status,
        raw=p,
        verify_with="shopify",
    )
