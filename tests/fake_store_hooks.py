"""Store webhook-subscription APIs for tests: real HTTP servers that keep subscription state
and answer in each platform's shapes.

Shapes and sources:
- Shopify GraphQL Admin API `webhookSubscriptions` (a connection: `edges { node }`,
  `pageInfo { hasNextPage endCursor }`) and `webhookSubscriptionCreate` (`webhookSubscription`,
  `userErrors { field message }`), from shopify.dev/docs/api/admin-graphql/2025-10
  (queries/webhookSubscriptions, mutations/webhookSubscriptionCreate, objects/
  WebhookSubscription: `uri`, deprecated `endpoint` union with `WebhookHttpEndpoint.callbackUrl`).
  The 401 body `{"errors": "[API] Invalid API key or access token ..."}` is Shopify's REST/GraphQL
  answer to a bad token; "Address for this topic has already been taken" is its userError for
  a duplicate (both quoted widely in Shopify's community forums; the exact wording is not
  relied on by the code).
- WooCommerce REST `/wp-json/wc/v3/webhooks` (developer.woocommerce.com/docs/apis/rest-api/v3/
  webhooks): objects with id, name, status (active|paused|disabled), topic, resource, event,
  hooks, delivery_url, date_created(_gmt), date_modified(_gmt); `secret` is write-only (edit
  context). Pagination headers X-WP-Total / X-WP-TotalPages (WordPress REST). A read-only key
  gets 401 `woocommerce_rest_authentication_error` on POST/PUT
  (WC_REST_Authentication::check_permissions in woocommerce/woocommerce).
- BigCommerce `/stores/{hash}/v3/hooks` (developer.bigcommerce.com/docs/integrations/webhooks,
  bigcommerce/docs overview.mdx): `{data, meta}`, hooks with id, client_id, store_hash, scope,
  destination, headers, is_active, created_at, updated_at; meta.pagination as in the catalog
  API. The status of a duplicate (scope, destination) create is not documented: 422 here is
  inferred.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.constants import (
    HOOKS_BC_HASH,
    HOOKS_BC_TOKEN,
    HOOKS_SHOPIFY_TOKEN,
    HOOKS_WOO_KEY,
    HOOKS_WOO_RO_KEY,
    HOOKS_WOO_RO_SECRET,
    HOOKS_WOO_SECRET,
)

_ids = itertools.count(1001)


class _Server:
    """A ThreadingHTTPServer whose handler calls `self.handle(method, path, headers, body)`;
    every request is recorded as (method, path)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.force: int | None = None  # answer every request with this status
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                fake.requests.append((self.command, self.path))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                if fake.force:
                    status, data, extra = fake.force, {"errors": "forced"}, {}
                else:
                    with fake.lock:
                        status, data, extra = fake.handle(
                            self.command, self.path, self.headers, body
                        )
                out = json.dumps(data).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(
        self, method: str, path: str, headers: Any, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


class FakeShopifyHooks(_Server):
    """`subs` maps gid -> {"topic", "uri"}; `legacy_nodes` answers nodes without `uri` (only
    `endpoint.callbackUrl`), as subscriptions read through an older API version look."""

    TOPICS = {
        "PRODUCTS_CREATE",
        "PRODUCTS_UPDATE",
        "PRODUCTS_DELETE",
        "ORDERS_CREATE",
        "APP_UNINSTALLED",
    }

    def __init__(self, page_size: int = 100) -> None:
        self.subs: dict[str, dict[str, str]] = {}
        self.page_size = page_size
        self.legacy_nodes = False
        self.mutations: list[tuple[str, str]] = []
        super().__init__()

    def writes(self) -> list[tuple[str, str]]:
        """GraphQL reads are POSTs too: the writes are the mutations."""
        return self.mutations

    def add(self, topic: str, uri: str) -> str:
        gid = f"gid://shopify/WebhookSubscription/{next(_ids)}"
        self.subs[gid] = {"topic": topic, "uri": uri}
        return gid

    def _node(self, gid: str) -> dict[str, Any]:
        s = self.subs[gid]
        node: dict[str, Any] = {
            "id": gid,
            "topic": s["topic"],
            "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": s["uri"]},
        }
        if not self.legacy_nodes:
            node["uri"] = s["uri"]
        return node

    def handle(self, method, path, headers, body):
        if not re.fullmatch(r"/admin/api/\d{4}-\d{2}/graphql\.json", urlsplit(path).path):
            return 404, {"errors": "Not Found"}, {}
        if headers.get("X-Shopify-Access-Token") != HOOKS_SHOPIFY_TOKEN:
            return (
                401,
                {
                    "errors": "[API] Invalid API key or access token (unrecognized login "
                    "or wrong password)"
                },
                {},
            )
        if method != "POST" or not isinstance(body, dict):
            return 400, {"errors": {"query": "Required parameter missing or invalid"}}, {}
        query, var = body.get("query", ""), body.get("variables") or {}
        cost = {"cost": {"requestedQueryCost": 12, "actualQueryCost": 2}}
        if "webhookSubscriptionCreate" in query:
            self.mutations.append(("mutation", "webhookSubscriptionCreate"))
            return (
                200,
                {"data": {"webhookSubscriptionCreate": self._create(var)}, "extensions": cost},
                {},
            )
        wanted = set(var.get("topics") or self.TOPICS)
        gids = sorted(g for g, s in self.subs.items() if s["topic"] in wanted)
        start = int(var.get("after") or 0)
        page = gids[start : start + self.page_size]
        more = start + self.page_size < len(gids)
        conn = {
            "edges": [{"node": self._node(g)} for g in page],
            "pageInfo": {
                "hasNextPage": more,
                "endCursor": str(start + self.page_size) if page else None,
            },
        }
        return 200, {"data": {"webhookSubscriptions": conn}, "extensions": cost}, {}

    def _create(self, var: dict[str, Any]) -> dict[str, Any]:
        topic, sub = var.get("topic"), var.get("sub") or {}
        uri = sub.get("uri") or sub.get("callbackUrl") or ""
        errors = []
        if topic not in self.TOPICS:
            errors.append({"field": ["topic"], "message": "Topic is invalid"})
        elif not (uri.startswith("https://") or uri.startswith("http://127.0.0.1")):
            errors.append(
                {
                    "field": ["webhookSubscription", "callbackUrl"],
                    "message": "Address protocol http:// is not supported",
                }
            )
        elif any(s["topic"] == topic and s["uri"] == uri for s in self.subs.values()):
            errors.append(
                {
                    "field": ["webhookSubscription", "callbackUrl"],
                    "message": "Address for this topic has already been taken",
                }
            )
        if errors:
            return {"webhookSubscription": None, "userErrors": errors}
        gid = self.add(topic, uri)
        return {"webhookSubscription": {"id": gid, "topic": topic, "uri": uri}, "userErrors": []}


class FakeWooHooks(_Server):
    """`hooks` maps id -> the stored webhook (including its write-only `secret`)."""

    def __init__(self) -> None:
        self.hooks: dict[int, dict[str, Any]] = {}
        super().__init__()

    def add(self, topic: str, url: str, status: str = "active", secret: str = "") -> int:
        wid = next(_ids)
        resource, _, event = topic.partition(".")
        self.hooks[wid] = {
            "id": wid,
            "name": f"hook {wid}",
            "status": status,
            "topic": topic,
            "resource": resource,
            "event": event,
            "hooks": [f"woocommerce_{event}_{resource}"],
            "delivery_url": url,
            "secret": secret,
            "date_created": _now(),
            "date_created_gmt": _now(),
            "date_modified": _now(),
            "date_modified_gmt": _now(),
        }
        return wid

    def _view(self, wid: int) -> dict[str, Any]:
        h = {k: v for k, v in self.hooks[wid].items() if k != "secret"}
        h["_links"] = {"self": [{"href": f"{self.url}/wp-json/wc/v3/webhooks/{wid}"}]}
        return h

    def _auth(self, headers: Any) -> str | None:
        raw = headers.get("Authorization", "")
        if not raw.startswith("Basic "):
            return None
        user, _, pw = base64.b64decode(raw[6:]).decode().partition(":")
        return {
            (HOOKS_WOO_KEY, HOOKS_WOO_SECRET): "read_write",
            (HOOKS_WOO_RO_KEY, HOOKS_WOO_RO_SECRET): "read",
        }.get((user, pw))

    def handle(self, method, path, headers, body):
        parts = urlsplit(path)
        m = re.fullmatch(r"/wp-json/wc/v3/webhooks(?:/(\d+))?", parts.path)
        if not m:
            return (
                404,
                {"code": "rest_no_route", "message": "No route was found", "data": {"status": 404}},
                {},
            )
        perm = self._auth(headers)
        if perm is None:
            return (
                401,
                {
                    "code": "woocommerce_rest_authentication_error",
                    "message": "Consumer key is invalid.",
                    "data": {"status": 401},
                },
                {},
            )
        if method != "GET" and perm == "read":
            return (
                401,
                {
                    "code": "woocommerce_rest_authentication_error",
                    "message": "The API key provided does not have write permissions.",
                    "data": {"status": 401},
                },
                {},
            )
        wid = int(m.group(1)) if m.group(1) else None
        if method == "GET" and wid is None:
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            size, page = int(q.get("per_page", 10)), int(q.get("page", 1))
            ids = sorted(self.hooks)
            chunk = ids[(page - 1) * size : page * size]
            pages = max(1, -(-len(ids) // size))
            return (
                200,
                [self._view(i) for i in chunk],
                {"X-WP-Total": str(len(ids)), "X-WP-TotalPages": str(pages)},
            )
        if method == "POST" and wid is None and isinstance(body, dict):
            new = self.add(
                body["topic"],
                body["delivery_url"],
                body.get("status", "active"),
                body.get("secret", ""),
            )
            if body.get("name"):
                self.hooks[new]["name"] = body["name"]
            return 201, self._view(new), {}
        if wid is not None and wid not in self.hooks:
            return (
                404,
                {
                    "code": "woocommerce_rest_webhook_invalid_id",
                    "message": "Invalid ID.",
                    "data": {"status": 404},
                },
                {},
            )
        if method == "PUT" and wid is not None and isinstance(body, dict):
            for k in ("status", "secret", "delivery_url", "topic", "name"):
                if k in body:
                    self.hooks[wid][k] = body[k]
            self.hooks[wid]["date_modified_gmt"] = _now()
            return 200, self._view(wid), {}
        if method == "GET" and wid is not None:
            return 200, self._view(wid), {}
        return 405, {"code": "rest_no_route", "data": {"status": 405}}, {}


class FakeBigCommerceHooks(_Server):
    """`hooks` maps id -> hook, as the token that created them sees them."""

    def __init__(self) -> None:
        self.hooks: dict[int, dict[str, Any]] = {}
        super().__init__()

    def add(
        self, scope: str, destination: str, active: bool = True, client_id: str = "our-client"
    ) -> int:
        hid = next(_ids)
        now = int(time.time())
        self.hooks[hid] = {
            "id": hid,
            "client_id": client_id,
            "store_hash": HOOKS_BC_HASH,
            "scope": scope,
            "destination": destination,
            "headers": None,
            "is_active": active,
            "created_at": now,
            "updated_at": now,
        }
        return hid

    def handle(self, method, path, headers, body):
        parts = urlsplit(path)
        m = re.fullmatch(rf"/stores/{HOOKS_BC_HASH}/v3/hooks(?:/(\d+))?", parts.path)
        if not m:
            return 404, {"status": 404, "title": "Not Found", "type": "about:blank"}, {}
        if headers.get("X-Auth-Token") != HOOKS_BC_TOKEN:
            return (
                401,
                {
                    "status": 401,
                    "title": "Unauthorized",
                    "type": "https://developer.bigcommerce.com/api-docs/getting-started/"
                    "api-status-codes",
                },
                {},
            )
        hid = int(m.group(1)) if m.group(1) else None
        if method == "GET" and hid is None:
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            size, page = int(q.get("limit", 50)), int(q.get("page", 1))
            ids = sorted(self.hooks)
            chunk = ids[(page - 1) * size : page * size]
            pages = max(1, -(-len(ids) // size))
            meta = {
                "pagination": {
                    "total": len(ids),
                    "count": len(chunk),
                    "per_page": size,
                    "current_page": page,
                    "total_pages": pages,
                    "links": {"current": f"?page={page}&limit={size}"},
                }
            }
            return 200, {"data": [self.hooks[i] for i in chunk], "meta": meta}, {}
        if method == "POST" and hid is None and isinstance(body, dict):
            if any(
                h["scope"] == body.get("scope") and h["destination"] == body.get("destination")
                for h in self.hooks.values()
            ):
                return 422, {"status": 422, "title": "Duplicate webhook"}, {}
            new = self.add(body["scope"], body["destination"], bool(body.get("is_active", True)))
            return 200, {"data": self.hooks[new], "meta": {}}, {}
        if hid is None or hid not in self.hooks:
            return 404, {"status": 404, "title": "Webhook not found"}, {}
        if method == "PUT" and isinstance(body, dict):
            for k in ("is_active", "destination", "scope", "headers"):
                if k in body:
                    self.hooks[hid][k] = body[k]
            self.hooks[hid]["updated_at"] = int(time.time())
            return 200, {"data": self.hooks[hid], "meta": {}}, {}
        return 200, {"data": self.hooks[hid], "meta": {}}, {}
