"""Personyze reads for passes that are not worker tasks (reconciliation's catalog listing).

Every read goes through the account's shared rate limit (the same GCRA as the writes) and
honours its pause; a 503 pauses the whole account exactly as a worker's 503 does, and a 401
pauses it as a worker's 401 does. A worker task never sleeps holding a slot, but a
reconciliation pass runs in the scheduler or the CLI, alone, so here the caller waits
(docs/design.md, "Personyze reads").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from app.config import Settings, StoreConfig
from app.core.ratelimit import AccountLimiter, backoff
from app.observability import report_auth_failure
from app.personyze import (
    PersonyzeAuthError,
    PersonyzeServerError,
    PersonyzeTransportError,
    PersonyzeUnavailable,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass
class PacedReads:
    """A `pace` for `PersonyzeClient.iter_all`: `paced(fetch)` returns `fetch()` once the
    account has a token, retrying what a read may retry (reads change nothing)."""

    limiter: AccountLimiter
    backoff_base: float
    backoff_max: float
    auth_pause: float
    max_wait: float = 3600.0
    """Seconds one request may wait for tokens and pauses before the pass gives up."""
    max_attempts: int = 5
    """Tries of one request that fail with a 500 or a network error."""
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    on_first_auth_failure: Callable[[float], None] | None = field(default=None, repr=False)
    """Called with the pause when a read's 401 starts a pause (the first of it, as for a
    worker's 401): the store's Sentry report."""

    def __call__(self, fetch: Callable[[], T]) -> T:
        waited = 0.0
        failures = 0
        while True:
            decision = self.limiter.acquire()
            if not decision.allowed:
                if waited + decision.wait > self.max_wait:
                    raise PersonyzeUnavailable(
                        f"Personyze account {'paused' if decision.paused else 'throttled'} "
                        f"for more than {self.max_wait:.0f} s; read abandoned",
                        status=None,
                    )
                wait = max(decision.wait, 0.001)
                self.sleep(wait)
                waited += wait
                continue
            try:
                return fetch()
            except PersonyzeUnavailable as e:
                paused = self.limiter.unavailable(
                    e.retry_after, self.backoff_base, self.backoff_max
                )
                log.warning("personyze_read_paused", seconds=paused)
            except PersonyzeAuthError:
                paused, first = self.limiter.auth_failed(self.auth_pause)
                if first and self.on_first_auth_failure is not None:
                    self.on_first_auth_failure(paused)
                raise
            except (PersonyzeServerError, PersonyzeTransportError) as e:
                failures += 1
                if failures >= self.max_attempts:
                    raise
                delay = backoff(failures, self.backoff_base, self.backoff_max)
                log.warning("personyze_read_retry", error=type(e).__name__, delay=delay)
                self.sleep(delay)


def paced_reads(limiter: AccountLimiter, settings: Settings, store: StoreConfig) -> PacedReads:
    """PacedReads with the retry and pause settings the workers use; the first 401 of a pause
    is reported to Sentry as a worker's is."""

    def report(paused: float) -> None:
        report_auth_failure(store, paused)

    return PacedReads(
        limiter,
        settings.backoff_base_seconds,
        settings.backoff_max_seconds,
        settings.auth_pause_seconds,
        on_first_auth_failure=report,
    )
