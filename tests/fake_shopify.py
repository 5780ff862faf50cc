"""A fake Shopify GraphQL Admin API over real HTTP, answering the queries of
app/platforms/shopify_admin.py in Shopify's response shapes:

* `POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token`; a wrong token gets
  Shopify's 401 body (`{"errors": "[API] Invalid API key or access token ..."}`).
* `{"data": ..., "extensions": {"cost": {"requestedQueryCost", "actualQueryCost",
  "throttleStatus": {"maximumAvailable", "currentlyAvailable", "restoreRate"}}}}` on every
  answer; a leaky bucket (requested cost must be available, the actual cost is taken) and
  `{"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}` with
  `actualQueryCost: null` when it is not (shopify.dev/docs/apps/build/apis/graphql-admin/
  rate-limits; community.shopify.com/t/graphql-admin-api-example-throttled-requests-response/
  8456). Queries over 1,000 points get `MAX_COST_EXCEEDED`. Costs follow Shopify's published
  rules (object 1, scalar 0, connection 2 + the objects it asks for), counted by hand for the
  queries we send.
* `product(id:)` (null for an unknown id), `products(first:, after:)` with `pageInfo`,
  `productsCount`, `bulkOperationRunQuery` -> `node(id:)` polling (CREATED, RUNNING,
  COMPLETED with `url`) -> a JSONL file where each variant is a line of its own with
  `__parentId` (shopify.dev/docs/api/usage/bulk-operations/queries), grouped under its
  product or interleaved (`bulk_grouped`).

Product nodes use the field names of shopify.dev/docs/api/admin-graphql/2025-10/objects/
Product and ProductVariant (`status` ACTIVE/DRAFT/ARCHIVED, `inventoryPolicy` DENY/CONTINUE,
money as decimal strings)."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.config import SHOPIFY_API_VERSION
from tests.constants import SHOPIFY_TOKEN

MAX_QUERY_COST = 1000


def gql_variant(
    vid: int,
    *,
    price: str = "199.00",
    compare: str | None = None,
    qty: int = 10,
    policy: str = "DENY",
    tracked: bool = True,
    sku: str | None = None,
    position: int = 1,
    available: bool | None = None,
) -> dict[str, Any]:
    """A ProductVariant node; `availableForSale` as Shopify computes it unless given."""
    if available is None:
        available = (not tracked) or qty > 0 or policy == "CONTINUE"
    return {
        "id": f"gid://shopify/ProductVariant/{vid}",
        "legacyResourceId": str(vid),
        "sku": sku if sku is not None else f"SKU-{vid}",
        "price": price,
        "compareAtPrice": compare,
        "position": position,
        "availableForSale": available,
        "inventoryQuantity": qty,
        "inventoryPolicy": policy,
        "inventoryItem": {"tracked": tracked},
    }


def gql_product(
    pid: int,
    *,
    title: str = "IPod Nano",
    at: str = "2026-01-01T12:00:00Z",
    status: str = "ACTIVE",
    published: bool = True,
    variants: list[dict[str, Any]] | None = None,
    image: str | None = "https://cdn.shopify.com/ipod.png",
) -> dict[str, Any]:
    if variants is None:
        variants = [gql_variant(pid * 10 + 1, sku=f"SKU-{pid}")]
    return {
        "id": f"gid://shopify/Product/{pid}",
        "legacyResourceId": str(pid),
        "title": title,
        "handle": f"product-{pid}",
        "descriptionHtml": "<p>It's <b>small</b>.</p>",
        "vendor": "Apple",
        "productType": "Cult Products",
        "status": status,
        "tags": ["Emotive", "Flash Memory"],
        "publishedAt": "2025-01-01T00:00:00Z" if published else None,
        "updatedAt": at,
        "featuredMedia": {"preview": {"image": {"url": image}}} if image else None,
        "variants": {"nodes": variants},
    }


class FakeShopify:
    def __init__(
        self,
        *,
        version: str = SHOPIFY_API_VERSION,
        bucket: float = 1000.0,
        restore: float = 10_000.0,
    ) -> None:
        self.version = version
        self.products: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []  # {"op", "variables", "version"}
        self.answers: list[str] = []  # "ok", "throttled", ... per GraphQL request
        self.downloads: list[dict[str, str]] = []  # headers of JSONL downloads
        self.bucket, self.restore = bucket, restore
        self.available, self.stamp = bucket, time.monotonic()
        self.throttle_next = 0  # force this many THROTTLED answers
        self.bulk_polls = 2  # polls that answer RUNNING before COMPLETED
        self.bulk_grouped = True
        self.bulk_user_error: str | None = None
        self.bulk_status = "COMPLETED"
        self._bulk: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                m = re.fullmatch(r"/admin/api/([^/]+)/graphql\.json", self.path)
                if self.headers.get("X-Shopify-Access-Token") != SHOPIFY_TOKEN:
                    self._send(
                        401,
                        {
                            "errors": "[API] Invalid API key or access token "
                            "(unrecognized login or wrong password)"
                        },
                    )
                elif not m or m.group(1) != fake.version:
                    self._send(404, {"errors": "Not Found"})
                else:
                    self._send(200, fake.answer(json.loads(body), m.group(1)))

            def do_GET(self) -> None:
                m = re.fullmatch(r"/bulk/(\d+)\.jsonl", self.path)
                if not m:
                    self._send(404, {"errors": "Not Found"})
                    return
                fake.downloads.append(dict(self.headers))
                data = fake.jsonl().encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/jsonl")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
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

    def ops(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["op"] == name]

    # -- GraphQL ---------------------------------------------------------------------------

    def answer(self, req: dict[str, Any], version: str) -> dict[str, Any]:
        query, variables = req.get("query", ""), req.get("variables") or {}
        m = re.search(r"\b(?:query|mutation)\s+(\w+)", query)
        op = m.group(1) if m else "anonymous"
        self.requests.append({"op": op, "variables": variables, "version": version})
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            return {"errors": [{"message": f"unknown operation {op}"}]}
        requested, run = handler(variables)
        with self._lock:
            now = time.monotonic()
            self.available = min(self.bucket, self.available + (now - self.stamp) * self.restore)
            self.stamp = now
            if requested > MAX_QUERY_COST:
                self.answers.append("max_cost")
                return {
                    "errors": [
                        {
                            "message": (
                                f"Query cost is {requested}, which exceeds the single query "
                                f"max cost limit ({MAX_QUERY_COST})."
                            ),
                            "extensions": {
                                "code": "MAX_COST_EXCEEDED",
                                "cost": requested,
                                "maxCost": MAX_QUERY_COST,
                            },
                        }
                    ]
                }
            if self.throttle_next > 0 or requested > self.available:
                if self.throttle_next > 0:
                    self.throttle_next -= 1
                    self.available = 0.0
                self.answers.append("throttled")
                return {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": {"cost": self._cost(requested, None)},
                }
            data, actual = run()
            self.available -= actual
            self.answers.append("ok")
            return {"data": data, "extensions": {"cost": self._cost(requested, actual)}}

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.bucket,
                "currentlyAvailable": round(self.available, 1),
                "restoreRate": self.restore,
            },
        }

    @staticmethod
    def _page(items: list[Any], first: int, after: str | None) -> tuple[list[Any], dict]:
        start = int(after) if after else 0
        page = items[start : start + first]
        end = start + len(page)
        return page, {"hasNextPage": end < len(items), "endCursor": str(end) if page else None}

    def _node(self, p: dict[str, Any], variants: int, after: str | None) -> tuple[dict, int]:
        node = copy.deepcopy({k: v for k, v in p.items() if k != "variants"})
        page, info = self._page(p["variants"]["nodes"], variants, after)
        node["variants"] = {"pageInfo": info, "nodes": copy.deepcopy(page)}
        return node, 1 + 3 + 2 + 2 * len(page)  # product, featured media/preview/image

    def _op_ShopifyProduct(self, v: dict[str, Any]):
        requested = 1 + 3 + 2 + 2 * v["variants"]
        pid = int(str(v["id"]).rsplit("/", 1)[-1])

        def run():
            p = self.products.get(pid)
            if p is None:
                return {"product": None}, 1
            node, actual = self._node(p, v["variants"], v.get("variantsAfter"))
            return {"product": node}, actual

        return requested, run

    def _op_ShopifyProducts(self, v: dict[str, Any]):
        requested = 2 + v["first"] * (1 + 3 + 2 + 2 * v["variants"])

        def run():
            items = [self.products[k] for k in sorted(self.products)]
            page, info = self._page(items, v["first"], v.get("after"))
            nodes, actual = [], 2
            for p in page:
                node, cost = self._node(p, v["variants"], None)
                nodes.append(node)
                actual += cost
            return {"products": {"pageInfo": info, "nodes": nodes}}, actual

        return requested, run

    def _op_ShopifyProductsCount(self, v: dict[str, Any]):
        n = len(self.products)
        return 1, lambda: (
            {
                "productsCount": {
                    "count": min(n, 10_000),
                    "precision": "EXACT" if n <= 10_000 else "AT_LEAST",
                }
            },
            1,
        )

    def _op_ShopifyBulkRun(self, v: dict[str, Any]):
        def run():
            if self.bulk_user_error:
                return {
                    "bulkOperationRunQuery": {
                        "bulkOperation": None,
                        "userErrors": [{"field": None, "message": self.bulk_user_error}],
                    }
                }, 10
            op_id = f"gid://shopify/BulkOperation/{len(self._bulk) + 1}"
            self._bulk[op_id] = {"polls": 0, "query": v["query"]}
            return {
                "bulkOperationRunQuery": {
                    "bulkOperation": {"id": op_id, "status": "CREATED"},
                    "userErrors": [],
                }
            }, 10

        return 10, run

    def _op_ShopifyBulkPoll(self, v: dict[str, Any]):
        def run():
            op = self._bulk.get(v["id"])
            if op is None:
                return {"node": None}, 1
            op["polls"] += 1
            done = op["polls"] > self.bulk_polls
            status = self.bulk_status if done else "RUNNING"
            n = len(self._bulk)
            lines = sum(1 + len(p["variants"]["nodes"]) for p in self.products.values())
            return {
                "node": {
                    "id": v["id"],
                    "status": status,
                    "errorCode": "INTERNAL_SERVER_ERROR" if status == "FAILED" else None,
                    "objectCount": str(lines if done else lines // 2),
                    "url": f"{self.url}/bulk/{n}.jsonl"
                    if status == "COMPLETED" and lines
                    else None,
                    "partialDataUrl": None,
                }
            }, 1

        return 1, run

    def jsonl(self) -> str:
        """Products, then their variants with `__parentId`: each variant right after its
        product (grouped), or a batch of products before their variants (interleaved)."""
        parents, children = [], []
        for k in sorted(self.products):
            p = copy.deepcopy(self.products[k])
            variants = p.pop("variants")["nodes"]
            p["variantsCount"] = {"count": len(variants)}
            parents.append(p)
            children.append([dict(v, __parentId=p["id"]) for v in variants])
        out: list[dict[str, Any]] = []
        if self.bulk_grouped:
            for p, kids in zip(parents, children, strict=True):
                out += [p, *kids]
        else:
            for i in range(0, len(parents), 3):
                out += parents[i : i + 3]
                out += [c for kids in children[i : i + 3] for c in kids]
        return "".join(json.dumps(line) + "\n" for line in out)
