"""The stores' product webhook subscriptions: find ours, create what is missing, re-enable
what the platform turned off, and touch nothing else (docs/design.md, "Store subscriptions").

One small class per platform lists subscriptions and creates or re-enables one; `plan`
compares what a platform reports with what we want and `ensure` carries the plan out. A
subscription is *ours* when it delivers to our URL (`PUBLIC_URL/webhooks/<platform>`, with
`/<store id>` where routing needs it); everything else, other apps' and other URLs', is
never changed. The same code serves `personyze-sync connect` and the scheduler's repair."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.config import Settings, StoreConfig
from app.platforms.fetch import (
    WOO_MAX_PAGES,
    StoreFetchError,
    bigcommerce_pages,
    bigcommerce_session,
    request,
    woocommerce_pages,
    woocommerce_session,
)


@dataclass(frozen=True)
class Subscription:
    """One subscription as the platform reports it. `state` is "active", or the platform's
    word for why it does not deliver ("disabled", "inactive", "paused")."""

    id: str
    topic: str
    url: str
    state: str = "active"


@dataclass
class Plan:
    """What one platform needs: topics to create, our subscriptions to re-enable, ours that
    an admin paused (left alone: a person chose that), and the healthy ones."""

    create: list[str] = field(default_factory=list)
    enable: list[Subscription] = field(default_factory=list)
    held: list[Subscription] = field(default_factory=list)
    healthy: list[Subscription] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.create or self.enable or self.held)


class Platform(Protocol):
    name: str
    url: str

    @property
    def topics(self) -> tuple[str, ...]: ...

    def list(self) -> list[Subscription]: ...

    def create(self, topic: str) -> None: ...

    def enable(self, sub: Subscription) -> None: ...


def _same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def plan(platform: Platform, existing: list[Subscription]) -> Plan:
    """Compare the platform's subscriptions with the topics we want at our URL."""
    out = Plan()
    ours = [s for s in existing if _same_url(s.url, platform.url)]
    for topic in platform.topics:
        mine = [s for s in ours if s.topic == topic]
        active = [s for s in mine if s.state == "active"]
        if active:
            out.healthy.append(active[0])
        elif not mine:
            out.create.append(topic)
        elif any(s.state == "paused" for s in mine):
            out.held.append(next(s for s in mine if s.state == "paused"))
        else:
            out.enable.append(mine[0])  # repaired in place: its id and history stay
    return out


def ensure(platform: Platform, *, check_only: bool = False) -> Plan:
    """Make the platform's subscriptions match the plan (unless `check_only`); returns the
    plan as found. Raises StoreFetchError on a store API error."""
    found = plan(platform, platform.list())
    if not check_only:
        for topic in found.create:
            platform.create(topic)
        for sub in found.enable:
            platform.enable(sub)
    return found


# -- HTTP ----------------------------------------------------------------------------------


def _obj(data: object, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise StoreFetchError(f"{what} API answered an unexpected shape", permanent=True)
    return data


# -- Shopify (GraphQL Admin API) -----------------------------------------------------------

SHOPIFY_LIST = """
query ($after: String, $topics: [WebhookSubscriptionTopic!]) {
  webhookSubscriptions(first: 100, after: $after, topics: $topics) {
    edges {
      node { id topic uri endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

SHOPIFY_CREATE = """
mutation ($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""


class Shopify:
    """Shopify has no "disabled" state: it deletes a subscription whose deliveries keep
    failing, so a missing topic is re-created. `webhookSubscriptions` lists the calling
    app's own subscriptions only; a newer API version reports the address as `uri`, an older
    one only as `endpoint.callbackUrl`, and both are read."""

    name = "shopify"
    what = "Shopify"
    topics = ("PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE")

    def __init__(self, store: StoreConfig, url: str) -> None:
        from app.platforms.shopify_admin import AdminClient

        self.url = url
        # the Admin API client the worker and reconciliation use: the pinned version, the
        # cost throttle waited out, errors as one line (ACCESS_DENIED: a missing scope)
        self._gql = AdminClient(store, wait=True).run

    def list(self) -> list[Subscription]:
        out: list[Subscription] = []
        after: str | None = None
        while True:
            conn = _obj(
                self._gql(SHOPIFY_LIST, {"after": after, "topics": list(self.topics)}).get(
                    "webhookSubscriptions"
                ),
                self.what,
            )
            for edge in conn.get("edges") or []:
                node = _obj((edge or {}).get("node"), self.what)
                endpoint = node.get("endpoint") or {}
                url = node.get("uri") or endpoint.get("callbackUrl") or ""
                out.append(Subscription(str(node.get("id")), str(node.get("topic")), url))
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return out
            after = info.get("endCursor")

    def create(self, topic: str) -> None:
        data = self._gql(
            SHOPIFY_CREATE, {"topic": topic, "sub": {"uri": self.url, "format": "JSON"}}
        )
        result = _obj(data.get("webhookSubscriptionCreate"), self.what)
        errors = result.get("userErrors") or []
        if errors:
            msg = "; ".join(str(e.get("message", ""))[:120] for e in errors if isinstance(e, dict))
            raise StoreFetchError(f"{self.what} refused to create {topic}: {msg}", permanent=True)

    def enable(self, sub: Subscription) -> None:  # pragma: no cover - never planned
        raise StoreFetchError(f"{self.what} subscriptions have no disabled state")


# -- WooCommerce (REST /wp-json/wc/v3/webhooks) --------------------------------------------


class WooCommerce:
    """Webhook objects with `status` active, paused (an admin's choice) or disabled (set by
    WooCommerce after more than 5 failed deliveries in a row). Creating and re-enabling are
    POST/PUT, which WooCommerce allows only to a Read/Write key."""

    name = "woocommerce"
    what = "WooCommerce"
    topics = ("product.created", "product.updated", "product.deleted", "product.restored")

    def __init__(self, store: StoreConfig, url: str) -> None:
        self.url = url
        self.session = woocommerce_session(store)
        self.base = f"{store.woocommerce_rest_url}/webhooks"
        self.secret = store.woocommerce_webhook_secrets[0].get_secret_value()

    def list(self) -> list[Subscription]:
        return [
            Subscription(
                str(w.get("id")),
                str(w.get("topic")),
                str(w.get("delivery_url") or ""),
                str(w.get("status") or ""),
            )
            for page in woocommerce_pages(
                self.session, self.base, self.what, max_pages=WOO_MAX_PAGES
            )
            for w in page
        ]

    def create(self, topic: str) -> None:
        self._write(
            "POST",
            self.base,
            {
                "name": f"personyze-sync {topic}",
                "topic": topic,
                "delivery_url": self.url,
                "secret": self.secret,
                "status": "active",
            },
        )

    def enable(self, sub: Subscription) -> None:
        # The secret is set again too: deliveries our receiver refused (an old secret) are
        # failures as well, and WooCommerce never shows a webhook's secret to compare.
        self._write("PUT", f"{self.base}/{sub.id}", {"status": "active", "secret": self.secret})

    def _write(self, method: str, url: str, body: dict[str, Any]) -> None:
        try:
            request(self.session, method, url, self.what, body=body)
        except StoreFetchError as e:
            if e.status != 401:
                raise
            raise StoreFetchError(
                f"{e}: changing webhooks needs a Read/Write key", permanent=True
            ) from None


# -- BigCommerce (REST /stores/{hash}/v3/hooks) --------------------------------------------


class BigCommerce:
    """Hooks with `is_active`, set false after 48 h of failed retries or 90 days without an
    event; re-enabled with PUT /hooks/{id}. A token sees only the hooks it created."""

    name = "bigcommerce"
    what = "BigCommerce"
    topics = ("store/product/created", "store/product/updated", "store/product/deleted")

    def __init__(self, store: StoreConfig, url: str) -> None:
        self.url = url
        self.session = bigcommerce_session(store)
        self.base = f"{store.bigcommerce_store_url}/v3/hooks"

    def list(self) -> list[Subscription]:
        out: list[Subscription] = []
        for hooks in bigcommerce_pages(
            self.session, self.base, self.what, limit=250, max_pages=999
        ):
            for h in hooks:
                out.append(
                    Subscription(
                        str(h.get("id")),
                        str(h.get("scope")),
                        str(h.get("destination") or ""),
                        "active" if h.get("is_active") else "inactive",
                    )
                )
        return out

    def create(self, topic: str) -> None:
        request(
            self.session,
            "POST",
            self.base,
            self.what,
            body={"scope": topic, "destination": self.url, "is_active": True},
        )

    def enable(self, sub: Subscription) -> None:
        request(self.session, "PUT", f"{self.base}/{sub.id}", self.what, body={"is_active": True})


# -- which platforms a store is configured for ---------------------------------------------


def webhook_url(settings: Settings, store: StoreConfig, public_url: str, name: str) -> str:
    """Where the platform delivers. With a STORES_FILE, BigCommerce deliveries name the store
    in the path (they carry no shop header to route by: README, "With several stores");
    Shopify and WooCommerce are routed by their shop/source header."""
    url = f"{public_url.rstrip('/')}/webhooks/{name}"
    if name == "bigcommerce" and settings.stores_file:
        url += f"/{store.id}"
    return url


def platforms(settings: Settings, store: StoreConfig, public_url: str) -> Iterator[Platform | str]:
    """The store's platforms whose subscriptions we manage; for a platform whose webhooks
    are configured but whose API credentials are not, a line saying what to set."""
    if store.shopify_webhook_secrets:
        if store.shopify_api:
            yield Shopify(store, webhook_url(settings, store, public_url, "shopify"))
        else:
            yield "shopify: set SHOPIFY_ADMIN_TOKEN (and SHOPIFY_SHOP_DOMAIN) to manage webhooks"
    if store.woocommerce_webhook_secrets:
        if store.woocommerce_api:
            yield WooCommerce(store, webhook_url(settings, store, public_url, "woocommerce"))
        else:
            yield (
                "woocommerce: set WOOCOMMERCE_URL, WOOCOMMERCE_CONSUMER_KEY and "
                "WOOCOMMERCE_CONSUMER_SECRET to manage webhooks"
            )
    if store.bigcommerce_webhook_secrets:
        if store.bigcommerce_api:
            yield BigCommerce(store, webhook_url(settings, store, public_url, "bigcommerce"))
        else:
            yield (
                "bigcommerce: set BIGCOMMERCE_STORE_HASH and BIGCOMMERCE_ACCESS_TOKEN to "
                "manage webhooks"
            )


def redact(text: str, store: StoreConfig) -> str:
    """Belt and braces for anything printed or reported: no credential of the store, even if
    a platform echoed one back in an error."""
    secrets = [
        store.shopify_admin_token,
        store.woocommerce_consumer_key,
        store.woocommerce_consumer_secret,
        store.bigcommerce_access_token,
        *store.woocommerce_webhook_secrets,
        *store.shopify_webhook_secrets,
        *store.bigcommerce_webhook_secrets,
    ]
    for s in secrets:
        value = s.get_secret_value() if s else ""
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text


def describe(found: Plan, *, check_only: bool) -> str:
    """One line: what was created, re-enabled, left paused and found healthy."""
    parts = []
    if found.create:
        parts.append(("missing " if check_only else "created ") + ", ".join(found.create))
    if found.enable:
        parts.append(
            ("disabled " if check_only else "re-enabled ")
            + ", ".join(s.topic for s in found.enable)
        )
    if found.held:
        parts.append("paused by an admin (left as is) " + ", ".join(s.topic for s in found.held))
    if found.healthy:
        parts.append("healthy " + ", ".join(s.topic for s in found.healthy))
    return "; ".join(parts)


@dataclass
class Outcome:
    """One platform of one store: the plan found (and carried out unless checking), or the
    store API error, or the configuration a platform lacks."""

    store: str
    platform: str
    url: str = ""
    plan: Plan | None = None
    error: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None and self.problem is None and self.plan is not None and self.plan.ok
        )


def connect_store(
    settings: Settings, store: StoreConfig, public_url: str, *, check_only: bool = False
) -> list[Outcome]:
    """Check (and unless `check_only`, repair) every platform of one store; an error on one
    platform does not stop the others."""
    out: list[Outcome] = []
    for p in platforms(settings, store, public_url):
        if isinstance(p, str):
            name, _, text = p.partition(": ")
            out.append(Outcome(store.id, name, problem=text))
            continue
        try:
            out.append(Outcome(store.id, p.name, p.url, plan=ensure(p, check_only=check_only)))
        except StoreFetchError as e:
            out.append(Outcome(store.id, p.name, p.url, error=redact(str(e), store)))
    return out
