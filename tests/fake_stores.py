"""Minimal store REST APIs for tests (the external systems the worker refetches products
from and reconciliation lists), answering in the platforms' own shapes:

* WooCommerce `/wp-json/wc/v3/products[/<id>[/variations]]` with Basic auth (page/per_page,
  `X-WP-Total`/`X-WP-TotalPages`); a missing product is WooCommerce's
  `woocommerce_rest_product_invalid_id` 404, an unknown route WordPress's `rest_no_route`.
* BigCommerce `/stores/<hash>/v3/catalog/products[/<id>]` with `X-Auth-Token` (page/limit,
  meta.pagination), `/stores/<hash>/v2/store`; a missing product is its NotFound JSON body.
* Shopify REST `/admin/api/<v>/products.json` (only as a redirect target in the store-session
  tests; the GraphQL Admin API fake is tests/fake_shopify.py) (limit, Link header
  cursor); a missing product is `{"errors": "Not Found"}`.

`status` forces an answer (500, 401, ...), `path_status` one path's; `redirects` maps a path
prefix to a Location (an absolute URL or a path on the same server) answered with 302."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.constants import BC_HASH, BC_TOKEN, SHOPIFY_TOKEN, WOO_CONSUMER_KEY, WOO_CONSUMER_SECRET

FIXTURES = Path(__file__).parent / "fixtures"

# WC_REST_CRUD_Controller::get_item for an unknown id; WP_REST_Server for an unknown route.
WOO_NOT_FOUND = {
    "code": "woocommerce_rest_product_invalid_id",
    "message": "Invalid ID.",
    "data": {"status": 404},
}
WOO_NO_ROUTE = {
    "code": "rest_no_route",
    "message": "No route was found matching the URL and request method.",
    "data": {"status": 404},
}
# BigCommerce's NotFound schema (reference/catalog/products_catalog.v3.yml).
BC_NOT_FOUND = {
    "status": 404,
    "title": "The requested resource was not found.",
    "type": "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes",
}


class FakeStoreAPI:
    """Serves `products[id]` under `prefix` (and `variations[id]`, `store_info`)."""

    def __init__(
        self,
        prefix: str,
        auth_header: str,
        auth_value: str,
        wrap: bool = False,
        list_style: str = "woo",
        not_found: Any = None,
        no_route: Any = None,
    ) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.variations: dict[int, list[dict[str, Any]]] = {}
        self.store_info: dict[str, Any] | None = None
        self.store_info_path: str | None = None
        self.status: int | None = None
        self.path_status: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        self.html_paths: set[str] = set()  # answered 200 with an HTML page (a site's theme)
        self.listing_body: Any = None  # when set, every listing page answers this instead
        self.requests: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.not_found = not_found if not_found is not None else {"errors": "Not Found"}
        self.no_route = no_route if no_route is not None else self.not_found
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append(self.path)
                fake.headers_seen.append(dict(self.headers.items()))
                path = self.path.split("?", 1)[0]
                extra: dict[str, str] = {}
                status, body = 404, fake.no_route
                tail = path[len(prefix) :] if path.startswith(prefix) else None
                redirect = next((v for k, v in fake.redirects.items() if path.startswith(k)), None)
                if redirect is not None:
                    status, body = 302, {}
                    extra["Location"] = redirect
                elif self.headers.get(auth_header) != auth_value:
                    status, body = 401, {"code": "unauthorized"}
                elif fake.status or path in fake.path_status:
                    status, body = fake.status or fake.path_status[path], {"code": "forced"}
                elif tail is not None and tail.isdigit():
                    p = fake.products.get(int(tail))
                    status, body = 404, fake.not_found
                    if p is not None:
                        status, body = 200, ({"data": p, "meta": {}} if wrap else p)
                elif (
                    tail is not None
                    and tail.endswith("/variations")
                    and tail.split("/")[0].isdigit()
                ):
                    status, body, pages = (
                        200,
                        *fake.variation_page(int(tail.split("/")[0]), self.path),
                    )
                    extra.update(pages)
                elif path == fake.store_info_path and fake.store_info is not None:
                    status, body = 200, fake.store_info
                elif path.rstrip("/") + "/" == prefix or path.endswith("/products.json"):
                    status, body, link = 200, *fake.listing(self.path)
                    if fake.listing_body is not None:
                        body, link = fake.listing_body, None
                    if link:
                        extra["Link"] = link
                data = json.dumps(body).encode()
                if redirect is None and path in fake.html_paths:
                    status, data = 200, b"<!DOCTYPE html><html><body>Just another site</body>"
                    extra["Content-Type"] = "text/html; charset=UTF-8"
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if "Content-Type" not in extra:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.list_style = list_style
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def variation_page(self, pid: int, raw_path: str) -> tuple[Any, dict[str, str]]:
        """One page of a product's variations, WooCommerce style (per_page, page, X-WP-*)."""
        q = {k: v[0] for k, v in parse_qs(urlsplit(raw_path).query).items()}
        size, n = int(q.get("per_page", 10)), int(q.get("page", 1))
        items = self.variations.get(pid, [])
        pages = max(1, -(-len(items) // size))
        return items[(n - 1) * size : n * size], {
            "X-WP-Total": str(len(items)),
            "X-WP-TotalPages": str(pages),
        }

    def listing(self, raw_path: str) -> tuple[Any, str | None]:
        """One page of the product list, in the platform's own pagination style."""
        q = {k: v[0] for k, v in parse_qs(urlsplit(raw_path).query).items()}
        items = [self.products[k] for k in sorted(self.products)]
        if self.list_style == "shopify":
            size, start = int(q.get("limit", 50)), int(q.get("page_info", 0))
            page = items[start : start + size]
            nxt = None
            if start + size < len(items):
                base = raw_path.split("?", 1)[0]
                nxt = f'<{self.url}{base}?limit={size}&page_info={start + size}>; rel="next"'
            return {"products": page}, nxt
        size = int(q.get("per_page", q.get("limit", 10)))
        n = int(q.get("page", 1))
        page = items[(n - 1) * size : n * size]
        if self.list_style == "bigcommerce":
            pages = max(1, -(-len(items) // size))
            return {"data": page, "meta": {"pagination": {"total_pages": pages}}}, None
        return page, None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_woo(path: str = "") -> FakeStoreAPI:
    """A WordPress site at `path` (e.g. "/Shop": paths are case-sensitive, as on a server)."""
    basic = (
        "Basic " + base64.b64encode(f"{WOO_CONSUMER_KEY}:{WOO_CONSUMER_SECRET}".encode()).decode()
    )
    return FakeStoreAPI(
        f"{path}/wp-json/wc/v3/products/",
        "Authorization",
        basic,
        not_found=WOO_NOT_FOUND,
        no_route=WOO_NO_ROUTE,
    )


def fake_bigcommerce() -> FakeStoreAPI:
    api = FakeStoreAPI(
        f"/stores/{BC_HASH}/v3/catalog/products/",
        "X-Auth-Token",
        BC_TOKEN,
        wrap=True,
        list_style="bigcommerce",
        not_found=BC_NOT_FOUND,
    )
    api.store_info_path = f"/stores/{BC_HASH}/v2/store"
    api.store_info = json.loads((FIXTURES / "bigcommerce/store_information.json").read_text())[
        "payload"
    ]  # secure_url https://my-awesome.store
    return api


def fake_shopify() -> FakeStoreAPI:
    return FakeStoreAPI(
        "/admin/api/2025-01/products/",
        "X-Shopify-Access-Token",
        SHOPIFY_TOKEN,
        list_style="shopify",
    )
