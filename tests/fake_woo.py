"""A minimal WooCommerce REST API (GET /wp-json/wc/v3/products/<id>) for tests: the external
store the worker refetches a parent product from. Basic auth with consumer key/secret."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY, SECRET = "ck_test", "cs_test"


class FakeWoo:
    def __init__(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.status: int | None = None  # force an answer (500, 401, ...)
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append(self.path)
                want = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
                status, body = 404, {"code": "woocommerce_rest_product_invalid_id"}
                prefix = "/wp-json/wc/v3/products/"
                if self.headers.get("Authorization") != want:
                    status, body = 401, {"code": "woocommerce_rest_cannot_view"}
                elif fake.status:
                    status, body = fake.status, {"code": "forced"}
                elif self.path.startswith(prefix) and self.path[len(prefix):].isdigit():
                    p = fake.products.get(int(self.path[len(prefix):]))
                    if p is not None:
                        status, body = 200, p
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
