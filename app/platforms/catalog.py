"""Whole-catalog reads from the stores' APIs, for backfill and periodic reconciliation.

Webhooks get lost (WooCommerce never retries, Shopify and BigCommerce give up after hours
and may remove the subscription), so every platform advises a periodic re-read. Each list
page already carries full products, so a pass costs one API call per page, not per product;
the products go through the same ingest step as webhooks (latest wins, unchanged content is
not written)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from app.config import StoreConfig
from app.core.model import BadPayload, Product, parse_time, product_id
from app.platforms.fetch import (
    WOO_PAGE_SIZE,
    StoreSession,
    bigcommerce_pages,
    bigcommerce_session,
    bigcommerce_storefront,
    woocommerce_pages,
    woocommerce_session,
    woocommerce_variations,
)

# platform, product, version (us); or the BadPayload of a product that could not be read
Listed = tuple[str, Product, int] | BadPayload


def _item(
    platform: str,
    p: object,
    normalize: Callable[[dict[str, Any], str], Product],
    version_field: str,
) -> Listed:
    try:
        if not isinstance(p, dict):
            raise BadPayload("a listed product is not an object")
        pid = product_id(p.get("id"), numeric=True)
        return platform, normalize(p, pid), parse_time(p.get(version_field), version_field)
    except BadPayload as e:
        return e


def shopify_products(store: StoreConfig, page_size: int | None = None) -> Iterator[Listed]:
    """Through the GraphQL Admin API: cursor pages for small catalogs, a bulk operation from
    SHOPIFY_BULK_THRESHOLD products on (0: always bulk), so a large catalog is not read
    through the Admin API's throttle page by page (docs/design.md, Shopify stock)."""
    from app.platforms.shopify_admin import (
        PRODUCTS_PER_PAGE,
        AdminClient,
        normalize_admin,
        to_rest,
    )

    client = AdminClient(store, wait=True)
    threshold = store.shopify_bulk_threshold
    bulk = threshold == 0 or client.count() >= threshold
    nodes = client.bulk() if bulk else client.pages(page_size or PRODUCTS_PER_PAGE)
    for node in nodes:
        try:
            rest = to_rest(node)
        except BadPayload as e:
            yield e
            continue
        yield _item("shopify", rest, normalize_admin, "updated_at")


def woocommerce_products(store: StoreConfig, page_size: int = WOO_PAGE_SIZE) -> Iterator[Listed]:
    session = woocommerce_session(store)
    for items in woocommerce_pages(
        session, store.woocommerce_products_url, "WooCommerce", per_page=page_size
    ):
        for p in items:
            yield _woocommerce_item(session, store, p)


def _woocommerce_item(session: StoreSession, store: StoreConfig, p: Any) -> Listed:
    """A listed product; a variable one is priced from its variations (one more call), and
    versioned by the newest of its own and its variations' `date_modified_gmt` (a variation's
    price change need not touch the parent's date)."""
    from app.platforms.woocommerce import needs_variations, normalize

    if not (isinstance(p, dict) and needs_variations(p)):
        return _item("woocommerce", p, normalize, "date_modified_gmt")
    try:
        pid = product_id(p.get("id"), numeric=True)
    except BadPayload as e:
        return e
    variations = woocommerce_variations(session, store, pid)
    item = _item("woocommerce", p, partial(normalize, variations=variations), "date_modified_gmt")
    if isinstance(item, BadPayload):
        return item
    try:
        newest = max(
            [item[2]]
            + [
                parse_time(v["date_modified_gmt"], "date_modified_gmt")
                for v in variations
                if v.get("date_modified_gmt")
            ]
        )
    except BadPayload as e:
        return e
    return item[0], item[1], newest


def bigcommerce_products(store: StoreConfig, page_size: int = 250) -> Iterator[Listed]:
    from app.platforms.bigcommerce import normalize

    session = bigcommerce_session(store)
    base = store.bigcommerce_products_url
    with_url = partial(normalize, storefront=bigcommerce_storefront(session, store))
    url = f"{base}?include=variants,images"
    for items in bigcommerce_pages(session, url, "BigCommerce", limit=page_size):
        for p in items:
            yield _item("bigcommerce", p, with_url, "date_modified")


def store_products(store: StoreConfig, page_size: int | None = None) -> Iterator[Listed]:
    """Every product of every platform this store has API access to."""
    kw = {"page_size": page_size} if page_size else {}
    if store.shopify_api:
        yield from shopify_products(store, **kw)
    if store.woocommerce_api:
        yield from woocommerce_products(store, **kw)
    if store.bigcommerce_api:
        yield from bigcommerce_products(store, **kw)


def has_catalog_api(store: StoreConfig) -> bool:
    return bool(store.shopify_api or store.woocommerce_api or store.bigcommerce_api)
