"""Minimal store REST APIs for tests (the external systems the worker refetches products
from and reconciliation lists): WooCommerce `/wp-json/wc/v3/products[/<id>]` with Basic auth
(page/per_page), BigCommerce `/stores/<hash>/v3/catalog/products[/<id>]` with `X-Auth-Token`
(page/limit, meta.pagination). Shopify's GraphQL Admin API is tests/fake_shopify.py."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KEY, SECRET = "ck_test", "cs_test"
BC_HASH, BC_TOKEN = "abc123", "bc-token-test"


class FakeStoreAPI:
    """Serves `products[id]` under `prefix`; `status` forces an answer (500, 401, ...)."""

    def __init__(self, prefix: str, auth_header: str, auth_value: str,
                 wrap: bool = False, list_style: str = "woo") -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.status: int | None = None
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                extra: dict[str, str] = {}
                status, body = 404, {"code": "not_found"}
                if self.headers.get(auth_header) != auth_value:
                    status, body = 401, {"code": "unauthorized"}
                elif fake.status:
                    status, body = fake.status, {"code": "forced"}
                elif path.startswith(prefix) and path[len(prefix):].isdigit():
                    p = fake.products.get(int(path[len(prefix):]))
                    if p is not None:
                        status, body = 200, ({"data": p} if wrap else p)
                elif path.rstrip("/") + "/" == prefix or path.endswith("/products.json"):
                    status, body, link = 200, *fake.listing(self.path)
                    if link:
                        extra["Link"] = link
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.list_style = list_style
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def listing(self, raw_path: str) -> tuple[Any, str | None]:
        """One page of the product list, in the platform's own pagination style."""
        q = {k: v[0] for k, v in parse_qs(urlsplit(raw_path).query).items()}
        items = [self.products[k] for k in sorted(self.products)]
        size = int(q.get("per_page", q.get("limit", 10)))
        n = int(q.get("page", 1))
        page = items[(n - 1) * size:n * size]
        if self.list_style == "bigcommerce":
            pages = max(1, -(-len(items) // size))
            return {"data": page, "meta": {"pagination": {"total_pages": pages}}}, None
        return page, None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_woo() -> FakeStoreAPI:
    basic = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    return FakeStoreAPI("/wp-json/wc/v3/products/", "Authorization", basic)


def fake_bigcommerce() -> FakeStoreAPI:
    return FakeStoreAPI(f"/stores/{BC_HASH}/v3/catalog/products/", "X-Auth-Token", BC_TOKEN,
                        wrap=True, list_style="bigcommerce")

