"""Where a webhook becomes a Personyze call: one attempt at one (store, product) key.

The Celery task is only a wake-up; everything here reads and writes the Redis truth through
`State`, so running it twice, late, or on two workers at once changes nothing (docs/design.md)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog
from celery.exceptions import SoftTimeLimitExceeded

from app.config import Settings, StoreConfig
from app.core import activity
from app.core.mapping import DELETED_HASH, map_product, row_hash
from app.core.model import Product
from app.core.ratelimit import AccountLimiter, backoff
from app.core.state import Claim, State
from app.personyze import (
    PersonyzeAuthError,
    PersonyzeBadRequest,
    PersonyzeClient,
    PersonyzeError,
    PersonyzeUnavailable,
)
from app.platforms.fetch import Fetcher, StoreFetchError, can_verify
from app.platforms.fetchers import FETCHERS

log = structlog.get_logger(__name__)
MAX_ERRORS_KEPT = 20


class MappingError(Exception):
    """The pending state could not be turned into a row: retrying cannot help, so the key
    goes to the dead-letter store (replayable once the mapping is fixed)."""

    permanent = True


def checked_mark(webhook_hash: str, store_hash: str) -> str:
    """A short mark of "this webhook row was checked and the store said that": 12 hex digits
    of each hash (48 bits each) are plenty to tell one product's states apart."""
    return f"{webhook_hash[:12]}{store_hash[:12]}"


@dataclass
class Syncer:
    """Per-process: the settings, the state machine and one pooled client per account."""

    settings: Settings
    state: State
    clients: dict[str, PersonyzeClient] = field(default_factory=dict)
    limiters: dict[str, AccountLimiter] = field(default_factory=dict)
    fetchers: dict[tuple[str, str], Fetcher] = field(default_factory=dict)

    def client(self, store: StoreConfig) -> PersonyzeClient:
        acct = store.personyze
        if acct.id not in self.clients:
            self.clients[acct.id] = acct.client()
        return self.clients[acct.id]

    def limiter(self, store: StoreConfig) -> AccountLimiter:
        acct = store.personyze
        if acct.id not in self.limiters:
            self.limiters[acct.id] = AccountLimiter(self.state.r, self.state.keys, acct)
        return self.limiters[acct.id]

    def run(self, store_id: str, pid: str) -> str:
        """One attempt; returns what happened (for logs and tests)."""
        store = self.settings.stores.get(store_id)
        if store is None:
            log.warning("unknown_store", store=store_id)
            return "unknown_store"
        claim = self.state.claim(store_id, pid, uuid.uuid4().hex, self.settings.lease_seconds)
        if isinstance(claim, str):
            return claim  # busy (another worker has it) or idle (nothing pending)
        try:
            return self._attempt(store, pid, claim)
        except redis.RedisError:
            raise  # infrastructure, not this product: the key is retried after its lease
        except Exception as e:
            # Counted against the product's retry budget, so it reaches the dead-letter store
            # in the end instead of being retried after every lease forever.
            log.exception("sync_attempt_failed", store=store_id, product=pid)
            return self._failed(store, pid, claim, None, e)

    def _attempt(self, store: StoreConfig, pid: str, claim: Claim) -> str:
        store_id = store.id
        got = self._mapped(store, pid, claim, lambda: self._desired(store, pid, claim))
        if isinstance(got, str):
            return got
        product, row = got
        content_hash = DELETED_HASH if row is None else row_hash(row)
        if content_hash == claim.synced_hash:
            self.state.complete(store_id, pid, claim, content_hash, "skipped_unchanged")
            return "skipped_unchanged"

        platform = None
        if product is not None and product.verify_with and can_verify(store, product.verify_with):
            platform = product.verify_with
            # The webhook may lack the truth (Shopify stock since 2024-07): the product is
            # re-read from the store, at most once per Personyze write (docs/design.md,
            # Shopify stock). The same webhook content, already checked, while Personyze still
            # holds what that check gave, needs no second look.
            checked = checked_mark(content_hash, claim.synced_hash)
            if self.state.r.hget(self._checked_key(store_id), pid) == checked.encode():
                self.state.complete(store_id, pid, claim, claim.synced_hash, "skipped_unchanged")
                return "skipped_unchanged"

        limiter = self.limiter(store)
        decision = limiter.acquire()
        if not decision.allowed:
            self.state.release(store_id, pid, claim, decision.wait)
            return "paused" if decision.paused else "throttled"
        mark: str | None = None  # what to remember of this check (None: forget it)
        if platform is not None:
            # only now that a write is due and holds a token
            got = self._mapped(store, pid, claim, lambda: self._fetch(store, platform, pid))
            if isinstance(got, str):
                return got
            webhook_hash, row = content_hash, got[1]
            content_hash = DELETED_HASH if row is None else row_hash(row)
            # Only a webhook that disagrees with the store's answer needs remembering; one
            # that agrees is skipped by the synced hash next time (memory: docs/design.md).
            if content_hash != webhook_hash:
                mark = checked_mark(webhook_hash, content_hash)
            if content_hash == claim.synced_hash:  # the token goes unused
                self.state.complete(store_id, pid, claim, content_hash, "skipped_unchanged")
                self._remember_check(self.state.r, store_id, pid, mark)
                return "skipped_unchanged"

        client = self.client(store)
        try:
            if row is None:
                client.product_delete(pid)
            else:
                client.product_upsert(row)
        except PersonyzeError as e:
            self.state.note_call(store_id, type(e).__name__, None)
            return self._failed(store, pid, claim, limiter, e)
        self.state.complete(store_id, pid, claim, content_hash, "written", limiter.fail_key)
        # the write's bookkeeping (not a transition): one pipelined round trip
        notes = self.state.r.pipeline(transaction=False)
        if platform is not None:
            self._remember_check(notes, store_id, pid, mark)
        latency = time.time() - claim.received_at if claim.received_at else None
        self.state.note_call(store_id, "ok", latency, notes)
        activity.note(
            self.state, store_id, pid, "written" if row is not None else "deleted", pipe=notes
        )
        notes.execute()
        return "written"

    def _remember_check(self, r: Any, store_id: str, pid: str, mark: str | None) -> None:
        """Remember (or forget) a webhook row's check, on `r` (the client or a pipeline)."""
        if mark is None:
            r.hdel(self._checked_key(store_id), pid)
        else:
            r.hset(self._checked_key(store_id), pid, mark)

    def _checked_key(self, store_id: str) -> str:
        """Per product: the webhook row hash last checked against the store's API, and the
        hash Personyze was left holding by that check."""
        return self.state.keys.checked(store_id)

    def _mapped(
        self, store: StoreConfig, pid: str, claim: Claim, desired: Callable[[], Product | None]
    ) -> tuple[Product | None, dict[str, Any] | None] | str:
        """The product and its row (None: delete it), or the outcome of failing to get them."""
        try:
            product = desired()
            row = map_product(product, store) if product is not None and product.is_live else None
        except StoreFetchError as e:
            return self._failed(store, pid, claim, None, e)
        except (SoftTimeLimitExceeded, redis.RedisError):
            raise  # handled in `run`: a counted attempt, or infrastructure
        except Exception as e:
            log.exception("mapping_failed", store=store.id, product=pid)
            return self._failed(store, pid, claim, None, MappingError(f"{type(e).__name__}: {e}"))
        return product, row

    def _desired(self, store: StoreConfig, pid: str, claim: Claim) -> Product | None:
        """The state Personyze should hold: the pending product, None for a delete, or for a
        refresh the store's current product (fetched now, so it is at least as new)."""
        if claim.kind == "upsert":
            product = Product.from_json(claim.doc)
            if product.id != pid:  # a document that is not this product's: never write it
                raise ValueError(f"pending document is for product {product.id!r}")
            return product
        if claim.kind == "delete":
            return None
        return self._fetch(store, claim.doc.decode(), pid)

    def _fetch(self, store: StoreConfig, platform: str, pid: str) -> Product | None:
        if (store.id, platform) not in self.fetchers:
            self.fetchers[store.id, platform] = FETCHERS[platform](store)
        return self.fetchers[store.id, platform](pid)

    def _failed(
        self,
        store: StoreConfig,
        pid: str,
        claim: Claim,
        limiter: AccountLimiter | None,
        e: Exception,
    ) -> str:
        s = self.settings
        errors = (claim.errors + [{"at": time.time(), "error": f"{type(e).__name__}: {e}"}])[
            -MAX_ERRORS_KEPT:
        ]
        if isinstance(e, PersonyzeUnavailable) and limiter is not None:
            # The account's condition, not this product's: pause everyone, keep the budget.
            paused = limiter.unavailable(
                e.retry_after, s.backoff_base_seconds, s.backoff_max_seconds
            )
            self.state.release(store.id, pid, claim, paused)
            return "paused"
        if isinstance(e, PersonyzeAuthError) and limiter is not None:
            paused, first = limiter.auth_failed(s.auth_pause_seconds)
            if first:
                from app.observability import report_auth_failure

                report_auth_failure(store, paused)
            log.error("personyze_auth_failed", store=store.id, paused_seconds=paused)
            self.state.release(store.id, pid, claim, paused)
            return "auth_failed"
        retry_after = getattr(e, "retry_after", None)
        if isinstance(e, StoreFetchError) and retry_after is not None:
            # The store's own throttle (Shopify's cost bucket): back then, budget kept.
            self.state.release(store.id, pid, claim, retry_after)
            return "store_throttled"
        age = time.time() - (claim.first_failure or time.time())
        permanent = isinstance(e, PersonyzeBadRequest) or getattr(e, "permanent", False)
        if permanent or claim.attempts + 1 >= s.max_attempts or age >= s.max_retry_age_seconds:
            outcome = self.state.dead_letter(store.id, pid, claim, errors)
            if outcome == "dead":
                from app.observability import report_dead_letter

                log.error("dead_lettered", store=store.id, product=pid, error=type(e).__name__)
                report_dead_letter(
                    store, pid, e, errors, claim.doc.decode() if claim.kind == "refresh" else None
                )
                activity.note(self.state, store.id, pid, "dead", type(e).__name__)
            return outcome
        delay = backoff(claim.attempts + 1, s.backoff_base_seconds, s.backoff_max_seconds)
        self.state.release(store.id, pid, claim, delay, errors)
        return "retry"
