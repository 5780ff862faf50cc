"""Typed Personyze errors.

Workers pick a retry policy by exception class (docs/design.md invariants 6 and 7), so every
failure of a Personyze call is raised as exactly one of these. Messages carry the status
and the plain-text body (Personyze errors are text, not JSON) but never credentials.
"""

from __future__ import annotations

import math
import re
import time
from email.utils import parsedate_to_datetime

BODY_LIMIT = 500
# A bare number, or a number followed by "second(s)", e.g. "Please retry in 5 seconds".
_BODY_WAIT = re.compile(r"^(?P<n>\d{1,6}(?:\.\d+)?)$|(?P<n2>\d{1,6}(?:\.\d+)?)\s*sec", re.I)
MAX_RETRY_AFTER = 3600.0


class PersonyzeError(Exception):
    """Base of every Personyze failure; `status` is None when no HTTP answer was read."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = (body or "")[:BODY_LIMIT]


class PersonyzeBadRequest(PersonyzeError):
    """400: Personyze rejected the input; permanent, retrying the same call cannot help."""


class PersonyzeAuthError(PersonyzeError):
    """401: wrong, revoked or missing key; the account must pause until a human fixes it."""


class PersonyzeServerError(PersonyzeError):
    """500, other 5xx (not 503) and any unexpected status: retry with backoff."""


class PersonyzeUnavailable(PersonyzeError):
    """503: Personyze asks us to stand by; `retry_after` is its wait in seconds, if given."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 503,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class PersonyzeTransportError(PersonyzeError):
    """No usable HTTP answer (timeout, reset, truncated body).

    `maybe_delivered` tells the caller whether the write may have happened anyway: False
    only when the request certainly never reached the server (connect failure/timeout).
    """

    def __init__(self, message: str, *, maybe_delivered: bool) -> None:
        super().__init__(message, status=None, body="")
        self.maybe_delivered = maybe_delivered


def parse_retry_after(
    header: str | None, body: str | None, now: float | None = None
) -> float | None:
    """Seconds to wait from a 503: `Retry-After` (seconds or HTTP date), else a bare number
    or "N second(s)" in the body (Personyze documents "stand by a number of seconds"), else
    None. Capped at MAX_RETRY_AFTER: a proxy's "503 Service Unavailable" page or a huge
    header must not silence an account for days."""
    if header:
        value = header.strip()
        try:
            seconds = float(value)
            if math.isfinite(seconds):
                return min(MAX_RETRY_AFTER, max(0.0, seconds))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            current = time.time() if now is None else now
            return min(MAX_RETRY_AFTER, max(0.0, when.timestamp() - current))
    if body:
        match = _BODY_WAIT.search(body.strip())
        if match:
            return min(MAX_RETRY_AFTER, float(match.group("n") or match.group("n2")))
    return None
