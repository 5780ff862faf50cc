"""Small, strict Personyze REST client.

It never retries or sleeps: retry policy, rate limiting and 503 pauses belong to the
workers, which share them across processes. It only turns each HTTP exchange into a parsed
answer or exactly one typed error (see errors.py), and keeps the API key out of every
message, repr and redirect.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from .errors import (
    PersonyzeAuthError,
    PersonyzeBadRequest,
    PersonyzeError,
    PersonyzeServerError,
    PersonyzeTransportError,
    PersonyzeUnavailable,
    parse_retry_after,
)
from .paths import (
    MAX_WINDOW,
    SLOW_READ_LIMIT,
    WhereLike,
    and_where,
    build_path,
    cond,
    eq,
    is_slow,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Pace = Callable[[Callable[[], Any]], Any]
"""Runs one request: `pace(fetch)` returns `fetch()`, waiting and retrying as it sees fit."""


def _call(fetch: Callable[[], T]) -> T:
    return fetch()


DEFAULT_BASE_URL = "https://app.personyze.com/rest"
_REDACTED = "***"
BODY_REASON = 300
"""Max characters of a transport exception's text kept in an error message."""


# urllib3 percent-encodes "|" in every request path (it is not an RFC 3986 path character),
# which would turn Personyze's OR separator into a character of the value. The path
# builder never leaves "(" raw (values are fully encoded, names are validated), so the
# client writes "(" as a stand-in and the connection restores "|" in the request line.
# "<" and ">" are left to urllib3 (%3C/%3E), as the vendor's own n8n node sends them.
_PIPE_MARK = "("


class _PipeMixin(HTTPConnection):
    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        super().putrequest(method, url.replace(_PIPE_MARK, "|"), *args, **kwargs)


class _PipeHTTPConnection(_PipeMixin, HTTPConnection):
    pass


class _PipeHTTPSConnection(_PipeMixin, HTTPSConnection):
    pass


class _PipeHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PipeHTTPConnection


class _PipeHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PipeHTTPSConnection


class _Adapter(HTTPAdapter):
    """HTTPAdapter whose pools send Personyze's raw "|" separator (see _PIPE_MARK)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PipeHTTPPool, "https": _PipeHTTPSPool}


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """Personyze answers plain HTTP with 401 and the key would travel in clear text, so
    only https is allowed, except for loopback hosts (the local sandbox)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.username is not None or parts.password is not None:
        raise ValueError("base_url must not contain credentials; pass api_key instead")
    if not host:
        raise ValueError(f"base_url has no host (scheme {parts.scheme!r})")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)):
        return base_url.rstrip("/")
    raise ValueError(
        f"base_url must be https (plain http is allowed only for loopback hosts); "
        f"got scheme {parts.scheme!r} for host {host!r}"
    )


def _not_delivered(exc: requests.RequestException) -> bool:
    """True when the request certainly never left this machine (connect-phase failure)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        inner = exc.args[0]
        if isinstance(inner, MaxRetryError):
            return isinstance(inner.reason, NewConnectionError | ConnectTimeoutError)
        return isinstance(inner, NewConnectionError | ConnectTimeoutError)
    return False


class PersonyzeClient:
    """One account's Personyze REST API over one pooled `requests.Session`.

    `timeout` is (connect, read) seconds. Methods return parsed JSON (bare numbers become
    ints) or raise a `PersonyzeError` subclass.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: tuple[float, float] = (3.05, 15.0),
        pool_size: int = 10,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self._key = api_key
        self._basic = base64.b64encode(f"api:{api_key}".encode()).decode()
        self._session = requests.Session()
        adapter = _Adapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.auth = ("api", api_key)
        self._session.headers.update({"Accept": "application/json"})

    def __repr__(self) -> str:
        return f"PersonyzeClient(base_url={self.base_url!r}, api_key={_REDACTED!r})"

    def __enter__(self) -> PersonyzeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    # -- low level -------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Error texts end up in logs, Sentry and the dead-letter store: remove the key, and
        the Basic credentials a server error page might echo from our request headers."""
        for secret in (self._key, self._basic):
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return text

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request to `{base_url}/{path}` and return the parsed answer.

        `path` must come from `build_path` (raw "(" is reserved, see _PIPE_MARK).
        """
        url = f"{self.base_url}/{path.lstrip('/').replace('|', _PIPE_MARK)}"
        what = f"Personyze {method} /{path.lstrip('/')}"
        data = None
        headers = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
            headers = {"Content-Type": "application/json"}
        try:
            resp = self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,  # a redirect could carry the key elsewhere
            )
        except requests.RequestException as exc:
            delivered = not _not_delivered(exc)
            reason = self._scrub(f"{type(exc).__name__}: {exc}")[:BODY_REASON]
            raise PersonyzeTransportError(
                f"{what} failed ({'may have been' if delivered else 'not'} delivered): {reason}",
                maybe_delivered=delivered,
            ) from None
        text = self._scrub(resp.content.decode("utf-8", errors="replace"))
        status = resp.status_code
        if 200 <= status < 300:
            return self._parse(text, what, status)
        # a bare 400 is how Personyze refuses a read past its row caps: say it was empty
        message = f"{what} -> {status}: {text.strip()[:200] or '(empty body)'}"
        if status == 400:
            raise PersonyzeBadRequest(message, status=status, body=text)
        if status == 401:
            raise PersonyzeAuthError(message, status=status, body=text)
        if status == 503:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), text)
            raise PersonyzeUnavailable(message, status=status, body=text, retry_after=retry_after)
        raise PersonyzeServerError(message, status=status, body=text)

    @staticmethod
    def _parse(text: str, what: str, status: int) -> Any:
        stripped = text.strip()
        if not stripped:
            return None
        try:
            return json.loads(stripped)
        except ValueError:
            raise PersonyzeTransportError(
                f"{what} -> {status} with an unparseable body: {stripped[:200]}",
                maybe_delivered=True,
            ) from None

    @staticmethod
    def _as_int(value: object, what: str) -> int:
        """POST/PUT/DELETE answer a bare number; anything else is a server fault."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise PersonyzeServerError(
            f"{what}: expected a bare number, got {str(value)[:200]!r}",
            status=200,
            body=str(value),
        )

    @staticmethod
    def _target(obj: str, id: int | str | None, where: WhereLike | None) -> str:
        if (id is None) == (where is None):
            raise ValueError("give exactly one of id= or where= (never touch a whole table)")
        return build_path(obj, id=id, where=where)

    # -- CRUD ------------------------------------------------------------------------

    def get(self, obj: str, **path_kwargs: Any) -> Any:
        """GET a list (collections), a dict (`id=`) or a list of scalars (`column=`).

        Keyword arguments are those of `paths.build_path`. A slow read (`paths.is_slow`)
        must ask for at most 50 rows (offset + limit): Personyze answers more with a bare
        400, so it is refused here with a clearer message. `iter_all` pages within both caps.
        """
        if path_kwargs.get("id") is None and is_slow(obj, path_kwargs.get("where")):
            limit, offset = path_kwargs.get("limit"), path_kwargs.get("offset") or 0
            if limit is None or offset + limit > SLOW_READ_LIMIT:
                raise ValueError(
                    f"a read of {obj} with a range condition or an unindexed column is capped "
                    f"at {SLOW_READ_LIMIT} rows (offset + limit); pass limit <= "
                    f"{SLOW_READ_LIMIT} or use iter_all with a unique order_by column"
                )
        return self.request("GET", build_path(obj, **path_kwargs))

    def create(self, obj: str, row: dict[str, Any]) -> int:
        """POST one row; answers the new (or, for upserting objects, existing) row id."""
        return self._as_int(self.request("POST", build_path(obj), row), f"POST {obj}")

    def update(
        self,
        obj: str,
        row: dict[str, Any],
        *,
        id: int | str | None = None,
        where: WhereLike | None = None,
    ) -> int:
        """PUT a patch to the row `id` or the rows matching `where`; answers rows affected."""
        path = self._target(obj, id, where)
        return self._as_int(self.request("PUT", path, row), f"PUT {obj}")

    def delete(
        self,
        obj: str,
        *,
        id: int | str | None = None,
        where: WhereLike | None = None,
    ) -> int:
        """DELETE the row `id` or the rows matching `where`; answers rows affected (0 on
        repeat, which makes deletes idempotent)."""
        path = self._target(obj, id, where)
        return self._as_int(self.request("DELETE", path), f"DELETE {obj}")

    def account(self) -> Any:
        """`GET /account`: reads nothing, changes nothing; a cheap credentials check."""
        return self.request("GET", "account")

    # -- products --------------------------------------------------------------------

    def product_upsert(self, row: dict[str, Any]) -> int:
        """Upsert a product by its unique `internal_id` (Personyze patch mode: fields not
        sent, or sent empty, keep their stored values). Answers the row id."""
        internal_id = row.get("internal_id")
        if internal_id is None or str(internal_id) == "":
            raise ValueError("product_upsert needs a non-empty internal_id")
        return self.create("products", row)

    def product_delete(self, internal_id: str) -> int:
        """Delete a product by `internal_id`; answers rows affected (0 if already gone)."""
        if internal_id is None or str(internal_id) == "":
            raise ValueError("product_delete needs a non-empty internal_id")
        return self.delete("products", where=eq("internal_id", str(internal_id)))

    # -- pagination ------------------------------------------------------------------

    def iter_all(
        self,
        obj: str,
        page_size: int = MAX_WINDOW,
        *,
        where: WhereLike | None = None,
        order_by: str | Iterable[str] | None = None,
        order_by_desc: str | Iterable[str] | None = None,
        columns: str | Iterable[str] | None = None,
        pace: Pace | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every matching row within Personyze's two read limits.

        A fast read (no `where`, or equality on indexed columns) pages with `limit/OFFSET,N`
        while OFFSET+N <= 1000. Past that window, or from the start for a slow read (see
        `paths.is_slow`), it continues by keyset on the single ordering column (`order_by`
        or `order_by_desc`): `COL>last` (`COL<last` descending) ANDed onto `where`, offset 0,
        at most SLOW_READ_LIMIT rows a page, because the range makes the read slow. That
        column must be unique (e.g. `internal_id`), or rows sharing a boundary value are
        skipped. Without one, iteration stops at the window (1000 rows, or 50 for a slow
        read) with a warning. Every page stops at a short page.

        `pace`, if given, runs each page request (`pace(fetch)` returns `fetch()`): the
        caller's hook to wait for the account's rate limit and retry (the client never
        sleeps or retries itself).
        """
        if isinstance(page_size, bool) or not 1 <= page_size <= MAX_WINDOW:
            raise ValueError(f"page_size must be between 1 and {MAX_WINDOW}")
        if order_by is not None:
            order_by = [order_by] if isinstance(order_by, str) else list(order_by)
        if order_by_desc is not None:
            order_by_desc = (
                [order_by_desc] if isinstance(order_by_desc, str) else list(order_by_desc)
            )
        key_col, key_op = self._keyset(order_by, order_by_desc)
        if columns is not None and key_col is not None:
            names = [columns] if isinstance(columns, str) else list(columns)
            if key_col not in names:
                raise ValueError(f"columns must include the ordering column {key_col!r}")
            columns = names
        run = pace or _call

        def page(w: WhereLike | None, n: int, offset: int | None) -> list[dict[str, Any]]:
            rows = run(
                lambda: self.get(
                    obj,
                    where=w,
                    order_by=order_by,
                    order_by_desc=order_by_desc,
                    columns=columns,
                    limit=n,
                    offset=offset,
                )
            )
            if not isinstance(rows, list):
                raise PersonyzeServerError(
                    f"GET {obj}: expected a JSON array", status=200, body=str(rows)
                )
            return rows

        slow = is_slow(obj, where)
        window = SLOW_READ_LIMIT if slow else MAX_WINDOW
        offset = 0
        rows: list[dict[str, Any]] = []
        # Offset windows: the first 1000 rows of a fast read, the first 50 of a slow one.
        while offset < window:
            n = min(page_size, window - offset)
            rows = page(where, n, offset)
            yield from rows
            if len(rows) < n:
                return
            offset += n
        if key_col is None or key_op is None:
            log.warning(
                "Personyze %s: stopped at the %d-row window; pass a unique order_by column "
                "to continue by keyset",
                obj,
                window,
            )
            return
        n = min(page_size, SLOW_READ_LIMIT)
        while True:
            last = rows[-1].get(key_col)
            if last is None:
                raise PersonyzeError(f"GET {obj}: row without ordering column {key_col!r}")
            rows = page(and_where(where, cond(key_col, key_op, last)), n, None)
            yield from rows
            if len(rows) < n:
                return

    @staticmethod
    def _keyset(
        order_by: list[str] | None, order_by_desc: list[str] | None
    ) -> tuple[str | None, str | None]:
        """The single ordering column usable for keyset continuation, and its operator."""
        if order_by is not None and order_by_desc is not None:
            return None, None
        for names, op in ((order_by, ">"), (order_by_desc, "<")):
            if names is not None and len(names) == 1:
                return names[0], op
        return None, None


__all__ = ["DEFAULT_BASE_URL", "PersonyzeClient", "check_base_url"]
