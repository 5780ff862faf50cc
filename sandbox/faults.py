"""Fault settings of the sandbox, and the sliding-window rate limiter they drive.

Tests flip these at runtime (attribute assignment, `Faults.update`, or
`POST /_control/faults`) to reproduce what workers must survive: throttling 503s with the
wait in the body (as Personyze sends it; a `Retry-After` header only on request), random
500s, permanent errors answered as 500 with a text body, long outages, slow answers, and
connections dropped after the write was committed (the "did it happen?" case).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

FAULT_NAMES = (
    "rate_limit",
    "retry_after_header",
    "error_400_rate",
    "error_500_rate",
    "error_500_text",
    "permanent_errors_as_500",
    "error_503_rate",
    "retry_after_503",
    "latency_ms",
    "drop_before_commit_rate",
    "drop_after_commit_rate",
    "force_503_for",
    "seed",
)


@dataclass
class Faults:
    """Every knob is off by default, so a bare sandbox behaves like a healthy Personyze."""

    rate_limit: float | None = None
    """Requests per second; above it -> 503 with the whole seconds to wait in the body."""
    retry_after_header: bool = False
    """Also send the seconds of every 503 as a `Retry-After` header. Off by default:
    Personyze puts them in the body and no client of the vendor reads such a header."""
    error_400_rate: float = 0.0
    """Probability (0..1) of rejecting the request with a 400 (a permanent error)."""
    error_500_rate: float = 0.0
    """Probability (0..1) of answering 500 with `error_500_text` instead of serving."""
    error_500_text: str = "Internal server error (sandbox fault)"
    """Plain-text body of those 500s (e.g. a permanent error: "Duplicate entry ...")."""
    permanent_errors_as_500: bool = False
    """Writes the sandbox rejects (its 400s: duplicate entry, bad column, bad body) are
    answered 500 with the same text, as Personyze does for some permanent input errors."""
    error_503_rate: float = 0.0
    """Probability (0..1) of answering a random 503."""
    retry_after_503: float | None = None
    """Seconds announced in the body of random 503s; None: no number."""
    latency_ms: float = 0.0
    """Delay between doing a request (and logging it) and answering it."""
    drop_before_commit_rate: float = 0.0
    """Probability (0..1) of closing the socket without answering and without writing."""
    drop_after_commit_rate: float = 0.0
    """Probability (0..1) of performing the request, then closing the socket unanswered."""
    force_503_for: float = 0.0
    """Answer every request 503 for this many seconds from when it was set."""
    seed: int | None = None
    """Seed for the random faults, for reproducible runs."""

    force_503_until: float = field(default=0.0, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _served: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        self._validate()
        if self.seed is not None:
            self._rng.seed(self.seed)
        if self.force_503_for:
            self.force_503_until = time.monotonic() + self.force_503_for

    def _validate(self) -> None:
        for name in (
            "error_400_rate",
            "error_500_rate",
            "error_503_rate",
            "drop_before_commit_rate",
            "drop_after_commit_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive (or None for no limit)")
        if self.latency_ms < 0 or self.force_503_for < 0:
            raise ValueError("latency_ms and force_503_for must not be negative")
        if not isinstance(self.error_500_text, str):
            raise ValueError("error_500_text must be a string")

    def update(self, **changes: Any) -> None:
        """Change some settings; unknown names raise ValueError (a typo must not pass)."""
        unknown = set(changes) - set(FAULT_NAMES)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}; known: {FAULT_NAMES}")
        old = self.as_dict()
        try:
            for name, value in changes.items():
                setattr(self, name, value)
            self._validate()
        except (TypeError, ValueError):
            for name, value in old.items():
                setattr(self, name, value)
            raise
        if "seed" in changes and self.seed is not None:
            self._rng.seed(self.seed)
        if "force_503_for" in changes:
            self.force_503_until = time.monotonic() + float(self.force_503_for or 0)
        if "rate_limit" in changes:
            with self._lock:
                self._served.clear()

    def reset(self) -> None:
        """Back to a healthy server."""
        self.update(**{f.name: f.default for f in fields(self) if f.name in FAULT_NAMES})

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FAULT_NAMES}

    def roll(self, rate: float) -> bool:
        """True with probability `rate`."""
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def forced_503_remaining(self) -> float:
        return max(0.0, self.force_503_until - time.monotonic())

    def rate_limit_wait(self) -> int | None:
        """Admit a request into the sliding window, or return the whole seconds to wait.

        Capacity is max(1, floor(rate)) requests per capacity/rate seconds, which is one
        second for any rate >= 1.
        """
        rate = self.rate_limit
        if rate is None:
            return None
        capacity = max(1, math.floor(rate))
        window = capacity / rate
        now = time.monotonic()
        with self._lock:
            while self._served and self._served[0] <= now - window:
                self._served.popleft()
            if len(self._served) >= capacity:
                return max(1, math.ceil(self._served[0] + window - now))
            self._served.append(now)
            return None
