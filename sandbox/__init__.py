"""Local Personyze emulator for development and tests (`personyze-sync sandbox`).

Speaks plain HTTP on loopback under `/rest/...` with Basic auth (user `api`, password the
key, default `SANDBOX000...000KEY`, 40 characters) and follows the documented behaviour:
`products`/`articles` upsert on `internal_id` in patch mode and drop empty values, GET
returns arrays (one object for `/{id}`, 400 `Row not found`), writes answer bare numbers,
and every path modifier (`where` with `= != > < >= <= : !:`, `&`, `|`, `order_by`,
`order_by_desc`, `limit`, `columns`, `column`) is parsed on the raw, still-encoded path.
What Personyze's own clients found live is enforced too (store.py): reads past 1000 rows
and "slow" reads (a range, or an unindexed column) past 50 rows get a bare 400, and where
values are decoded, split on `,`, and decoded again (a literal comma is `%252C`).

Fault settings (constructor kwargs, `--kebab-case` CLI flags, `POST /_control/faults`):

- `rate_limit` (req/s, None = off): sliding window; over it -> 503 with the whole seconds
  to wait in the body.
- `retry_after_header` (default False): every 503 also sends its seconds as `Retry-After`
  (Personyze sends them only in the body).
- `error_400_rate`, `error_500_rate`, `error_503_rate` (0..1): random 400 / 500 / 503.
- `error_500_text`: the plain-text body of those random 500s.
- `permanent_errors_as_500` (default False): writes the sandbox rejects (duplicate entry,
  bad column, bad body) answer 500 with their text instead of 400, as some of Personyze's
  permanent input errors do.
- `retry_after_503` (seconds or None): the wait put in the body of random 503s.
- `latency_ms`: delay between doing a request (it is already logged) and answering it.
- `drop_before_commit_rate` (0..1): close the socket unanswered, without writing.
- `drop_after_commit_rate` (0..1): do the request, then close the socket unanswered.
- `force_503_for` (seconds): answer everything 503 (the remaining whole seconds in the
  body) for that long from when it was set.
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
