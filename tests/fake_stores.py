"""Minimal store REST APIs for tests (the external systems the worker refetches products
from): WooCommerce `GET /wp-json/wc/v3/products/<id>` with Basic auth, BigCommerce
`GET /stores/<hash>/v3/catalog/products/<id>` with `X-Auth-Token`."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY, SECRET = "ck_test", "cs_test"
BC_HASH, BC_TOKEN = "abc123", "bc-token-test"


class FakeStoreAPI:
    """Serves `products[id]` under `prefix`; `status` forces an answer (500, 401, ...)."""

    def __init__(self, prefix: str, auth_header: str, auth_value: str,
                 wrap: bool = False) -> None:
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
                status, body = 404, {"code": "not_found"}
                if self.headers.get(auth_header) != auth_value:
                    status, body = 401, {"code": "unauthorized"}
                elif fake.status:
                    status, body = fake.status, {"code": "forced"}
                elif path.startswith(prefix) and path[len(prefix):].isdigit():
                    p = fake.products.get(int(path[len(prefix):]))
                    if p is not None:
                        status, body = 200, ({"data": p} if wrap else p)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_woo() -> FakeStoreAPI:
    basic = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    return FakeStoreAPI("/wp-json/wc/v3/products/", "Authorization", basic)


def fake_bigcommerce() -> FakeStoreAPI:
    return FakeStoreAPI(f"/stores/{BC_HASH}/v3/catalog/products/", "X-Auth-Token", BC_TOKEN,
                        wrap=True)
