"""Pure builder for Personyze REST paths (`{object}/{id}/where/.../order_by/.../limit/...`),
and what the builder knows about which reads Personyze caps.

Values in `where`: Personyze splits the path on `/` and the where-expression on `&` and `|`,
decodes each value once, splits it on `,` (an OR-list), then decodes each part again. So
every value is percent-encoded with no safe characters (SKUs hold `/ & , | % +`), and the
characters that the *second* decode would read (`%`, `,`, `+`) are escaped once before that:
a literal `,` arrives as `%252C`, as Personyze's Android SDK sends it (`value.replace(",",
"%2C")` before URL-encoding; docs/design.md, "Personyze reads"). Escaping `%` and `+` the
same way is our inference from that model (a second decode would turn `%41` into `A`, and
PHP's urldecode turns `+` into a space); it is not verified against the live API. Column
names are never encoded; they are validated instead.

    build_path("products", where=cond("internal_id", "=", "A/B,C") & cond("price", ">", 5),
               order_by="title", limit=50, offset=10)
    -> "products/where/internal_id=A%2FB%252CC&price>5/order_by/title/limit/10,50"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias
from urllib.parse import quote

MAX_WINDOW = 1000
"""Personyze refuses any read whose offset + limit passes 1000 rows."""

SLOW_READ_LIMIT = 50
"""A "slow" read (see `is_slow`) is refused with a bare 400 when offset + limit passes 50
(Personyze's n8n node, checked live there)."""

INDEXED: dict[str, frozenset[str]] = {
    # internal_id carries a UNIQUE index (n8n node, live); the products primary key's name
    # is undocumented, so no other products column is counted as indexed.
    "products": frozenset({"internal_id"}),
    "articles": frozenset({"internal_id"}),
    # the Objects Reference lists these users columns as indexed
    "users": frozenset(
        {"user_id", "internal_id", "fb_id", "email", "last_session_time", "data_last_modified"}
    ),
}
"""Columns known to be indexed, per object. Unknown objects and columns count as unindexed:
treating a fast read as slow costs only smaller pages, the reverse costs a 400."""

Op = Literal["=", "!=", ">", "<", ">=", "<=", ":", "!:"]
OPERATORS: tuple[str, ...] = ("=", "!=", ">", "<", ">=", "<=", ":", "!:")
LIST_OPERATORS: tuple[str, ...] = (":", "!:")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str, what: str = "column") -> str:
    """Reject names that would need encoding: they would be taken as syntax, not a name."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid {what} name: {name!r}")
    return name


def encode_value(value: Any) -> str:
    """Render one scalar as a `where` value that survives Personyze's decode, split on `,`,
    decode (see the module docstring): `A,B` -> `A%252CB`, `/` -> `%2F`, `%` -> `%2525`.

    bools become `1`/`0` (how MySQL stores them); ints, floats, Decimals and strings use
    `str()`. None is refused: there is no way to write NULL in a Personyze path.
    """
    if value is None:
        raise ValueError("None cannot be used as a path value")
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, str | int | float | Decimal):
        text = str(value)
    else:
        raise ValueError(f"unsupported path value type: {type(value).__name__}")
    inner = text.replace("%", "%25").replace(",", "%2C").replace("+", "%2B")
    return quote(inner, safe="")


@dataclass(frozen=True)
class Condition:
    """One `COL{op}VAL` term; `value` is a list for the `:` / `!:` operators."""

    col: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        check_name(self.col)
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}; expected one of {OPERATORS}")
        if self.op in LIST_OPERATORS:
            if isinstance(self.value, str | bytes) or not isinstance(self.value, Iterable):
                raise ValueError(f"operator {self.op!r} needs a list of values")
            values = tuple(self.value)
            if not values:
                raise ValueError(f"operator {self.op!r} needs at least one value")
            object.__setattr__(self, "value", values)

    def render(self) -> str:
        if self.op in LIST_OPERATORS:
            rendered = ",".join(encode_value(v) for v in self.value)
        else:
            rendered = encode_value(self.value)
        return f"{self.col}{self.op}{rendered}"

    def __and__(self, other: Condition | AllOf) -> AllOf:
        return all_of(self, other)

    def __or__(self, other: Condition | AllOf | AnyOf) -> AnyOf:
        return any_of(self, other)


@dataclass(frozen=True)
class AllOf:
    """Conditions joined by `&` (AND binds tighter than OR in Personyze)."""

    conds: tuple[Condition, ...]

    def render(self) -> str:
        return "&".join(c.render() for c in self.conds)

    def __and__(self, other: Condition | AllOf) -> AllOf:
        return all_of(self, other)

    def __or__(self, other: Condition | AllOf | AnyOf) -> AnyOf:
        return any_of(self, other)


@dataclass(frozen=True)
class AnyOf:
    """AND-groups joined by `|`. There are no parentheses, so an OR cannot nest in an AND."""

    groups: tuple[AllOf, ...]

    def render(self) -> str:
        return "|".join(g.render() for g in self.groups)

    def __or__(self, other: Condition | AllOf | AnyOf) -> AnyOf:
        return any_of(self, other)


Where: TypeAlias = Condition | AllOf | AnyOf
WhereLike: TypeAlias = Condition | AllOf | AnyOf | Mapping[str, Any]


def cond(col: str, op: str, value: Any) -> Condition:
    """`cond("price", ">=", 5)` -> `price>=5`; `cond("id", ":", [1, 2])` -> `id:1,2`."""
    return Condition(col, op, value)


def eq(col: str, value: Any) -> Condition:
    """Shorthand for the most common condition, `COL=VAL`."""
    return Condition(col, "=", value)


def all_of(*conds: Condition | AllOf) -> AllOf:
    """AND the given terms together (nested AllOf are flattened)."""
    flat: list[Condition] = []
    for c in conds:
        if isinstance(c, Condition):
            flat.append(c)
        elif isinstance(c, AllOf):
            flat.extend(c.conds)
        else:
            raise TypeError("all_of takes Condition/AllOf only: Personyze has no parentheses")
    if not flat:
        raise ValueError("all_of needs at least one condition")
    return AllOf(tuple(flat))


def any_of(*groups: Condition | AllOf | AnyOf) -> AnyOf:
    """OR the given AND-groups together (nested AnyOf are flattened)."""
    flat: list[AllOf] = []
    for g in groups:
        if isinstance(g, AnyOf):
            flat.extend(g.groups)
        else:
            flat.append(all_of(g))
    if not flat:
        raise ValueError("any_of needs at least one group")
    return AnyOf(tuple(flat))


def to_where(where: WhereLike) -> Where:
    """Accept a mapping `{col: value}` as an AND of equalities, for convenience."""
    if isinstance(where, Condition | AllOf | AnyOf):
        return where
    if isinstance(where, Mapping):
        return all_of(*(eq(k, v) for k, v in where.items()))
    raise TypeError(f"unsupported where: {type(where).__name__}")


def and_where(where: WhereLike | None, extra: Condition) -> Where:
    """`where AND extra`, distributing over OR groups since parentheses do not exist."""
    if where is None:
        return extra
    w = to_where(where)
    if isinstance(w, AnyOf):
        return AnyOf(tuple(all_of(g, extra) for g in w.groups))
    return all_of(w, extra)


RANGE_OPERATORS: tuple[str, ...] = (">", "<", ">=", "<=")


def conditions(where: WhereLike) -> tuple[Condition, ...]:
    """Every term of a where-expression, whatever its AND/OR shape."""
    w = to_where(where)
    if isinstance(w, Condition):
        return (w,)
    if isinstance(w, AllOf):
        return w.conds
    return tuple(c for g in w.groups for c in g.conds)


def is_slow(obj: str, where: WhereLike | None) -> bool:
    """True when Personyze caps this read at SLOW_READ_LIMIT rows: some condition is a range
    (`>`, `<`, `>=`, `<=`, even on an indexed column) or names a column not known to be
    indexed (n8n node, live). Whether `!=`, `:` and `!:` on an index are fast is not
    documented; they are counted fast here, as the rule is stated."""
    if where is None:
        return False
    indexed = INDEXED.get(obj, frozenset())
    return any(c.op in RANGE_OPERATORS or c.col not in indexed for c in conditions(where))


def _names(value: str | Iterable[str], what: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names:
        raise ValueError(f"{what} needs at least one column")
    return [check_name(n) for n in names]


def build_path(
    obj: str,
    id: int | str | None = None,
    where: WhereLike | None = None,
    order_by: str | Iterable[str] | None = None,
    order_by_desc: str | Iterable[str] | None = None,
    limit: int | None = None,
    offset: int | None = None,
    columns: str | Iterable[str] | None = None,
    column: str | None = None,
) -> str:
    """Build `obj[/id][/where/..][/order_by/..][/order_by_desc/..][/limit/..][/columns/..]`.

    Raises ValueError for bad names, an offset without a limit, or a read that would pass
    the 1000-row window (Personyze would refuse it anyway, with a less helpful 400).
    """
    parts = [check_name(obj, "object")]
    if id is not None:
        if isinstance(id, bool) or not str(id).isdigit() or not str(id).isascii():
            raise ValueError(f"id must be a non-negative integer, got {id!r}")
        parts.append(str(int(id)))
    if where is not None:
        parts += ["where", to_where(where).render()]
    if order_by is not None:
        parts += ["order_by", ",".join(_names(order_by, "order_by"))]
    if order_by_desc is not None:
        parts += ["order_by_desc", ",".join(_names(order_by_desc, "order_by_desc"))]
    if offset is not None and limit is None:
        raise ValueError("offset needs a limit")
    if limit is not None:
        for label, n in (("limit", limit), ("offset", offset or 0)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"{label} must be a non-negative int, got {n!r}")
        if (offset or 0) + limit > MAX_WINDOW:
            raise ValueError(
                f"offset + limit = {(offset or 0) + limit} passes the {MAX_WINDOW}-row window"
            )
        parts += ["limit", f"{offset},{limit}" if offset is not None else str(limit)]
    if columns is not None and column is not None:
        raise ValueError("use either columns or column, not both")
    if columns is not None:
        parts += ["columns", ",".join(_names(columns, "columns"))]
    if column is not None:
        parts += ["column", check_name(column)]
    return "/".join(parts)
