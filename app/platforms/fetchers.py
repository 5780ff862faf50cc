"""The fetcher of each platform: how a worker reads a product as the store has it now
(workers/sync.py). WooCommerce and BigCommerce read REST (app/platforms/fetch.py), Shopify
its GraphQL Admin API (app/platforms/shopify_admin.py), which builds on fetch.py's requests."""

from __future__ import annotations

from collections.abc import Callable

from app.config import StoreConfig
from app.platforms.fetch import Fetcher, bigcommerce_fetcher, woocommerce_fetcher
from app.platforms.shopify_admin import AdminClient


def shopify_fetcher(store: StoreConfig) -> Fetcher:
    """The product as Shopify has it now; None when it no longer exists. Throttled:
    `Throttled`, retried later."""
    return AdminClient(store).product


FETCHERS: dict[str, Callable[[StoreConfig], Fetcher]] = {
    "woocommerce": woocommerce_fetcher,
    "bigcommerce": bigcommerce_fetcher,
    "shopify": shopify_fetcher,
}
