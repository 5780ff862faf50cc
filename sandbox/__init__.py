"""Local Personyze emulator for development and tests (`personyze-sync sandbox`).

Speaks plain HTTP on loopback under `/rest/...` with Basic auth (user `api`, password the
key, default `SANDBOX000...000KEY`, 40 characters) and follows the documented behaviour:
`products`/`articles` upsert on `internal_id` in patch mode and drop empty values, GET
returns arrays (one object for `/{id}`, 400 `Row not found`), writes answer bare numbers,
and every path modifier (`where` with `= != > < >= <= : !:`, `&`, `|`, `order_by`,
`order_by_desc`, `limit`, `columns`, `column`) is parsed on the raw, still-encoded path.

Fault settings (constructor kwargs, `--kebab-case` CLI flags, `POST /_control/faults`):

- `rate_limit` (req/s, None = off): sliding window; over it -> 503 with the whole seconds
  to wait in the body, plus `Retry-After` unless `rate_limit_retry_after_header=False`.
- `error_400_rate`, `error_500_rate`, `error_503_rate` (0..1): random 400 / 500 / 503.
- `retry_after_503` (seconds or None): the wait put in random 503s (body and header);
  `retry_after_in_body_only=True` leaves out the header.
- `latency_ms`: delay between doing a request (it is already logged) and answering it.
- `drop_before_commit_rate` (0..1): close the socket unanswered, without writing.
- `drop_after_commit_rate` (0..1): do the request, then close the socket unanswered.
- `force_503_for` (seconds): answer everything 503 (Retry-After = remaining seconds) for
  that long from when it was set.
- `seed`: makes the random faults reproducible.

Control endpoints (same Basic auth, not rate limited, not logged): `GET|POST
/_control/faults`, `GET /_control/log`, `POST /_control/reset` (tables, log and faults).
`Sandbox.request_log` holds `LogEntry(time, method, path, status)` for every API request,
faulted ones included (status 0 = connection dropped).
"""

from .faults import FAULT_NAMES, Faults
from .server import DEFAULT_API_KEY, DEFAULT_PORT, LogEntry, Sandbox, add_arguments, main, run
from .store import Store

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PORT",
    "FAULT_NAMES",
    "Faults",
    "LogEntry",
    "Sandbox",
    "Store",
    "add_arguments",
    "main",
    "run",
]
