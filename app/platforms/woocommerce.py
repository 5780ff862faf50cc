"""WooCommerce: `X-WC-Webhook-Signature` over the raw body; the unsigned creation ping;
product payloads as the REST API v3 shapes them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
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
from app.platforms.base import HmacPlatform, Ignore, refuse_replayed_delete

PRODUCT_TOPICS = {"product.created", "product.updated", "product.deleted", "product.restored"}
_PING = re.compile(rb"webhook_id=\d{1,20}")


def is_ping(body: bytes, headers: Mapping[str, str]) -> bool:
    """WooCommerce checks a new webhook with an unsigned form post `webhook_id=N` and wants
    exactly 200 back."""
    return "X-WC-Webhook-Signature" not in headers and bool(_PING.fullmatch(body.strip()))


class WooCommerce(HmacPlatform):
    name = "woocommerce"
    origin_header = "X-WC-Webhook-Source"
    signature_header = "X-WC-Webhook-Signature"
    topic_header = "X-WC-Webhook-Topic"

    def origin(self, headers: Mapping[str, str]) -> str:
        return normalize_source_url(headers.get(self.origin_header) or "")

    def origin_of(self, store: StoreConfig) -> str | None:
        return store.woocommerce_url

    def secrets_of(self, store: StoreConfig) -> list[SecretStr]:
        return store.woocommerce_webhook_secrets

    def parse(
        self, store: StoreConfig, body: bytes, headers: Mapping[str, str], now: float
    ) -> Event | Ignore:
        topic = self.topic(headers)
        if topic not in PRODUCT_TOPICS:
            return Ignore("topic")
        payload = obj(parse_json(body), "body")
        pid = product_id(payload.get("id"), numeric=True)
        source = self.origin(headers)
        if topic == "product.deleted":
            # Only {"id"} and no timestamp (anything more is a replayed body: refused). Its
            # version is settled against what we know of the product (`delete_after`) just
            # before it is recorded; the arrival time stands in until then. Delivery-ID
            # changes on every send, so the product and the arrival second make the dedupe key.
            refuse_replayed_delete(payload)
            dedupe = f"woo|{source}|{pid}|deleted|{int(now)}"
            return Event(store.id, self.name, topic, pid, int(now * 1_000_000), "delete",
                         dedupe)
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
            return Event(store.id, self.name, topic, str(parent), int(now * 1_000_000),
                         "refresh", dedupe)
        return Event(store.id, self.name, topic, pid, version, "upsert", dedupe,
                     normalize(payload, pid))

    # A delete's version depends on the product's known version (read from Redis by the
    # webhook path before recording).
    settles_deletes = True

    @staticmethod
    def delete_after(ev: Event, known: int | None) -> Event:
        """WooCommerce versions updates by `date_modified_gmt` (the store's clock, whole
        seconds) and sends deletes bare, so the arrival time (our clock, late by the delivery
        queue's lag) would outrank a restore made before the delete reached us, and a
        forged delete would freeze the product for the rest of that second. Instead a delete
        ranks just after the newest version we hold: above everything in that second, below
        any change the store makes in a later second, whatever the clocks' skew or the lag.
        With nothing known, arrival time orders it (docs/design.md, Security)."""
        if known is None:
            return ev
        version = max(known + 1, known - known % 1_000_000 + 999_999)
        return dataclasses.replace(ev, version=version)


def normalize(p: dict[str, Any], pid: str) -> Product:
    regular = money(p.get("regular_price"), "regular_price")
    current = money(p.get("price"), "price")
    sale = money(p.get("sale_price"), "sale_price")
    price = regular if regular is not None else current
    sale_price = sale if sale is not None and p.get("on_sale") else (current or price)
    stock_status = p.get("stock_status")
    in_stock = None if stock_status is None else stock_status in ("instock", "onbackorder")
    inventory = None
    if p.get("manage_stock"):
        inventory = integer(p.get("stock_quantity"), "stock_quantity")
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
