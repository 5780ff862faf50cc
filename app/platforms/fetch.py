"""Read-only store APIs, for deliveries that say a product changed without carrying its state
(WooCommerce variation events and variable products, every BigCommerce webhook): the worker
fetches the product as it is now, so the write is at least as new as the event.

Two rules hold for every store API call (docs/design.md, Store API calls):
* credentials stay on their origin: a redirect to another scheme, host or port is refused
  before anything is sent to it (requests would resend `X-Shopify-Access-Token` and
  `X-Auth-Token` to any host; it only strips `Authorization`);
* only the API's own "no such product" answer is a deletion: a 404 after a redirect, a 404
  without the platform's error body (a wrong URL, a disabled plugin, a proxy), a 3xx or an
  HTML page are store errors, never a reason to delete a row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, overload
from urllib.parse import urlsplit

import requests
import structlog
from pydantic import SecretStr

from app.config import StoreConfig
from app.core.model import BadPayload, Product
from app.personyze.errors import parse_retry_after

log = structlog.get_logger(__name__)
Fetcher = Callable[[str], Product | None]
TIMEOUT = (3.05, 15.0)
MAX_REDIRECTS = 3
# WooCommerce returns at most 100 items per page; 100 pages bound a runaway listing.
WOO_PAGE_SIZE, WOO_MAX_PAGES = 100, 100


class StoreFetchError(Exception):
    """The store could not tell us the product's state. `permanent` errors (bad keys, a
    malformed answer) are not retried; the rest are, like a Personyze 500. `status` is the
    store API's HTTP status, when it answered one."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        # The store's own throttle (a 429's Retry-After, Shopify's cost bucket): the key is
        # put back for that long without using up its retry budget (workers/sync.py).
        self.retry_after = retry_after


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class StoreSession(requests.Session):
    """A session whose credentials never leave the origin they were configured for."""

    def __init__(self) -> None:
        super().__init__()
        self.max_redirects = MAX_REDIRECTS
        # What this store told us once (BigCommerce's storefront URL): as long as the session,
        # i.e. a worker process's fetcher or one reconciliation pass.
        self.memo: dict[str, str | None] = {}

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        # requests calls this for every redirect hop, before it sends the next request.
        if _origin(prepared_request.url or "") != _origin(response.request.url or ""):
            host = urlsplit(prepared_request.url or "").hostname
            raise StoreFetchError(
                f"store API redirected to another origin ({host}); refused, the credentials "
                "stay with the configured URL (set it to the address the API answers at)",
                permanent=True,
            )
        super().rebuild_auth(prepared_request, response)


Gone = Callable[[requests.Response], bool]


def _json_body(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def woocommerce_gone(resp: requests.Response) -> bool:
    """WooCommerce's own answer for an id it does not have (WC_REST_CRUD_Controller::get_item:
    `woocommerce_rest_product_invalid_id`, status 404). WordPress answers `rest_no_route`
    when the plugin or the route is missing: not a deletion."""
    body = _json_body(resp)
    return isinstance(body, dict) and body.get("code") == "woocommerce_rest_product_invalid_id"


def bigcommerce_gone(resp: requests.Response) -> bool:
    """BigCommerce's JSON error body for a missing resource (`{"status": 404, "title": ...}`,
    the NotFound schema of its OpenAPI files). Inferred: the docs do not say whether a wrong
    store hash answers the same way."""
    body = _json_body(resp)
    return isinstance(body, dict) and body.get("status") == 404 and "title" in body


# 4xx answers that say "not now" rather than "never": retried like a 5xx.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})


@overload
def request(
    session: requests.Session,
    method: str,
    url: str,
    what: str,
    *,
    body: dict[str, Any] | None = None,
    gone: None = None,
) -> tuple[Any, requests.Response]: ...


@overload
def request(
    session: requests.Session,
    method: str,
    url: str,
    what: str,
    *,
    body: dict[str, Any] | None = None,
    gone: Gone | None,
) -> tuple[Any, requests.Response] | None: ...


def request(
    session: requests.Session,
    method: str,
    url: str,
    what: str,
    *,
    body: dict[str, Any] | None = None,
    gone: Gone | None = None,
) -> tuple[Any, requests.Response] | None:
    """One JSON call to a store API, every caller's (fetches, listings, subscriptions).

    None only for a 404 that `gone` recognizes as the API's own "no such resource" and that
    was not reached through a redirect. Only GETs follow (same-origin) redirects: requests
    turns a redirected POST into a GET. Errors are one line naming the platform and its
    machine-readable error code, never a credential."""
    try:
        resp = session.request(
            method, url, json=body, timeout=TIMEOUT, allow_redirects=method == "GET"
        )
    except requests.TooManyRedirects:
        raise StoreFetchError(f"{what} redirected more than {MAX_REDIRECTS} times") from None
    except requests.RequestException as e:
        raise StoreFetchError(f"{what} API unreachable: {type(e).__name__}") from None
    status = resp.status_code
    if status == 404:
        if gone is not None and not resp.history and gone(resp):
            return None
        raise StoreFetchError(
            f"{what} answered 404 without its API's not-found error "
            "(a wrong store URL, a redirect, or the API is off)",
            status=404,
        )
    if status in (401, 403):
        raise StoreFetchError(
            f"{what} refused the credentials ({status}{error_code(resp)})",
            permanent=True,
            status=status,
        )
    if 300 <= status < 400:
        raise StoreFetchError(
            f"{what} answered a redirect ({status}) that was not followed", status=status
        )
    if status == 429:
        wait = parse_retry_after(resp.headers.get("Retry-After"), None)
        raise StoreFetchError(
            f"{what} API answered 429 (rate limited)",
            status=429,
            retry_after=max(0.5, wait if wait is not None else 1.0),
        )
    if not 200 <= status < 300:
        raise StoreFetchError(
            f"{what} API answered {status}{error_code(resp)}",
            permanent=400 <= status < 500 and status not in RETRYABLE_4XX,
            status=status,
        )
    try:
        return resp.json(), resp
    except ValueError:
        raise StoreFetchError(
            f"{what} answered malformed JSON (an HTML page?)", permanent=True
        ) from None


def error_code(resp: requests.Response) -> str:
    """The platform's machine-readable error code (WooCommerce `code`, BigCommerce `title`),
    which says e.g. that a WooCommerce key is read-only; free text is left out."""
    data = _json_body(resp)
    code = data.get("code") if isinstance(data, dict) else None
    if not isinstance(code, str):
        code = data.get("title") if isinstance(data, dict) else None
    return f" {code[:80]}" if isinstance(code, str) and code.isprintable() else ""


def get_json(
    session: requests.Session, url: str, what: str, *, gone: Gone | None = None
) -> dict[str, Any] | None:
    """GET a JSON object; None when `gone` says the resource does not exist."""
    got = request(session, "GET", url, what, gone=gone)
    if got is None:
        return None
    if not isinstance(got[0], dict):
        raise StoreFetchError(f"{what} answered a non-object", permanent=True)
    return got[0]


def normalized(
    normalize: Callable[[dict[str, Any], str], Product], data: dict[str, Any], pid: str, what: str
) -> Product:
    """A store's product through its platform's `normalize`; a shape we cannot read is a
    permanent store-API failure of that product (dead-lettered, never retried forever)."""
    try:
        return normalize(data, pid)
    except BadPayload as e:
        raise StoreFetchError(
            f"{what} product has an unexpected shape: {e}", permanent=True
        ) from None


def _credential(value: SecretStr | None, setting: str) -> str:
    """A store API credential. Callers check the store's `*_api` first, so a missing one is a
    programming error; it is named by its setting, never shown."""
    if value is None:
        raise StoreFetchError(f"{setting} is not set", permanent=True)
    return value.get_secret_value()


def woocommerce_session(store: StoreConfig) -> StoreSession:
    session = StoreSession()
    session.auth = (
        _credential(store.woocommerce_consumer_key, "WOOCOMMERCE_CONSUMER_KEY"),
        _credential(store.woocommerce_consumer_secret, "WOOCOMMERCE_CONSUMER_SECRET"),
    )
    return session


def bigcommerce_session(store: StoreConfig) -> StoreSession:
    session = StoreSession()
    token = _credential(store.bigcommerce_access_token, "BIGCOMMERCE_ACCESS_TOKEN")
    session.headers.update({"X-Auth-Token": token, "Accept": "application/json"})
    return session


def shopify_session(store: StoreConfig) -> StoreSession:
    session = StoreSession()
    token = _credential(store.shopify_admin_token, "SHOPIFY_ADMIN_TOKEN")
    session.headers.update({"X-Shopify-Access-Token": token, "Accept": "application/json"})
    return session


def numbered_pages(
    session: requests.Session,
    url: str,
    what: str,
    *,
    size: str,
    read: Callable[[Any, requests.Response, int], tuple[list[Any], int]],
    gone: Gone | None = None,
    max_pages: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The pages of a list numbered `page` 1, 2, ... (`size` is the query's page-size part,
    e.g. "per_page=100"); `read(data, response, page)` gives a page's items and the number of
    pages the platform says there are. An empty page ends it too; past `max_pages` it is
    refused as a runaway listing; `gone` ends it early when the resource is gone."""
    sep = "&" if "?" in url else "?"
    page = 1
    while max_pages is None or page <= max_pages:
        got = request(session, "GET", f"{url}{sep}{size}&page={page}", what, gone=gone)
        if got is None:
            return
        items, pages = read(*got, page)
        yield [x for x in items if isinstance(x, dict)]
        if page >= pages or not items:
            return
        page += 1
    raise StoreFetchError(f"{what} lists more than {max_pages} pages", permanent=True)


def bigcommerce_pages(
    session: requests.Session, url: str, what: str, *, limit: int, max_pages: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """A BigCommerce v3 list, until `meta.pagination.total_pages`. An answer without a `data`
    list is an error, never an empty page."""

    def read(data: Any, _resp: requests.Response, page: int) -> tuple[list[Any], int]:
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise StoreFetchError(f"{what} API answered without data", permanent=True)
        pagination = (data.get("meta") or {}).get("pagination") or {}
        try:
            return items, int(pagination.get("total_pages") or page)
        except (TypeError, ValueError):
            return items, page

    return numbered_pages(session, url, what, size=f"limit={limit}", read=read, max_pages=max_pages)


def woocommerce_pages(
    session: requests.Session,
    url: str,
    what: str,
    *,
    gone: Gone | None = None,
    max_pages: int | None = None,
    per_page: int = WOO_PAGE_SIZE,
) -> Iterator[list[dict[str, Any]]]:
    """A WooCommerce list, until `X-WP-TotalPages` (else a short page)."""

    def read(data: Any, resp: requests.Response, page: int) -> tuple[list[Any], int]:
        if not isinstance(data, list):
            raise StoreFetchError(f"{what} answered a non-list", permanent=True)
        try:
            return data, int(resp.headers.get("X-WP-TotalPages", ""))
        except ValueError:
            return data, page + 1 if len(data) >= per_page else page

    return numbered_pages(
        session, url, what, size=f"per_page={per_page}", read=read, gone=gone, max_pages=max_pages
    )


def woocommerce_variations(
    session: requests.Session, store: StoreConfig, pid: str
) -> list[dict[str, Any]]:
    """Every variation of a variable product (`/products/<id>/variations`). A parent deleted
    meanwhile lists none."""
    url = f"{store.woocommerce_products_url}/{int(pid)}/variations"
    return [
        v
        for page in woocommerce_pages(
            session, url, "WooCommerce variations", gone=woocommerce_gone, max_pages=WOO_MAX_PAGES
        )
        for v in page
    ]


def woocommerce_product(
    session: requests.Session, store: StoreConfig, data: dict[str, Any], pid: str
) -> Product:
    """A WooCommerce product as the storefront prices it: a variable product on sale (or
    without a regular price) is priced from its variations (docs/design.md, WooCommerce
    variable products)."""
    from app.platforms.woocommerce import needs_variations, normalize

    variations = woocommerce_variations(session, store, pid) if needs_variations(data) else None
    return normalized(partial(normalize, variations=variations), data, pid, "WooCommerce")


def woocommerce_fetcher(store: StoreConfig) -> Fetcher:
    session = woocommerce_session(store)
    base = store.woocommerce_products_url

    def fetch(pid: str) -> Product | None:
        data = get_json(session, f"{base}/{int(pid)}", "WooCommerce", gone=woocommerce_gone)
        if data is None or data.get("status") == "trash":
            return None
        return woocommerce_product(session, store, data, pid)

    return fetch


def bigcommerce_storefront(session: StoreSession, store: StoreConfig) -> str | None:
    """The base of BigCommerce product URLs: `https://STOREFRONT_DOMAIN`, else the store's
    own `secure_url` (`GET /stores/{hash}/v2/store`), read once per session. Never another
    platform's domain. Without the Information read scope the rows carry no guide_url."""
    if store.storefront_domain:
        return f"https://{store.storefront_domain}"
    if "storefront" in session.memo:
        return session.memo["storefront"]
    url = f"{store.bigcommerce_store_url}/v2/store"
    try:
        info = get_json(session, url, "BigCommerce store information")
    except StoreFetchError as e:
        if not e.permanent:
            raise  # try again with the product's next attempt
        log.warning("bigcommerce_storefront_unknown", store=store.id, error=str(e))
        info = None
    session.memo["storefront"] = base = _secure_url(info)
    return base


def _secure_url(info: dict[str, Any] | None) -> str | None:
    value = (info or {}).get("secure_url")
    if not isinstance(value, str):
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    return value.strip().rstrip("/")


def bigcommerce_fetcher(store: StoreConfig) -> Fetcher:
    from app.platforms.bigcommerce import normalize

    session = bigcommerce_session(store)
    base = store.bigcommerce_products_url

    def fetch(pid: str) -> Product | None:
        data = get_json(
            session,
            f"{base}/{int(pid)}?include=variants,images",
            "BigCommerce",
            gone=bigcommerce_gone,
        )
        if data is None:
            return None
        product = data.get("data")
        if not isinstance(product, dict):
            raise StoreFetchError("BigCommerce answered without data", permanent=True)
        storefront = bigcommerce_storefront(session, store)
        return normalized(partial(normalize, storefront=storefront), product, pid, "BigCommerce")

    return fetch


def can_verify(store: StoreConfig, platform: str) -> bool:
    """Whether webhook products of `platform` (`Product.verify_with`) can be re-read from its
    Admin API for this store (docs/design.md, Shopify stock)."""
    return platform == "shopify" and bool(store.shopify_api)
