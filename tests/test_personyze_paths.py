"""Path builder: rendering, validation, and a round trip through the sandbox's parser."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.personyze.paths import (
    AnyOf,
    all_of,
    and_where,
    any_of,
    build_path,
    cond,
    encode_value,
    eq,
    is_slow,
)
from sandbox.store import Term, parse_modifiers

SPECIALS = "/&,|%+ =:?#"


def test_documented_example() -> None:
    path = build_path(
        "products",
        where=all_of(cond("internal_id", "=", "A/B"), cond("price", ">", 5)),
        order_by="title",
        limit=50,
        offset=10,
    )
    assert path == "products/where/internal_id=A%2FB&price>5/order_by/title/limit/10,50"


@pytest.mark.parametrize(
    ("op", "value", "rendered"),
    [
        ("=", "x", "c=x"),
        ("!=", "x", "c!=x"),
        (">", 5, "c>5"),
        ("<", 5, "c<5"),
        (">=", Decimal("1.50"), "c>=1.50"),
        ("<=", 2.5, "c<=2.5"),
        (":", [1, "a,b", "c|d"], "c:1,a%252Cb,c%7Cd"),
        ("!:", ("x y", "é"), "c!:x%20y,%C3%A9"),
    ],
)
def test_every_operator(op: str, value: object, rendered: str) -> None:
    assert build_path("t", where=cond("c", op, value)) == f"t/where/{rendered}"


def test_every_special_character_is_encoded() -> None:
    # `%`, `,` and `+` are read again by the server's second decode: escaped twice
    assert encode_value(SPECIALS) == "%2F%26%252C%7C%2525%252B%20%3D%3A%3F%23"
    assert encode_value("ü€") == "%C3%BC%E2%82%AC"


def test_comma_double_encoded_as_the_android_sdk_does() -> None:
    """PersonyzeTracker.restUriEncode: URLEncoder.encode(value.replace(",", "%2C")), commented
    `"," -> "%252C"` (personyze/personyzeandroidsdk@5258152)."""
    assert encode_value("A,B") == "A%252CB"
    assert build_path("products", where=eq("internal_id", "A,B")) == (
        "products/where/internal_id=A%252CB"
    )
    # the list separator itself stays a bare comma
    assert cond("internal_id", ":", ["A,B", "C"]).render() == "internal_id:A%252CB,C"
    assert encode_value("50%2C") == "50%25252C"  # a literal "%2C" is not a comma


def test_slow_reads() -> None:
    assert not is_slow("products", None)
    assert not is_slow("products", eq("internal_id", "A,B"))
    assert not is_slow("products", eq("internal_id", "a") | eq("internal_id", "b"))
    assert not is_slow("products", cond("internal_id", ":", ["a", "b"]))
    assert is_slow("products", cond("internal_id", ">", "a"))  # a range, even on the index
    assert is_slow("products", cond("internal_id", "<=", "a"))
    assert is_slow("products", eq("brand", "x"))  # no index on brand
    assert is_slow("products", eq("internal_id", "a") | eq("brand", "x"))
    assert is_slow("products", {"internal_id": "a", "title": "t"})
    assert is_slow("widgets", eq("internal_id", "a"))  # unknown object: nothing is indexed
    assert not is_slow("users", eq("email", "a@x"))
    assert is_slow("users", cond("data_last_modified", ">", 5))


def test_scalar_rendering() -> None:
    assert encode_value(True) == "1"
    assert encode_value(False) == "0"
    assert encode_value(12345678901234567890) == "12345678901234567890"
    assert encode_value(Decimal("0.10")) == "0.10"
    with pytest.raises(ValueError):
        encode_value(None)
    with pytest.raises(ValueError):
        encode_value(object())


def test_and_binds_tighter_than_or() -> None:
    where = any_of(all_of(eq("a", 1), eq("b", 2)), eq("c", 3))
    assert build_path("t", where=where) == "t/where/a=1&b=2|c=3"
    assert (eq("a", 1) & eq("b", 2) | eq("c", 3)) == where


def test_or_cannot_nest_inside_and() -> None:
    with pytest.raises(TypeError):
        all_of(eq("a", 1), any_of(eq("b", 2), eq("c", 3)))  # type: ignore[arg-type]


def test_and_where_distributes_over_or() -> None:
    where = and_where(eq("a", 1) | eq("b", 2), cond("id", ">", 7))
    assert isinstance(where, AnyOf)
    assert where.render() == "a=1&id>7|b=2&id>7"
    assert and_where(None, eq("a", 1)) == eq("a", 1)
    assert and_where({"a": "x"}, eq("b", 1)).render() == "a=x&b=1"


def test_mapping_where_is_an_and_of_equalities() -> None:
    assert build_path("t", where={"a": "1/2", "b": 3}) == "t/where/a=1%2F2&b=3"


def test_all_modifiers() -> None:
    assert build_path("products", id=7, columns=["title", "price"]) == (
        "products/7/columns/title,price"
    )
    assert build_path("t", order_by=["a", "b"], order_by_desc="c", limit=5) == (
        "t/order_by/a,b/order_by_desc/c/limit/5"
    )
    assert build_path("t", column="title", limit=0, offset=0) == "t/limit/0,0/column/title"
    assert build_path("t", limit=1000) == "t/limit/1000"
    assert build_path("t", limit=1, offset=999) == "t/limit/999,1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 1001},
        {"limit": 1, "offset": 1000},
        {"limit": 500, "offset": 501},
        {"offset": 5},
        {"limit": -1},
        {"limit": True},
        {"id": -1},
        {"id": "1/2"},
        {"id": True},
        {"columns": ["ok", "bad col"]},
        {"columns": []},
        {"column": "x", "columns": ["y"]},
        {"order_by": "a;b"},
        {"where": {"bad-name": 1}},
    ],
)
def test_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_path("t", **kwargs)  # type: ignore[arg-type]


def test_bad_object_or_operator() -> None:
    with pytest.raises(ValueError):
        build_path("products/1")
    with pytest.raises(ValueError):
        cond("a", "~", 1)
    with pytest.raises(ValueError):
        cond("a", ":", "not-a-list")
    with pytest.raises(ValueError):
        cond("a", ":", [])


values = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.text(alphabet=SPECIALS + "aZ09é", max_size=12),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
)
ops = st.sampled_from(["=", "!=", ">", "<", ">=", "<="])


@given(
    groups=st.lists(
        st.lists(st.tuples(ops, values), min_size=1, max_size=3), min_size=1, max_size=3
    ),
    in_list=st.lists(values, min_size=1, max_size=4),
)
def test_round_trip_through_sandbox_parser(
    groups: list[list[tuple[str, object]]], in_list: list[object]
) -> None:
    """What the builder encodes, the sandbox's raw-path parser decodes back exactly."""
    where = any_of(*(all_of(*(cond("c", op, v) for op, v in g)) for g in groups))
    where = any_of(where, all_of(cond("d", ":", in_list)))
    path = build_path("t", where=where, order_by="c", limit=3, offset=2)
    q = parse_modifiers(path.split("/")[1:])
    expected = [[Term("c", op, (_text(v),)) for op, v in g] for g in groups]
    expected.append([Term("d", ":", tuple(_text(v) for v in in_list))])
    assert q.where == expected
    assert (q.offset, q.limit, q.order) == (2, 3, [("c", False)])


def _text(value: object) -> str:
    return str(value)
