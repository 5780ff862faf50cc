"""Product -> Personyze product row: the default mapping of docs/design.md plus per-store changes.

Personyze drops empty values on write, so a value can only be replaced, never cleared: every
column we own is therefore always sent with a concrete value when we know one (e.g. a sale ends
by sending sale_price = price, not an empty sale_price)."""

from __future__ import annotations

import hashlib
import html
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import orjson

from app.config import MappingConfig, StoreConfig
from app.core.model import Product

DELETED_HASH = "deleted"


class _Text(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self.BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in self.BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    parser = _Text()
    parser.feed(value)
    parser.close()
    return re.sub(r"\s+", " ", html.unescape("".join(parser.parts))).strip()


def _decimal(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


def default_row(p: Product, store: StoreConfig) -> dict[str, Any]:
    description = p.description
    if description is None and p.description_html is not None:
        description = html_to_text(p.description_html)
    url = p.url
    if url is None and p.path and store.guide_domain:
        url = f"https://{store.guide_domain}{p.path}"
    row: dict[str, Any] = {
        "internal_id": p.id,
        "title": p.title,
        "description": description,
        "price": _decimal(p.price),
        "sale_price": _decimal(p.sale_price),
        "is_in_stock": None if p.in_stock is None else ("yes" if p.in_stock else "no"),
        "inventory": p.inventory,
        "image_big_url": p.image_url,
        "guide_url": url,
        "brand": p.brand,
        "category": p.category,
        "sku": p.sku,
    }
    return row


def _dig(raw: object, path: str) -> object:
    for part in path.split("."):
        if isinstance(raw, dict):
            raw = raw.get(part)
        elif isinstance(raw, list) and part.isdigit() and int(part) < len(raw):
            raw = raw[int(part)]
        else:
            return None
    return raw


def apply_config(row: dict[str, Any], p: Product, cfg: MappingConfig) -> dict[str, Any]:
    for column, path in cfg.add.items():
        value = _dig(p.raw, path)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        row[column] = value
    row.update(cfg.constants)
    for column in cfg.drop:
        if column != "internal_id":
            row.pop(column, None)
    for old, new in cfg.rename.items():
        if old in row and old != "internal_id":
            row[new] = row.pop(old)
    return row


def map_product(p: Product, store: StoreConfig) -> dict[str, Any]:
    """The row to POST: None and "" are left out (Personyze would drop them anyway)."""
    row = apply_config(default_row(p, store), p, store.mapping)
    return {k: v for k, v in row.items() if v is not None and v != ""}


def row_hash(row: dict[str, Any]) -> str:
    """Content hash of what Personyze would hold; equal hash = nothing to send (invariant 4)."""
    canonical = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()
