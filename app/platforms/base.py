"""What every store platform adapter provides, and the signature helpers they share."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

from app.config import StoreConfig
from app.core.model import BadPayload, Event, Kind, obj, parse_json


@dataclass(slots=True, frozen=True)
class Ignore:
    """A verified delivery we acknowledge without acting on it (other topics, pings)."""

    reason: str


class HeaderMap(Protocol):
    """What an adapter reads of a delivery's headers: werkzeug's case-insensitive `Headers`
    in the app, a plain dict in tests."""

    def get(self, key: str, /) -> str | None: ...

    def __contains__(self, key: str, /) -> bool: ...


class Adapter(Protocol):
    name: str

    def resolve(
        self, stores: Mapping[str, StoreConfig], headers: HeaderMap, hint: str | None
    ) -> StoreConfig | None:
        """The store a delivery claims to come from, or None (answered 401)."""

    def verify(self, store: StoreConfig, body: bytes, headers: HeaderMap) -> bool:
        """Whether the delivery is signed by one of the store's secrets."""

    def parse(
        self, store: StoreConfig, body: bytes, headers: HeaderMap, now: float
    ) -> Event | Ignore:
        """The event (raises BadPayload on a malformed body)."""


def body_kind(
    body: bytes, field: str, kinds: Mapping[str, Kind]
) -> tuple[dict[str, Any], Kind | None]:
    """The JSON object body and the kind its `field` names (None: not a topic we handle)."""
    payload = obj(parse_json(body), "body")
    value = payload.get(field)
    if not isinstance(value, str):
        raise BadPayload(f"{field} must be a string")
    return payload, kinds.get(value)


def refuse_replayed_delete(payload: dict[str, Any]) -> None:
    """Shopify's and WooCommerce's delete bodies carry only the id; a signed body with more is
    a product (or another topic's) body replayed under an unsigned delete topic. Refused with
    400, not acknowledged: a genuine sender never sends it, and if a platform ever did, its
    retries and delivery reports would show it instead of a silent loss."""
    extra = [k for k in payload if k != "id"]
    if extra:
        raise BadPayload(
            "a delete body carries only the product id; this one carries "
            f"{len(extra)} more field(s), so it is not a delete (a replay?)"
        )


def hmac_b64_matches(body: bytes, signature: str | None, secrets: Iterable[SecretStr]) -> bool:
    """Shopify and WooCommerce: base64(HMAC-SHA256(secret, raw body)), constant-time compared
    against every configured secret (rotation; Shopify admin-created webhooks have their own)."""
    if not signature:
        return False
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        return False
    ok = False
    for s in secrets:
        expected = hmac.new(s.get_secret_value().encode(), body, hashlib.sha256).digest()
        ok |= hmac.compare_digest(expected, given)
    return ok


class HmacPlatform:
    """Shopify and WooCommerce alike: the store named by an origin header, base64
    HMAC-SHA256 of the raw body in a signature header, the topic in a third header."""

    name: str
    origin_header: str
    signature_header: str
    topic_header: str

    def origin(self, headers: HeaderMap) -> str:
        return (headers.get(self.origin_header) or "").strip().lower()

    def topic(self, headers: HeaderMap) -> str:
        return (headers.get(self.topic_header) or "").strip()

    def origin_of(self, store: StoreConfig) -> str | None:
        raise NotImplementedError

    def secrets_of(self, store: StoreConfig) -> list[SecretStr]:
        raise NotImplementedError

    def resolve(
        self, stores: Mapping[str, StoreConfig], headers: HeaderMap, hint: str | None
    ) -> StoreConfig | None:
        return resolve_by_origin(
            stores, hint, self.origin(headers), self.origin_of, self.secrets_of
        )

    def verify(self, store: StoreConfig, body: bytes, headers: HeaderMap) -> bool:
        return hmac_b64_matches(body, headers.get(self.signature_header), self.secrets_of(store))


def resolve_by_origin(
    stores: Mapping[str, StoreConfig],
    hint: str | None,
    origin: str,
    origin_of: Callable[[StoreConfig], str | None],
    secrets_of: Callable[[StoreConfig], list[SecretStr]],
) -> StoreConfig | None:
    """The store whose configured origin (shop domain, site URL) the delivery names; else the
    store named by the URL or the only one with secrets for this platform, provided its origin,
    when configured, matches."""
    if hint is None and origin:
        for store in stores.values():
            if origin_of(store) == origin:
                return store
    found = only_store(stores, hint, lambda s: bool(secrets_of(s)))
    if found is None or (origin_of(found) and origin_of(found) != origin):
        return None
    return found


def only_store(
    stores: Mapping[str, StoreConfig], hint: str | None, wanted: Callable[[StoreConfig], bool]
) -> StoreConfig | None:
    """The store named by the URL, or the single store that has `wanted` configured."""
    if hint is not None:
        store = stores.get(hint)
        return store if store is not None and wanted(store) else None
    candidates = [s for s in stores.values() if wanted(s)]
    return candidates[0] if len(candidates) == 1 else None
