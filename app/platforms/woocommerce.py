"""WooCommerce: `X-WC-Webhook-Signature` over the raw body; the unsigned creation ping;
product payloads as the REST API v3 shapes them."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from app.config import StoreConfig, normalize_source_url
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

PRODUCT_TOPICS = {"product.created", "product.updated", "product.deleted", "product.restored"}
_PING = re.compile(rb"webhook_id=\d{1,20}")


def is_ping(body: bytes, headers: HeaderMap) -> bool:
    """WooCommerce checks a new webhook with an unsigned form post `webhook_id=N` and wants
    exactly 200 back."""
    return "X-WC-Webhook-Signature" not in headers and bool(_PING.fullmatch(body.strip()))


class WooCommerce(HmacPlatform):
    name = "woocommerce"
    origin_header = "X-WC-Webhook-Source"
    signature_header = "X-WC-Webhook-Signature"
    topic_header = "X-WC-Webhook-Topic"

    def origin(self, headers: HeaderMap) -> str:
        return normalize_source_url(headers.get(self.origin_header) or "")

    def origin_of(self, store: StoreConfig) -> str | None:
        return store.woocommerce_url

    def secrets_of(self, store: StoreConfig) -> list[SecretStr]:
        return store.woocommerce_webhook_secrets

    def parse(
        self, store: StoreConfig, body: bytes, headers: HeaderMap, now: float
    ) -> Event | Ignore:
        topic = self.topic(headers)
        if topic not in PRODUCT_TOPICS:
            return Ignore("topic")
        payload = obj(parse_json(body), "body")
        pid = product_id(payload.get("id"), numeric=True)
        source = self.origin(headers)
        if topic == "product.deleted":
            # Only {"id"} and no timestamp (anything more is a replayed body: refused).
            # WooCommerce versions updates by `date_modified_gmt` (the store's clock, whole
            # seconds), so the arrival time (our clock, late by the delivery queue's lag)
            # would outrank a restore made before the delete reached us, and a forged delete
            # would freeze the product for the rest of that second. So the ingest step ranks
            # it just after the newest version it holds: above everything in that second,
            # below any later-second change (`settle`); with nothing known, arrival time
            # orders it. Delivery-ID changes on every send, so the product and the arrival
            # second make the dedupe key.
            refuse_replayed_delete(payload)
            dedupe = f"woo|{source}|{pid}|deleted|{int(now)}"
            return Event(
                store.id, self.name, topic, pid, int(now * 1_000_000), "delete", dedupe, settle=True
            )
        modified = payload.get("date_modified_gmt")
        version = parse_time(modified, "date_modified_gmt")
        dedupe = f"woo|{source}|{pid}|{modified}"
        parent = payload.get("parent_id")
        if isinstance(parent, int) and parent > 0:
            # A variation changed: its parent's row (lowest price, any in stock) needs the
            # parent's whole state, which this payload lacks, so the worker refetches it.
            # The fetch reads the current state, so arrival orders it (date_modified_gmt
            # counts whole seconds: two changes in one second would look like one).
            if not store.woocommerce_api:
                return Ignore("variation")
            return Event(
                store.id, self.name, topic, str(parent), int(now * 1_000_000), "refresh", dedupe
            )
        if store.woocommerce_api and needs_variations(payload):
            # Priced from its variations, which the worker reads (docs/design.md, WooCommerce
            # variable products); ordered by arrival like the variation refreshes above.
            return Event(store.id, self.name, topic, pid, int(now * 1_000_000), "refresh", dedupe)
        return Event(
            store.id, self.name, topic, pid, version, "upsert", dedupe, normalize(payload, pid)
        )


def needs_variations(p: dict[str, Any]) -> bool:
    """A variable product's own `price` is its lowest active price and its `regular_price` is
    empty, so a sale cannot be told from the parent alone: its variations are read."""
    return p.get("type") == "variable" and (
        p.get("on_sale") is True or p.get("regular_price") in ("", None)
    )


def variation_prices(variations: list[dict[str, Any]]) -> tuple[Decimal, Decimal] | None:
    """(lowest regular price, lowest active price) over the variations a customer can buy:
    published ones with a price (WooCommerce hides disabled, `private`, and price-less ones)."""
    regulars: list[Decimal] = []
    actives: list[Decimal] = []
    for i, v in enumerate(variations):
        if not isinstance(v, dict) or v.get("status", "publish") != "publish":
            continue
        active = money(v.get("price"), f"variations[{i}].price")
        if active is None:
            continue
        regular = money(v.get("regular_price"), f"variations[{i}].regular_price")
        regulars.append(regular if regular is not None and regular >= active else active)
        actives.append(active)
    if not actives:
        return None
    return min(regulars), min(actives)


def variations_inventory(variations: list[dict[str, Any]]) -> int | None:
    """Sum of the stock of variations that manage their own (a parent that manages stock for
    all of them reports it itself)."""
    total: int | None = None
    for i, v in enumerate(variations):
        if (
            isinstance(v, dict)
            and v.get("manage_stock") is True
            and v.get("status", "publish") == "publish"
        ):
            total = (total or 0) + (
                integer(v.get("stock_quantity"), f"variations[{i}].stock_quantity") or 0
            )
    return total


def normalize(
    p: dict[str, Any], pid: str, variations: list[dict[str, Any]] | None = None
) -> Product:
    """A REST API v3 product -> Product. `variations` (when read) price a variable product:
    lowest regular price -> `price`, lowest active price -> `sale_price`. Without them a
    variable product shows its lowest active price as both (no sale)."""
    regular = money(p.get("regular_price"), "regular_price")
    current = money(p.get("price"), "price")
    sale = money(p.get("sale_price"), "sale_price")
    price = regular if regular is not None else current
    sale_price = sale if sale is not None and p.get("on_sale") else (current or price)
    lowest = variation_prices(variations) if variations else None
    if lowest is not None:
        price, sale_price = lowest
    stock_status = p.get("stock_status")
    in_stock = None if stock_status is None else stock_status in ("instock", "onbackorder")
    inventory = None
    if p.get("manage_stock"):
        inventory = integer(p.get("stock_quantity"), "stock_quantity")
    elif variations:
        inventory = variations_inventory(variations)
    image = first_src(p.get("images"), "images")
    cats = p.get("categories") or []
    category = None
    if isinstance(cats, list) and cats and isinstance(cats[0], dict):
        category = text(cats[0].get("name"), "categories[0].name")
    status = p.get("status") or "publish"
    if not isinstance(status, str):
        raise BadPayload("status must be a string")
    return Product(
        id=pid,
        title=text(p.get("name"), "name"),
        description_html=text(p.get("description"), "description"),
        price=price,
        sale_price=sale_price,
        in_stock=in_stock,
        inventory=inventory,
        image_url=image,
        url=text(p.get("permalink"), "permalink"),
        category=category,
        sku=text(p.get("sku"), "sku") or None,
        status="active" if status == "publish" else status,
        raw=p,
    )
