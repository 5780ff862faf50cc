"""The platform-neutral model: a normalized product and a store event.

Every platform adapter turns its own payload into these, so the state machine and the
mapping never look at a Shopify or WooCommerce field directly (except through `raw`, which
per-store mappings may reach into).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson

# "refresh": the delivery says the product changed but does not carry its state (a
# WooCommerce variation); the worker fetches the product from the store.
Kind = Literal["upsert", "delete", "refresh"]
KIND_CODES: dict[str, str] = {"upsert": "u", "delete": "d", "refresh": "r"}
CODE_KINDS: dict[str, str] = {v: k for k, v in KIND_CODES.items()}
MAX_ID_LENGTH = 128
MAX_CLOCK_AHEAD = timedelta(days=1)
_ID_RE = re.compile(r"^[\x21-\x7e\u00a0-\uffff][\x20-\x7e\u00a0-\uffff]*$")


class BadPayload(ValueError):
    """The sender's body or headers do not have the shape we need: answered 400."""


class NotOurs(Exception):
    """A validly signed delivery about something this store is not (BigCommerce: another
    store the same app is installed in): answered 401 like a bad signature. Raised by
    `parse`, which has the body parsed already."""


@dataclass(slots=True)
class Product:
    """A product as the storefront shows it. `price` is the regular (list) price and
    `sale_price` what the customer pays now; equal when there is no sale."""

    id: str
    title: str | None = None
    description: str | None = None
    description_html: str | None = None  # made plain text by the mapping, off the hot path
    price: Decimal | None = None
    sale_price: Decimal | None = None
    currency: str | None = None
    in_stock: bool | None = None
    inventory: int | None = None
    image_url: str | None = None
    url: str | None = None
    path: str | None = None  # on the storefront, when the platform gives no absolute url
    brand: str | None = None
    category: str | None = None
    sku: str | None = None
    status: str = "active"
    raw: dict[str, Any] = field(default_factory=dict)
    # A platform whose Admin API holds the truth this (webhook) state may lack: when the store
    # has API access there, the worker re-reads the product before writing it.
    verify_with: str | None = None

    @property
    def is_live(self) -> bool:
        """Only active products are on the storefront; anything else is removed from Personyze."""
        return self.status == "active"

    def to_json(self, keep_raw: bool = True) -> bytes:
        """orjson serializes the dataclass itself, because dataclasses.asdict deep-copies
        `raw` on the webhook path (docs/design.md, The webhook path). `raw` is only needed
        by mappings that add columns from it, so it can be left out of the pending doc."""
        if keep_raw or not self.raw:
            return orjson.dumps(self, default=str)
        raw, self.raw = self.raw, {}
        try:
            return orjson.dumps(self, default=str)
        finally:
            self.raw = raw

    @classmethod
    def from_json(cls, data: bytes | str) -> Product:
        """Fields this version does not know are left out: during a rolling deploy an older
        worker may read a document a newer web process wrote (e.g. `verify_with`)."""
        d = orjson.loads(data)
        known = cls.__dataclass_fields__
        d = {k: v for k, v in d.items() if k in known}
        for k in ("price", "sale_price"):
            if d.get(k) is not None:
                d[k] = Decimal(d[k])
        return cls(**d)


@dataclass(slots=True)
class Event:
    """One verified delivery about one product, ready for the Redis state machine."""

    store: str
    platform: str
    topic: str
    product_id: str
    version: int  # microseconds since the epoch, from the platform's clock
    kind: Kind
    dedupe_key: str
    product: Product | None = None
    # A delete without a time of its own (WooCommerce): recorded just after the newest version
    # Redis holds for the product, inside the ingest step (docs/design.md, Security).
    settle: bool = False


def product_id(value: object, what: str = "id", *, numeric: bool = False) -> str:
    """Ids are strings everywhere: Shopify's exceed 2**53 and must never pass through a float.
    Store platforms with integer ids (`numeric`) also get them as digit strings sometimes."""
    if isinstance(value, bool) or value is None:
        raise BadPayload(f"{what} is missing")
    if isinstance(value, int):
        if value <= 0:
            raise BadPayload(f"{what} must be positive")
        return str(value)
    if numeric:
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
            return str(int(value))
        raise BadPayload(f"{what} must be a positive integer")
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and _ID_RE.match(value):
        return value
    raise BadPayload(f"{what} must be a positive integer or a non-empty string of printable text")


def parse_time(value: object, what: str) -> int:
    """ISO-8601 (offsets, `Z`, up to 9 fractional digits) or epoch seconds -> microseconds.

    Timestamps without an offset are UTC (WooCommerce's `*_gmt` fields)."""
    if isinstance(value, bool):
        raise BadPayload(f"{what} must be a timestamp")
    if isinstance(value, int | float):
        if not 0 < value < time.time() + MAX_CLOCK_AHEAD.total_seconds():
            raise BadPayload(f"{what} is out of range")
        return int(Decimal(str(value)) * 1_000_000)
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise BadPayload(f"{what} must be an ISO-8601 timestamp")
    text = value.strip()
    if text[-1:] in "zZ":
        text = text[:-1] + "+00:00"
    # Python keeps microseconds: cut nanosecond digits rather than refuse them.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadPayload(f"{what} is not a valid ISO-8601 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if dt.year < 1971:
        raise BadPayload(f"{what} is out of range")
    if dt > datetime.now(UTC) + MAX_CLOCK_AHEAD:
        # one future-dated event would outrank every real one (and tombstone a product)
        raise BadPayload(f"{what} is more than a day in the future")
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def money(value: object, what: str) -> Decimal | None:
    """Decimal strings or numbers; empty means unknown. Never a float in between."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadPayload(f"{what} must be a number or a decimal string")
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadPayload(f"{what} is not a number") from None
    if not d.is_finite() or d < 0 or d > Decimal("1e15"):
        raise BadPayload(f"{what} is out of range")
    return d


def text(value: object, what: str, limit: int = 65_536) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadPayload(f"{what} must be a string")
    return value[:limit]


def first_src(items: object, what: str) -> str | None:
    """`src` of the first element of a platform's images list, if it has one."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return text(items[0].get("src"), f"{what}[0].src")
    return None


def integer(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadPayload(f"{what} must be an integer")
    return value


def obj(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadPayload(f"{what} must be a JSON object")
    return value


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadPayload("body is not valid JSON") from None
