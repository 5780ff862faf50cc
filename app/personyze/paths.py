"""Pure builder for Personyze REST paths (`{object}/{id}/where/.../order_by/.../limit/...`).

Personyze URL-decodes path arguments *after* splitting on `/`, `&`, `|` and `,`, so every
value is percent-encoded here with no safe characters: SKUs hold `/ & , | % +`, and an
unencoded one would silently change what a condition means. Column names are never encoded;
they are validated instead.

    build_path("products", where=cond("internal_id", "=", "A/B") & cond("price", ">", 5),
               order_by="title", limit=50, offset=10)
    -> "products/where/internal_id=A%2FB&price>5/order_by/title/limit/10,50"
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
    """Render one scalar as a fully percent-encoded path value.

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
    return quote(text, safe="")


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
