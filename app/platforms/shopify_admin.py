"""Shopify's GraphQL Admin API: the pinned version, the cost-based throttle, the product
queries (one product at sync time, the catalog by pages or by a bulk operation), and the
adapter that turns a GraphQL product into the REST (webhook) shape so that one normalizer,
`shopify.normalize`, maps both (docs/design.md, Shopify stock).

Throttling (shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): every answer carries
`extensions.cost` with the query's requested cost and the bucket's `throttleStatus`
(`currentlyAvailable`, `restoreRate` points per second); a query whose requested cost is not
available is answered `errors[].extensions.code == "THROTTLED"`. A worker never sleeps on it:
`Throttled` carries the seconds until the points are back and the key is retried then. The
catalog reads (scheduler, CLI) wait instead, and pace themselves before each query."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import requests
import structlog

from app.config import StoreConfig
from app.core.model import BadPayload, Product
from app.platforms.fetch import StoreFetchError, normalized, request, shopify_session

log = structlog.get_logger(__name__)

PRODUCT_GID = "gid://shopify/Product/"
TIMEOUT = (3.05, 30.0)
VARIANTS_PER_PRODUCT = 250  # one product at sync time: all variants of nearly every product
# A page of 10 products with 40 variants each asks for 2 + 10 * (6 + 2 * 40) = 862 points:
# under Shopify's 1,000-point limit for one query.
PRODUCTS_PER_PAGE = 10
VARIANTS_PER_LISTED = 40
MAX_WAITS = 20  # throttled answers in a row a catalog read sits out before it gives up
BULK_TIMEOUT = 6 * 3600.0

VARIANT_FIELDS = """id legacyResourceId sku price compareAtPrice position availableForSale
      inventoryQuantity inventoryPolicy inventoryItem { tracked }"""
PRODUCT_FIELDS = """id legacyResourceId title handle descriptionHtml vendor productType status
    tags publishedAt updatedAt featuredMedia { preview { image { url } } }"""
VARIANTS_PAGE = f"""variants(first: $variants, after: $variantsAfter) {{
      pageInfo {{ hasNextPage endCursor }} nodes {{ {VARIANT_FIELDS} }} }}"""

PRODUCT_QUERY = f"""query ShopifyProduct($id: ID!, $variants: Int!, $variantsAfter: String) {{
  product(id: $id) {{ {PRODUCT_FIELDS} {VARIANTS_PAGE} }} }}"""
PRODUCTS_QUERY = f"""query ShopifyProducts($first: Int!, $after: String, $variants: Int!,
  $variantsAfter: String) {{
  products(first: $first, after: $after) {{ pageInfo {{ hasNextPage endCursor }}
    nodes {{ {PRODUCT_FIELDS} {VARIANTS_PAGE} }} }} }}"""
# Counts at least up to 10,000 by default (precision AT_LEAST above): enough to compare
# with the bulk threshold.
COUNT_QUERY = "query ShopifyProductsCount { productsCount { count precision } }"
# Bulk queries take edges/node connections without page sizes; variants come out as lines of
# their own with `__parentId` (shopify.dev/docs/api/usage/bulk-operations/queries).
BULK_QUERY = f"""{{ products {{ edges {{ node {{ {PRODUCT_FIELDS} variantsCount {{ count }}
  variants {{ edges {{ node {{ {VARIANT_FIELDS} }} }} }} }} }} }} }}"""
BULK_RUN = """mutation ShopifyBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } }
}"""
BULK_POLL = """query ShopifyBulkPoll($id: ID!) { node(id: $id) { ... on BulkOperation {
  id status errorCode objectCount url } } }"""


class Throttled(StoreFetchError):
    """Shopify's cost bucket is empty: retry after `retry_after` seconds (not a failure of
    the product, so it does not use up its retry budget)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, status=429, retry_after=retry_after)


def graphql_url(store: StoreConfig) -> str:
    """Every Shopify call goes to the one pinned version (SHOPIFY_API_VERSION)."""
    return f"{store.shopify_api}/admin/api/{store.shopify_api_version}/graphql.json"


class AdminClient:
    """POSTs GraphQL to one store. `wait` (catalog reads) sleeps out throttling; without it
    (the worker) a throttled query raises `Throttled`."""

    def __init__(
        self, store: StoreConfig, *, wait: bool = False, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.session = shopify_session(store)
        self.url = graphql_url(store)
        self.wait = wait
        self.sleep = sleep
        self.throttle: dict[str, Any] | None = None  # the last throttleStatus seen
        self.requested = 0.0  # the last query's requested cost

    def run(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of one query; throttled queries wait (or raise, see the class)."""
        for _ in range(MAX_WAITS):
            if self.wait:
                self.sleep(self._pace())
            try:
                return self._once(query, variables or {})
            except StoreFetchError as e:  # Throttled, or a 429 with Retry-After
                if e.retry_after is None or not self.wait:
                    raise
                log.info("shopify_throttled", wait=round(e.retry_after, 2))
                self.throttle = None  # this wait is the pacing for the retry
                self.sleep(e.retry_after)
        raise StoreFetchError("Shopify kept throttling the catalog read")

    def _pace(self) -> float:
        """Seconds until the bucket holds the last query's requested cost again."""
        t = self.throttle
        if not t:
            return 0.0
        return _seconds_until(self.requested, t)

    def _once(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        got = request(
            self.session, "POST", self.url, "Shopify", body={"query": query, "variables": variables}
        )
        body = got[0] if got else None
        if not isinstance(body, dict):
            raise StoreFetchError("Shopify answered a non-object", permanent=True)
        cost = (body.get("extensions") or {}).get("cost") or {}
        if isinstance(cost, dict):
            self._note_cost(cost)
        errors = body.get("errors")
        if errors:
            raise self._error(errors, cost)
        data = body.get("data")
        if not isinstance(data, dict):
            raise StoreFetchError("Shopify answered without data", permanent=True)
        return data

    def _note_cost(self, cost: dict[str, Any]) -> None:
        status = cost.get("throttleStatus")
        if isinstance(status, dict):
            self.throttle = status
        if isinstance(cost.get("requestedQueryCost"), int | float):
            self.requested = float(cost["requestedQueryCost"])

    def _error(self, errors: Any, cost: Any) -> StoreFetchError:
        first = errors[0] if isinstance(errors, list) and errors else {}
        if not isinstance(first, dict):  # e.g. {"errors": "[API] Invalid API key ..."}
            return StoreFetchError("Shopify refused the query", permanent=True)
        code = (first.get("extensions") or {}).get("code")
        if code == "THROTTLED":
            wait = _seconds_until(self.requested, self.throttle) if self.throttle else 1.0
            return Throttled("Shopify throttled the query", max(wait, 0.5))
        message = str(first.get("message") or code or "error")[:200]
        # Shopify's own failures retry; anything about the query or access will not heal.
        return StoreFetchError(
            f"Shopify GraphQL error: {message}", permanent=code != "INTERNAL_SERVER_ERROR"
        )

    # -- products --------------------------------------------------------------------------

    def product(self, pid: str) -> Product | None:
        """The product as Shopify has it now; None when it no longer exists."""
        data = self.run(
            PRODUCT_QUERY, {"id": f"{PRODUCT_GID}{int(pid)}", "variants": VARIANTS_PER_PRODUCT}
        )
        node = data.get("product")
        if node is None:
            return None
        self._all_variants(node)
        return normalized(lambda n, p: normalize_admin(to_rest(n), p), node, pid, "Shopify")

    def _all_variants(self, node: dict[str, Any]) -> None:
        """Pages through the rest of a product's variants (more than a query's page)."""
        page = node.get("variants") or {}
        nodes = list(page.get("nodes") or [])
        while (page.get("pageInfo") or {}).get("hasNextPage"):
            data = self.run(
                PRODUCT_QUERY,
                {
                    "id": node["id"],
                    "variants": VARIANTS_PER_PRODUCT,
                    "variantsAfter": page["pageInfo"]["endCursor"],
                },
            )
            page = (data.get("product") or {}).get("variants") or {}
            nodes.extend(page.get("nodes") or [])
        node["variants"] = {"nodes": nodes}

    def count(self) -> int:
        data = self.run(COUNT_QUERY)
        got = (data.get("productsCount") or {}).get("count")
        if not isinstance(got, int):
            raise StoreFetchError("Shopify answered productsCount without a count", permanent=True)
        return got

    def pages(self, page_size: int = PRODUCTS_PER_PAGE) -> Iterator[dict[str, Any]]:
        """Every product node, by cursor pages of `page_size` (at most PRODUCTS_PER_PAGE)."""
        page_size = max(1, min(page_size, PRODUCTS_PER_PAGE))
        after: str | None = None
        while True:
            data = self.run(
                PRODUCTS_QUERY,
                {"first": page_size, "after": after, "variants": VARIANTS_PER_LISTED},
            )
            conn = data.get("products") or {}
            for node in conn.get("nodes") or []:
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    self._all_variants(node)
                yield node
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    def bulk(
        self, poll_interval: float = 1.0, timeout: float = BULK_TIMEOUT
    ) -> Iterator[dict[str, Any]]:
        """Every product node, by a bulk operation: start it, poll it, stream its JSONL."""
        data = self.run(BULK_RUN, {"query": BULK_QUERY})
        run = data.get("bulkOperationRunQuery") or {}
        errors = run.get("userErrors") or []
        op = run.get("bulkOperation") or {}
        if errors or not op.get("id"):
            message = errors[0].get("message") if errors and isinstance(errors[0], dict) else ""
            # e.g. another bulk query of this app is still running: the next pass retries
            raise StoreFetchError(f"Shopify did not start the bulk query: {message}"[:300])
        url = self._await(op["id"], poll_interval, timeout)
        if url:
            yield from bulk_nodes(_lines(url))

    def _await(self, op_id: str, interval: float, timeout: float) -> str | None:
        """Polls the operation (by `node(id:)`, which every version has) until it ends."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.run(BULK_POLL, {"id": op_id}).get("node") or {}
            status = node.get("status")
            log.info("shopify_bulk_progress", status=status, objects=node.get("objectCount"))
            if status == "COMPLETED":
                return node.get("url")  # None: the catalog is empty
            if status not in ("CREATED", "RUNNING"):
                raise StoreFetchError(
                    f"Shopify bulk query {status}: {node.get('errorCode') or 'no error code'}"
                )
            if time.monotonic() > deadline:
                raise StoreFetchError("Shopify bulk query did not finish in time")
            self.sleep(interval)
            interval = min(interval * 1.5, 10.0)


def _seconds_until(cost: float, status: dict[str, Any]) -> float:
    try:
        available = float(status.get("currentlyAvailable", 0))
        rate = float(status.get("restoreRate", 0))
    except (TypeError, ValueError):
        return 1.0
    if available >= cost:
        return 0.0
    return (cost - available) / rate if rate > 0 else 1.0


def _lines(url: str) -> Iterator[bytes]:
    """The result file lives on Shopify's storage (a signed URL): fetched without the admin
    token, streamed line by line."""
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT) as resp:
            if resp.status_code != 200:
                raise StoreFetchError(f"Shopify bulk result answered {resp.status_code}")
            yield from (line for line in resp.iter_lines() if line)
    except requests.RequestException as e:
        raise StoreFetchError(f"Shopify bulk result unreachable: {type(e).__name__}") from None


def bulk_nodes(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """JSONL lines -> product nodes with their variants. Variant lines name their product in
    `__parentId`; a product is complete once `variantsCount` of them arrived (so it streams
    whether or not Shopify groups children under their parent), the rest at the end."""
    pending: dict[str, tuple[dict[str, Any], list[dict[str, Any]], int | None]] = {}
    orphans: dict[str, list[dict[str, Any]]] = {}
    for raw in lines:
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise StoreFetchError(
                "Shopify bulk result has a malformed line", permanent=True
            ) from None
        if not isinstance(line, dict):
            continue
        parent = line.pop("__parentId", None)
        if parent is None:
            gid = str(line.get("id"))
            expected = (line.get("variantsCount") or {}).get("count")
            pending[gid] = (line, orphans.pop(gid, []), expected)
            key = gid
        elif parent in pending:
            pending[parent][1].append(line)
            key = parent
        else:
            orphans.setdefault(parent, []).append(line)
            continue
        node, children, expected = pending[key]
        if expected is not None and len(children) >= expected:
            del pending[key]
            yield _with_variants(node, children)
    for node, children, _ in pending.values():
        yield _with_variants(node, children)


def _with_variants(node: dict[str, Any], children: list[dict[str, Any]]) -> dict[str, Any]:
    node["variants"] = {"nodes": children}
    return node


# -- GraphQL product -> REST product shape -----------------------------------------------------


def to_rest(node: Any) -> dict[str, Any]:
    """A GraphQL product in the webhook's REST shape, so per-store `mapping.add` paths
    (`tags`, `body_html`, ...) and the normalizer read both the same way. Tracking is known
    here (`inventoryItem.tracked`), and `available_for_sale` (ours, not a REST field) carries
    Shopify's own verdict."""
    if not isinstance(node, dict):
        raise BadPayload("a listed product is not an object")
    variants = []
    nodes = (node.get("variants") or {}).get("nodes") or []
    for v in sorted(
        (v for v in nodes if isinstance(v, dict)), key=lambda v: v.get("position") or 0
    ):
        rest: dict[str, Any] = {
            "id": _legacy(v),
            "sku": v.get("sku"),
            "price": v.get("price"),
            "compare_at_price": v.get("compareAtPrice"),
            "position": v.get("position"),
            "inventory_quantity": v.get("inventoryQuantity"),
            "inventory_policy": str(v.get("inventoryPolicy") or "").lower() or None,
            "available_for_sale": v.get("availableForSale"),
        }
        item = v.get("inventoryItem")
        if isinstance(item, dict) and isinstance(item.get("tracked"), bool):
            rest["inventory_management"] = "shopify" if item["tracked"] else None
        variants.append(rest)
    tags = node.get("tags")
    image = ((node.get("featuredMedia") or {}).get("preview") or {}).get("image") or {}
    return {
        "id": _legacy(node),
        "admin_graphql_api_id": node.get("id"),
        "title": node.get("title"),
        "body_html": node.get("descriptionHtml"),
        "vendor": node.get("vendor"),
        "product_type": node.get("productType"),
        "handle": node.get("handle"),
        "status": str(node.get("status") or "").lower() or None,
        "tags": ", ".join(str(t) for t in tags) if isinstance(tags, list) else tags,
        "published_at": node.get("publishedAt"),
        "updated_at": node.get("updatedAt"),
        "variants": variants,
        "images": [{"src": image["url"]}] if image.get("url") else [],
    }


def _legacy(node: dict[str, Any]) -> int | str | None:
    """The numeric id (`legacyResourceId`, else the tail of the gid)."""
    legacy = node.get("legacyResourceId")
    if legacy is None and isinstance(node.get("id"), str):
        legacy = node["id"].rsplit("/", 1)[-1]
    return legacy


def normalize_admin(rest: dict[str, Any], pid: str) -> Product:
    """A product read from the Admin API: the webhook mapping, with `availableForSale` as
    the stock verdict; it is the truth already, so nothing to verify."""
    from app.platforms.shopify import normalize

    product = normalize(rest, pid)
    verdicts = [v.get("available_for_sale") for v in rest.get("variants") or []]
    if verdicts and all(isinstance(v, bool) for v in verdicts):
        product.in_stock = any(verdicts)
    product.verify_with = None
    return product
