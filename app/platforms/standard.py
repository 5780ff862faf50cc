"""Standard Webhooks: any store backend can send the product schema of docs/design.md, signed with
`webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64>` list) headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from app.config import StoreConfig
from app.core.model import (
    BadPayload,
    Event,
    Kind,
    Product,
    integer,
    money,
    obj,
    parse_time,
    product_id,
    text,
)
from app.platforms.base import HeaderMap, Ignore, body_kind, only_store

TOLERANCE_SECONDS = 300
TYPES: dict[str, Kind] = {
    "product.created": "upsert",
    "product.updated": "upsert",
    "product.deleted": "delete",
}
STATUSES = {"active", "draft", "archived"}


def header(headers: HeaderMap, name: str) -> str | None:
    """Svix senders use `svix-*` unless white-labelled; accept both."""
    return headers.get(f"webhook-{name}") or headers.get(f"svix-{name}")


def signature_ok(secret: str, body: bytes, headers: HeaderMap, now: float) -> bool:
    msg_id, ts, sigs = (header(headers, n) for n in ("id", "timestamp", "signature"))
    if not (msg_id and ts and sigs) or not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
        return False
    if abs(now - int(ts)) > TOLERANCE_SECONDS:
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except ValueError:
        return False
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    ok = False
    for part in sigs.split():
        version, _, sig = part.partition(",")
        if version == "v1":
            ok |= hmac.compare_digest(expected, sig.encode())
    return ok


class StandardWebhooks:
    name = "standard"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def secrets(self, store: StoreConfig) -> list[str]:
        """The store's `whsec_...` secrets for this sender."""
        return [s.get_secret_value() for s in store.standard_webhook_secrets]

    def resolve(
        self, stores: Mapping[str, StoreConfig], headers: HeaderMap, hint: str | None
    ) -> StoreConfig | None:
        return only_store(stores, hint, lambda s: bool(self.secrets(s)))

    def verify(self, store: StoreConfig, body: bytes, headers: HeaderMap) -> bool:
        now = self._clock()
        return any(signature_ok(s, body, headers, now) for s in self.secrets(store))

    def parse(
        self, store: StoreConfig, body: bytes, headers: HeaderMap, now: float
    ) -> Event | Ignore:
        payload, kind = body_kind(body, "type", TYPES)
        if kind is None:
            return Ignore("topic")
        data = obj(payload.get("data"), "data")
        pid = product_id(data.get("id"), "data.id")
        version = parse_time(data.get("updated_at"), "data.updated_at")
        dedupe = f"std|{header(headers, 'id')}"
        if kind == "delete":
            return Event(store.id, self.name, payload["type"], pid, version, "delete", dedupe)
        return Event(
            store.id,
            self.name,
            payload["type"],
            pid,
            version,
            "upsert",
            dedupe,
            normalize(data, pid),
        )


def normalize(d: dict[str, Any], pid: str) -> Product:
    price = money(d.get("price"), "data.price")
    sale = money(d.get("sale_price"), "data.sale_price")
    in_stock = d.get("in_stock")
    if in_stock is not None and not isinstance(in_stock, bool):
        raise BadPayload("data.in_stock must be true or false")
    status = d.get("status", "active")
    if status not in STATUSES:
        raise BadPayload("data.status must be active, draft or archived")
    return Product(
        id=pid,
        title=text(d.get("title"), "data.title"),
        description=text(d.get("description"), "data.description"),
        price=price,
        sale_price=sale if sale is not None else price,
        currency=text(d.get("currency"), "data.currency"),
        in_stock=in_stock,
        inventory=integer(d.get("inventory"), "data.inventory"),
        image_url=text(d.get("image_url"), "data.image_url"),
        url=text(d.get("url"), "data.url"),
        brand=text(d.get("brand"), "data.brand"),
        category=text(d.get("category"), "data.category"),
        sku=text(d.get("sku"), "data.sku"),
        status=status,
        raw=d,
    )
