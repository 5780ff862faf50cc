"""Read-only store APIs, for deliveries that say a product changed without carrying its state
(WooCommerce variation events, every BigCommerce webhook): the worker fetches the product
as it is now, so the write is at least as new as the event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from app.config import StoreConfig
from app.core.model import BadPayload, Product

Fetcher = Callable[[str], Product | None]


class StoreFetchError(Exception):
    """The store could not tell us the product's state. `permanent` errors (bad keys, a
    malformed answer) are not retried; the rest are, like a Personyze 500."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def get(session: requests.Session, url: str, what: str) -> tuple[Any, requests.Response] | None:
    """GET JSON; None for 404. Errors never carry the credentials."""
    try:
        resp = session.get(url, timeout=(3.05, 15.0))
    except requests.RequestException as e:
        raise StoreFetchError(f"{what} unreachable: {type(e).__name__}") from None
    if resp.status_code == 404:
        return None
    if resp.status_code in (401, 403):
        raise StoreFetchError(f"{what} refused the API keys ({resp.status_code})", permanent=True)
    if resp.status_code != 200:
        raise StoreFetchError(f"{what} answered {resp.status_code}")
    try:
        return resp.json(), resp
    except ValueError:
        raise StoreFetchError(f"{what} answered malformed JSON", permanent=True) from None


def get_json(session: requests.Session, url: str, what: str) -> dict[str, Any] | None:
    """GET a JSON object; None for 404."""
    got = get(session, url, what)
    if got is None:
        return None
    if not isinstance(got[0], dict):
        raise StoreFetchError(f"{what} answered a non-object", permanent=True)
    return got[0]


def _normalized(normalize: Callable[[dict[str, Any], str], Product], data: dict[str, Any],
                pid: str, what: str) -> Product:
    try:
        return normalize(data, pid)
    except BadPayload as e:
        raise StoreFetchError(f"{what} product has an unexpected shape: {e}",
                              permanent=True) from None


def woocommerce_session(store: StoreConfig) -> requests.Session:
    session = requests.Session()
    session.auth = (
        store.woocommerce_consumer_key.get_secret_value(),  # type: ignore[union-attr]
        store.woocommerce_consumer_secret.get_secret_value(),  # type: ignore[union-attr]
    )
    return session


def bigcommerce_session(store: StoreConfig) -> requests.Session:
    session = requests.Session()
    token = store.bigcommerce_access_token.get_secret_value()  # type: ignore[union-attr]
    session.headers.update({"X-Auth-Token": token, "Accept": "application/json"})
    return session


def shopify_session(store: StoreConfig) -> requests.Session:
    session = requests.Session()
    token = store.shopify_admin_token.get_secret_value()  # type: ignore[union-attr]
    session.headers.update({"X-Shopify-Access-Token": token, "Accept": "application/json"})
    return session


def woocommerce_fetcher(store: StoreConfig) -> Fetcher:
    from app.platforms.woocommerce import normalize

    session = woocommerce_session(store)
    base = store.woocommerce_products_url

    def fetch(pid: str) -> Product | None:
        data = get_json(session, f"{base}/{int(pid)}", "WooCommerce")
        if data is None or data.get("status") == "trash":
            return None
        return _normalized(normalize, data, pid, "WooCommerce")

    return fetch


def bigcommerce_fetcher(store: StoreConfig) -> Fetcher:
    from app.platforms.bigcommerce import normalize

    session = bigcommerce_session(store)
    base = store.bigcommerce_products_url

    def fetch(pid: str) -> Product | None:
        data = get_json(session, f"{base}/{int(pid)}?include=variants,images", "BigCommerce")
        if data is None:
            return None
        product = data.get("data")
        if not isinstance(product, dict):
            raise StoreFetchError("BigCommerce answered without data", permanent=True)
        return _normalized(normalize, product, pid, "BigCommerce")

    return fetch


def shopify_fetcher(store: StoreConfig) -> Fetcher:
    """The product as Shopify has it now, through the GraphQL Admin API (app/platforms/
    shopify_admin.py); None when it no longer exists. Throttled: `Throttled`, retried later."""
    from app.platforms.shopify_admin import AdminClient

    return AdminClient(store).product


FETCHERS: dict[str, Callable[[StoreConfig], Fetcher]] = {
    "woocommerce": woocommerce_fetcher,
    "bigcommerce": bigcommerce_fetcher,
    "shopify": shopify_fetcher,
}


def can_verify(store: StoreConfig, platform: str) -> bool:
    """Whether webhook products of `platform` (`Product.verify_with`) can be re-read from its
    Admin API for this store (docs/design.md, Shopify stock)."""
    return platform == "shopify" and bool(store.shopify_api)
