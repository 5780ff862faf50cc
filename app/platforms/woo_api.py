"""WooCommerce REST API (v3), read-only: fetch a product when a webhook does not carry its
state (variation events name only the variation)."""

from __future__ import annotations

from typing import Any

import requests

from app.config import StoreConfig


class StoreFetchError(Exception):
    """The store could not tell us the product's state. `permanent` errors (bad keys, a
    malformed answer) are not retried; the rest are, like a Personyze 500."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class WooClient:
    def __init__(self, store: StoreConfig, timeout: tuple[float, float] = (3.05, 15.0)) -> None:
        assert store.woocommerce_api
        self.base = f"{store.woocommerce_url}/wp-json/wc/v3"
        self.session = requests.Session()
        self.session.auth = (
            store.woocommerce_consumer_key.get_secret_value(),  # type: ignore[union-attr]
            store.woocommerce_consumer_secret.get_secret_value(),  # type: ignore[union-attr]
        )
        self.session.headers["Accept"] = "application/json"
        self.timeout = timeout

    def product(self, pid: str) -> dict[str, Any] | None:
        """The product as its webhook would show it; None when it no longer exists."""
        try:
            resp = self.session.get(f"{self.base}/products/{int(pid)}", timeout=self.timeout)
        except requests.RequestException as e:
            raise StoreFetchError(f"WooCommerce unreachable: {type(e).__name__}") from None
        if resp.status_code == 404:
            return None
        if resp.status_code in (401, 403):
            raise StoreFetchError(f"WooCommerce refused the API keys ({resp.status_code})",
                                  permanent=True)
        if resp.status_code != 200:
            raise StoreFetchError(f"WooCommerce answered {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise StoreFetchError("WooCommerce answered malformed JSON", permanent=True) from None
        if not isinstance(data, dict):
            raise StoreFetchError("WooCommerce answered a non-object", permanent=True)
        if data.get("status") == "trash":
            return None
        return data

    def close(self) -> None:
        self.session.close()
