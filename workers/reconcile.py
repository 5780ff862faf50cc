"""Backfill and periodic reconciliation: re-read each store's catalog through its API and
feed it through the same ingest step as webhooks.

Repairs what lost webhooks left behind: a product whose listed version is newer than what
Personyze has is written; an equal or older one is counted stale and costs nothing more.
With `delete_missing`, rows in Personyze whose internal_id the store no longer lists are
deleted (opt-in: the Personyze catalog may hold rows from other sources)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping

import structlog

from app.config import StoreConfig
from app.core.model import BadPayload, Event
from app.core.ratelimit import AccountLimiter
from app.observability import reconcile_monitor
from app.platforms.catalog import has_catalog_api, store_products
from app.runtime import Runtime
from workers.periodic import every_interval
from workers.reads import paced_reads

log = structlog.get_logger(__name__)


def reconcile(
    rt: Runtime,
    store_id: str,
    *,
    delete_missing: bool = False,
    page_size: int | None = None,
    progress: Callable[[Mapping[str, int]], None] | None = None,
) -> dict[str, int]:
    """One pass over one store; returns how the listed products were recorded. `progress`
    is called with the running counts after each product read (the CLI's progress bar)."""
    store = rt.settings.stores[store_id]
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    keep_raw = bool(store.mapping.add)
    # Deletes carry the pass's start time: a product created while the listing ran (so not
    # in it) has a newer version and beats the delete.
    started = int(time.time() * 1_000_000)
    backlog = BacklogGate(rt, store_id)
    for item in store_products(store, page_size):
        backlog.wait()
        if isinstance(item, BadPayload):
            counts["unparseable"] += 1  # one odd product must not stop the pass
            continue
        platform, product, version = item
        seen.add(product.id)
        ev = Event(
            store.id,
            platform,
            "reconcile",
            product.id,
            version,
            "upsert",
            f"reconcile|{platform}|{product.id}|{version}",
            product,
        )
        counts[rt.state.record(ev, keep_raw=keep_raw).name.lower()] += 1
        if progress is not None:
            progress(counts)
    counts["listed"] = len(seen)
    if delete_missing and seen and not counts["unparseable"]:
        counts["deleted_missing"] = record_missing_deletes(rt, store, seen, started)
    log.info("reconciled", store=store_id, **counts)
    return dict(counts)


class BacklogStalled(RuntimeError):
    """The workers did not drain the backlog for RESYNC_STALL_SECONDS: the pass stops (the
    next one, or `resync` again, carries on; products already listed stay pending)."""


class BacklogGate:
    """Holds a pass back while the store already has RESYNC_MAX_BACKLOG products waiting for
    the workers, so a backfill's pending documents stay bounded in Redis (docs/design.md,
    Memory). Checked every tenth of the bound (at most every 100 products): one Redis round
    trip each time, and the backlog overshoots the bound by less than a tenth."""

    def __init__(self, rt: Runtime, store_id: str) -> None:
        self.rt = rt
        self.store_id = store_id
        self.limit = rt.settings.resync_max_backlog
        self.stall = rt.settings.resync_stall_seconds
        self.every = max(1, min(100, self.limit // 10))
        self.n = 0

    def wait(self) -> None:
        self.n += 1
        if not self.limit or self.n % self.every:
            return
        state = self.rt.state
        waiting = state.due_count(self.store_id)
        if waiting < self.limit:
            return
        log.info("resync_waiting_for_workers", store=self.store_id, backlog=waiting)
        best, since = waiting, time.monotonic()
        while waiting >= self.limit:
            if time.monotonic() - since > self.stall:
                raise BacklogStalled(
                    f"backlog of {waiting} products did not drain for "
                    f"{self.stall:.0f} s: are the workers running?"
                )
            time.sleep(0.5)
            waiting = state.due_count(self.store_id)
            if waiting < best:
                best, since = waiting, time.monotonic()


def record_missing_deletes(rt: Runtime, store: StoreConfig, seen: set[str], version: int) -> int:
    """Record a delete (at `version`) for every Personyze row whose internal_id the store
    did not list; returns how many.

    The whole Personyze catalog is read ordered by internal_id: plain windows for the first
    1000 rows, then keyset pages of 50 (`internal_id>last` is a range, a "slow" read);
    see `PersonyzeClient.iter_all`. Every page waits for the account's shared rate limit
    and honours its pause (workers/reads.py)."""
    limiter = AccountLimiter(rt.redis, rt.state.keys, store.personyze)
    pace = paced_reads(limiter, rt.settings, store)
    run = uuid.uuid4().hex
    deleted = 0
    with store.personyze.client() as client:
        for row in client.iter_all(
            "products", columns=["internal_id"], order_by="internal_id", pace=pace
        ):
            iid = str(row.get("internal_id") or "")
            if iid and iid not in seen:
                ev = Event(
                    store.id,
                    "reconcile",
                    "reconcile",
                    iid,
                    version,
                    "delete",
                    f"reconcile-delete|{run}|{iid}",
                )
                rt.state.record(ev)
                deleted += 1
    return deleted


def run_periodic(rt: Runtime, stop: threading.Event) -> None:
    """The scheduler's reconciliation loop: every RECONCILE_INTERVAL_SECONDS per store that has
    a catalog API, taken by one scheduler only."""
    interval = rt.settings.reconcile_interval_seconds

    def run(store_id: str) -> None:
        with reconcile_monitor(store_id, interval):  # Sentry Crons check-ins
            reconcile(rt, store_id)

    every_interval(
        rt,
        stop,
        "reconcile",
        interval,
        lambda: [s.id for s in rt.settings.stores.values() if has_catalog_api(s)],
        run,
    )
