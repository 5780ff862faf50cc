"""In-memory Personyze tables and the path-modifier parser/evaluator.

The parser works on the *raw* (still percent-encoded) path: it splits on `/`, then the
where-expression on `|` and `&`, and splits each term at its operator. Each value is then
decoded once, split on `,` (an OR-list, for every operator), and each part decoded again,
the way PHP's `urldecode` does (`+` becomes a space). So a literal comma must arrive as
`%252C`: `%2C` is a separator. This is the model behind Personyze's Android SDK, which sends
`value.replace(",", "%2C")` URL-encoded again; that the second decode is a full urldecode
(`%XX` and `+`) is our inference, the harsher reading, so a client that passes here also
passes if the real server only restores commas.

Reads are capped as Personyze's n8n node found live: a "slow" read (a range condition, or a
condition on a column without an index) that asks for more than 50 rows (offset + limit)
gets a bare 400; any read is limited to the first 1000 rows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, unquote_plus

WINDOW = 1000
SLOW_WINDOW = 50
RANGE_OPS = (">", "<", ">=", "<=")
DEFAULT_LIMIT = 1000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The first character of `<`, `<=`, `>`, `>=` may arrive percent-encoded: urllib3 and
# WHATWG-URL clients (the vendor's n8n node) encode `<` and `>` but never `=`, `!` or `:`.
_TERM = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*)(!=|!:|(?:>|%3E)=|(?:<|%3C)=|=|>|%3E|<|%3C|:)(.*)$",
    re.DOTALL | re.IGNORECASE,
)
_NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
MODIFIERS = ("where", "order_by", "order_by_desc", "limit", "columns", "column")


class BadRequest(Exception):
    """Becomes a 400 with this plain-text message, as Personyze answers rejected input."""


@dataclass(frozen=True)
class TableSpec:
    """Primary-key column, the columns a POST merges on instead of inserting, the indexed
    columns (a condition on any other makes a read slow), and the text columns (compared
    and sorted as strings, as a VARCHAR is, never as numbers)."""

    pk: str
    merge_on: tuple[str, ...] = ()
    indexed: tuple[str, ...] = ()
    text: tuple[str, ...] = ()


TABLES: dict[str, TableSpec] = {
    # products.internal_id is a UNIQUE index: POST upserts on it (n8n node, live-verified).
    # That it is a text column (so "10" sorts before "9") is our inference.
    "products": TableSpec("id", ("internal_id",), ("id", "internal_id"), ("internal_id",)),
    "articles": TableSpec("id", ("internal_id",), ("id", "internal_id"), ("internal_id",)),
    "placeholders": TableSpec("id", indexed=("id",)),
    # users merge on user_id or email; internal_id does NOT merge (n8n node, live-verified).
    # Indexed columns as the Objects Reference lists them.
    "users": TableSpec(
        "user_id",
        ("user_id", "email"),
        ("user_id", "internal_id", "fb_id", "email", "last_session_time", "data_last_modified"),
    ),
}


# -- query model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    col: str
    op: str
    values: tuple[str, ...]  # decoded parts of the value (split on "," after one decode)


@dataclass
class Query:
    """Parsed modifiers of one request path."""

    id: int | None = None
    where: list[list[Term]] | None = None  # OR of AND-groups
    order: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    columns: list[str] | None = None
    column: str | None = None


def _names(raw: str, what: str) -> list[str]:
    names = [unquote(p) for p in raw.split(",")]
    for n in names:
        if not _NAME.match(n):
            raise BadRequest(f"Invalid column name in {what}: {n!r}")
    return names


def parse_where(raw: str) -> list[list[Term]]:
    """`a=1&b>2|c:x,y` -> [[a=1, b>2], [c:(x,y)]]; AND binds tighter than OR."""
    groups: list[list[Term]] = []
    for raw_group in raw.split("|"):
        group: list[Term] = []
        for raw_term in raw_group.split("&"):
            m = _TERM.match(raw_term)
            if not m:
                raise BadRequest(f"Invalid where condition: {unquote(raw_term)!r}")
            col, raw_op, raw_value = m.groups()
            values = tuple(unquote_plus(v) for v in unquote(raw_value).split(","))
            group.append(Term(col, unquote(raw_op), values))
        groups.append(group)
    return groups


def _int(raw: str, what: str) -> int:
    if not raw.isdigit() or not raw.isascii():
        raise BadRequest(f"Invalid {what}: {unquote(raw)!r}")
    return int(raw)


def parse_modifiers(segments: list[str]) -> Query:
    """Parse the raw segments after the object name: `[id/]mod/val/mod/val...`."""
    q = Query()
    segs = [s for s in segments if s != ""]
    if segs and segs[0].isdigit() and segs[0].isascii():
        q.id = int(segs.pop(0))
    if len(segs) % 2:
        raise BadRequest(f"Modifier {unquote(segs[-1])!r} needs a value")
    seen: set[str] = set()
    order_asc: list[str] = []
    order_desc: list[str] = []
    for i in range(0, len(segs), 2):
        mod, raw = segs[i], segs[i + 1]
        if mod not in MODIFIERS:
            raise BadRequest(f"Unknown modifier: {unquote(mod)!r}")
        if mod in seen:
            raise BadRequest(f"Modifier {mod!r} given more than once")
        seen.add(mod)
        if mod == "where":
            q.where = parse_where(raw)
        elif mod == "order_by":
            order_asc = _names(raw, mod)
        elif mod == "order_by_desc":
            order_desc = _names(raw, mod)
        elif mod == "limit":
            parts = raw.split(",")
            if len(parts) == 1:
                q.offset, q.limit = 0, _int(parts[0], "limit")
            elif len(parts) == 2:
                q.offset, q.limit = _int(parts[0], "offset"), _int(parts[1], "limit")
            else:
                raise BadRequest(f"Invalid limit: {unquote(raw)!r}")
            if q.offset + q.limit > WINDOW:
                raise BadRequest(f"Can't select more than {WINDOW} rows (offset + limit)")
        elif mod == "columns":
            q.columns = _names(raw, mod)
        else:
            names = _names(raw, mod)
            if len(names) != 1:
                raise BadRequest("Modifier 'column' takes one column")
            q.column = names[0]
    q.order = [(c, False) for c in order_asc] + [(c, True) for c in order_desc]
    return q


# -- comparison ----------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _as_number(text: str) -> Decimal | None:
    if not _NUMERIC.match(text):
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


def _compare(stored: Any, wanted: str, text: bool = False) -> int | None:
    """-1/0/1 comparing a stored value with a path value: numerically when both parse as
    numbers (unless the column is text), else as strings. None for a missing value (SQL
    NULL: every test is false)."""
    if stored is None:
        return None
    left = _as_text(stored)
    ln, rn = (None, None) if text else (_as_number(left), _as_number(wanted))
    if ln is not None and rn is not None:
        return (ln > rn) - (ln < rn)
    return (left > wanted) - (left < wanted)


_TESTS: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0,
    "!=": lambda c: c != 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
}


def term_matches(row: dict[str, Any], term: Term, text: frozenset[str] = frozenset()) -> bool:
    """A value with several parts is an OR-list: `=`, `:` and the ranges match if any part
    does; `!=` and `!:` if none is equal."""
    results = [_compare(row.get(term.col), v, term.col in text) for v in term.values]
    known = [r for r in results if r is not None]
    if len(known) < len(results):
        return False
    if term.op in ("!=", "!:"):
        return not any(r == 0 for r in known)
    test = _TESTS["=" if term.op == ":" else term.op]
    return any(test(r) for r in known)


def row_matches(
    row: dict[str, Any], where: list[list[Term]] | None, text: frozenset[str] = frozenset()
) -> bool:
    if where is None:
        return True
    return any(all(term_matches(row, t, text) for t in group) for group in where)


def _sort_key(value: Any, text: bool = False) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    rendered = _as_text(value)
    number = None if text else _as_number(rendered)
    return (1, number) if number is not None else (2, rendered)


def is_empty(value: Any) -> bool:
    """Personyze's `insertWithoutEmpty`: "" and null are dropped on write."""
    return value is None or value == ""


# -- tables --------------------------------------------------------------------------


class Table:
    """Rows keyed by auto-increment primary key; not locked itself (Store holds the lock)."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        # unique indexes of the merge columns (other than the pk): text value -> row id
        self.index: dict[str, dict[str, int]] = {c: {} for c in spec.merge_on if c != spec.pk}

    def _clean(self, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or not _NAME.match(key):
                raise BadRequest(f"Invalid column name: {key!r}")
            if isinstance(value, dict | list):
                raise BadRequest(f"Column {key!r}: value must be a scalar")
            if key == self.spec.pk or is_empty(value):
                continue
            out[key] = value
        return out

    def _find_merge(self, data: dict[str, Any]) -> int | None:
        for col in self.spec.merge_on:
            value = data.get(col)
            if is_empty(value):
                continue
            wanted = _as_text(value)
            if col == self.spec.pk:
                if wanted.isdigit() and int(wanted) in self.rows:
                    return int(wanted)
                continue
            rid = self.index[col].get(wanted)
            if rid is not None:
                return rid
        return None

    def _reindex(self, rid: int, old: dict[str, Any], new: dict[str, Any]) -> None:
        for col, idx in self.index.items():
            if col in old:
                idx.pop(_as_text(old[col]), None)
            if col in new:
                idx[_as_text(new[col])] = rid

    def _check_unique(self, rows: list[dict[str, Any]], clean: dict[str, Any]) -> None:
        """A patch may not give two rows the same unique value (MySQL: Duplicate entry)."""
        for col in self.index:
            if col not in clean:
                continue
            owner = self.index[col].get(_as_text(clean[col]))
            ids = {r[self.spec.pk] for r in rows}
            if len(ids) > 1 or (owner is not None and owner not in ids):
                raise BadRequest(f"Duplicate entry {_as_text(clean[col])!r} for key {col!r}")

    def insert(self, data: dict[str, Any]) -> int:
        """Insert, or patch the row that shares a merge column (upsert); answer its id."""
        clean = self._clean(data)
        rid = self._find_merge(data)
        if rid is not None:
            row = self.rows[rid]
            self._check_unique([row], clean)
            old = dict(row)
            row.update(clean)
            self._reindex(rid, old, row)
            return rid
        rid = self.next_id
        self.next_id += 1
        self.rows[rid] = {self.spec.pk: rid, **clean}
        self._reindex(rid, {}, self.rows[rid])
        return rid

    def is_slow(self, q: Query) -> bool:
        """A range condition, or a condition on a column without an index."""
        terms = [t for group in q.where or [] for t in group]
        return any(t.op in RANGE_OPS or t.col not in self.spec.indexed for t in terms)

    def matching(self, q: Query) -> list[dict[str, Any]]:
        text = frozenset(self.spec.text)
        rows = [r for r in self.rows.values() if row_matches(r, q.where, text)]
        if q.id is not None:
            rows = [r for r in rows if r[self.spec.pk] == q.id]
        return rows

    def select(self, q: Query) -> list[dict[str, Any]]:
        if q.id is None and q.offset + q.limit > SLOW_WINDOW and self.is_slow(q):
            raise BadRequest("")  # Personyze's answer here is a bare 400
        rows = self.matching(q)
        rows.sort(key=lambda r: r[self.spec.pk])
        for col, desc in reversed(q.order):
            text = col in self.spec.text
            rows.sort(key=lambda r: _sort_key(r.get(col), text), reverse=desc)
        return [dict(r) for r in rows[q.offset : q.offset + q.limit]]

    def update(self, q: Query, data: dict[str, Any]) -> int:
        clean = self._clean(data)
        rows = self.matching(q)
        self._check_unique(rows, clean)
        for row in rows:
            old = dict(row)
            row.update(clean)
            self._reindex(row[self.spec.pk], old, row)
        return len(rows)

    def delete(self, q: Query) -> int:
        rows = self.matching(q)
        for row in rows:
            del self.rows[row[self.spec.pk]]
            self._reindex(row[self.spec.pk], row, {})
        return len(rows)


def project(rows: list[dict[str, Any]], q: Query) -> list[Any]:
    """Apply `columns/` (dicts with only those keys) or `column/` (flat list of values)."""
    if q.column is not None:
        return [r.get(q.column) for r in rows]
    if q.columns is not None:
        return [{c: r.get(c) for c in q.columns} for r in rows]
    return rows


class Store:
    """Thread-safe set of Personyze tables; the server's handler threads share one."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.tables: dict[str, Table] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.tables = {name: Table(spec) for name, spec in TABLES.items()}

    def _table(self, obj: str) -> Table:
        table = self.tables.get(obj)
        if table is None:
            raise BadRequest(f"Unknown object: {obj!r}")
        return table

    def insert(self, obj: str, data: dict[str, Any]) -> int:
        with self._lock:
            return self._table(obj).insert(data)

    def select(self, obj: str, q: Query) -> list[dict[str, Any]]:
        with self._lock:
            return self._table(obj).select(q)

    def update(self, obj: str, q: Query, data: dict[str, Any]) -> int:
        with self._lock:
            return self._table(obj).update(q, data)

    def delete(self, obj: str, q: Query) -> int:
        with self._lock:
            return self._table(obj).delete(q)

    def rows(self, obj: str) -> list[dict[str, Any]]:
        """Copies of every row of `obj`, by primary key (for tests and debugging)."""
        with self._lock:
            table = self._table(obj)
            return [dict(table.rows[k]) for k in sorted(table.rows)]
