"""PersonyzeClient against the in-process sandbox over real HTTP (no mocks)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
import requests

from app.personyze import (
    PersonyzeAuthError,
    PersonyzeBadRequest,
    PersonyzeClient,
    PersonyzeError,
    PersonyzeServerError,
    PersonyzeTransportError,
    PersonyzeUnavailable,
    any_of,
    cond,
    eq,
    parse_retry_after,
)
from sandbox import Sandbox

KEY = "C0FFEE" + "7" * 28 + "SECRET"  # 40 characters, easy to spot if it ever leaks
WRONG_KEY = "BADBAD" + "1" * 28 + "NOPE!!"
NASTY_SKUS = [
    "A/B",
    "a&b=c",
    "x,y,z",
    "p|q",
    "100%",
    "1+1",
    "with space",
    "mixed /&,|%+ all",
    "ünïcødé-€-日本",
    "%2F-already-encoded",
]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(api_key=KEY) as sandbox:
        yield sandbox


@pytest.fixture()
def client(sb: Sandbox) -> Iterator[PersonyzeClient]:
    sb.reset()
    c = PersonyzeClient(KEY, sb.url, timeout=(1.0, 3.0))
    yield c
    c.close()
    sb.reset()


def assert_no_secret(*things: object) -> None:
    for thing in things:
        for text in (str(thing), repr(thing), getattr(thing, "body", "")):
            assert KEY not in text and WRONG_KEY not in text
            assert "Authorization" not in text and "Basic " not in text


# -- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://example.com/rest", "http://10.0.0.1/rest", "ftp://localhost/rest", "localhost:80"],
)
def test_plain_http_refused_except_loopback(url: str) -> None:
    with pytest.raises(ValueError) as info:
        PersonyzeClient(KEY, url)
    assert_no_secret(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.personyze.com/rest",
        "http://localhost:8099/rest",
        "http://127.0.0.1:8099/rest",
        "http://127.9.9.9/rest/",
        "http://[::1]:8099/rest",
    ],
)
def test_https_and_loopback_accepted(url: str) -> None:
    c = PersonyzeClient(KEY, url)
    assert c.base_url == url.rstrip("/")
    c.close()


def test_credentials_in_base_url_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as info:
        PersonyzeClient(KEY, f"https://api:{KEY}@app.personyze.com/rest")
    assert_no_secret(info.value)


def test_repr_hides_key(client: PersonyzeClient) -> None:
    assert_no_secret(client)
    assert "***" in repr(client)


# -- happy paths -------------------------------------------------------------------------


def test_account_and_crud(client: PersonyzeClient, sb: Sandbox) -> None:
    assert client.account() == {"id": 1, "name": "Sandbox"}
    pid = client.create("placeholders", {"name": "Fake", "html_id": ".fake"})
    assert isinstance(pid, int)
    assert client.get("placeholders", id=pid) == {"id": pid, "name": "Fake", "html_id": ".fake"}
    assert client.update("placeholders", {"html_id": "#fake"}, id=pid) == 1
    assert client.get("placeholders", column="html_id") == ["#fake"]
    assert client.delete("placeholders", id=pid) == 1
    assert client.delete("placeholders", id=pid) == 0
    assert client.get("placeholders") == []
    assert sb.rows("placeholders") == []


def test_update_and_delete_need_exactly_one_target(client: PersonyzeClient) -> None:
    with pytest.raises(ValueError):
        client.update("products", {"title": "x"})
    with pytest.raises(ValueError):
        client.delete("products", id=1, where=eq("internal_id", "a"))
    with pytest.raises(ValueError):
        client.product_upsert({"title": "no id"})
    with pytest.raises(ValueError):
        client.product_delete("")


def test_upsert_patch_mode_and_empty_drop(client: PersonyzeClient, sb: Sandbox) -> None:
    rid = client.product_upsert(
        {"internal_id": "P1", "title": "Shirt", "price": 10, "sale_price": 8, "inventory": 3}
    )
    same = client.product_upsert(
        {"internal_id": "P1", "price": 12, "sale_price": "", "inventory": None, "brand": "Acme"}
    )
    assert same == rid
    assert sb.rows("products") == [
        {
            "id": rid,
            "internal_id": "P1",
            "title": "Shirt",  # not sent: kept
            "price": 12,  # sent: replaced
            "sale_price": 8,  # sent empty: dropped, kept
            "inventory": 3,  # sent null: dropped, kept
            "brand": "Acme",  # new column
        }
    ]
    # zero and false are values, not "empty"
    client.product_upsert({"internal_id": "P1", "inventory": 0, "sale_price": False})
    row = client.get("products", id=rid)
    assert (row["inventory"], row["sale_price"]) == (0, False)
    # PUT drops empties too
    assert client.update("products", {"title": "", "brand": "B"}, where=eq("internal_id", "P1"))
    assert client.get("products", id=rid, columns=["title", "brand"]) == {
        "title": "Shirt",
        "brand": "B",
    }


@pytest.mark.parametrize("sku", NASTY_SKUS)
def test_encoding_round_trip(client: PersonyzeClient, sb: Sandbox, sku: str) -> None:
    client.product_upsert({"internal_id": "decoy", "title": "decoy"})
    rid = client.product_upsert({"internal_id": sku, "title": "target"})
    assert client.get("products", where=eq("internal_id", sku)) == [
        {"id": rid, "internal_id": sku, "title": "target"}
    ]
    assert client.get("products", where=cond("internal_id", ":", [sku, "nope"]), column="id") == [
        rid
    ]
    assert client.get("products", where=cond("internal_id", "!:", [sku]), column="title") == [
        "decoy"
    ]
    assert client.update("products", {"title": "renamed"}, where=eq("internal_id", sku)) == 1
    assert client.product_upsert({"internal_id": sku, "price": 1}) == rid
    assert client.product_delete(sku) == 1
    assert client.product_delete(sku) == 0
    assert [r["internal_id"] for r in sb.rows("products")] == ["decoy"]


def test_where_any_of_all_of(client: PersonyzeClient) -> None:
    for i in range(1, 7):
        client.product_upsert({"internal_id": f"S{i}", "price": i, "brand": "A" if i % 2 else "B"})
    where = any_of(cond("price", ">=", 5) & eq("brand", "A"), eq("internal_id", "S2"))
    rows = client.get(
        "products", where=where, order_by_desc="price", columns=["internal_id"], limit=50
    )
    assert rows == [{"internal_id": "S5"}, {"internal_id": "S2"}]


# -- pagination --------------------------------------------------------------------------


def _seed(sb: Sandbox, n: int) -> None:
    for i in range(n):
        sb.store.insert("products", {"internal_id": f"K{i:05d}", "price": i % 7})


def _logged_paths(sb: Sandbox) -> list[str]:
    """Paths as sent; urllib3 encodes `<`/`>` (the sandbox accepts both), `|` stays raw."""
    return [e.path.replace("%3E", ">").replace("%3C", "<") for e in sb.request_log]


def test_iter_all_keyset_past_the_window(client: PersonyzeClient, sb: Sandbox) -> None:
    _seed(sb, 2345)
    sb.clear_log()
    ids = [r["id"] for r in client.iter_all("products", page_size=400, order_by="id")]
    assert ids == list(range(1, 2346))
    paths = _logged_paths(sb)
    # plain windows up to row 1000, then keyset pages of 50: the range makes the read slow
    assert paths[:3] == [
        "/rest/products/order_by/id/limit/0,400",
        "/rest/products/order_by/id/limit/400,400",
        "/rest/products/order_by/id/limit/800,200",
    ]
    assert paths[3] == "/rest/products/where/id>1000/order_by/id/limit/50"
    assert paths[4] == "/rest/products/where/id>1050/order_by/id/limit/50"
    assert paths[-1] == "/rest/products/where/id>2300/order_by/id/limit/50"  # 45: short
    assert len(paths) == 3 + 27
    assert all(e.status == 200 for e in sb.request_log)


def test_iter_all_slow_where_pages_by_50_from_the_start(
    client: PersonyzeClient, sb: Sandbox
) -> None:
    _seed(sb, 800)  # price = i % 7: 114 rows with price 3
    sb.clear_log()
    rows = list(
        client.iter_all(
            "products", where=eq("price", 3), order_by="internal_id", columns=["internal_id"]
        )
    )
    expected = sorted(r["internal_id"] for r in sb.rows("products") if r["price"] == 3)
    assert [r["internal_id"] for r in rows] == expected and len(expected) == 114
    paths = _logged_paths(sb)
    assert paths[0] == (
        "/rest/products/where/price=3/order_by/internal_id/limit/0,50/columns/internal_id"
    )
    assert paths[1] == (
        f"/rest/products/where/price=3&internal_id>{expected[49]}/order_by/internal_id"
        "/limit/50/columns/internal_id"
    )
    assert len(paths) == 3 and all(e.status == 200 for e in sb.request_log)


def test_iter_all_pages_commas_and_specials_at_page_boundaries(
    client: PersonyzeClient, sb: Sandbox
) -> None:
    """Keyset values holding `,` `|` `&` `%` `+` `/`: a mis-encoded boundary would skip or
    repeat rows (`internal_id>A,B` is an OR of two ranges)."""
    # "K00998,K00001" sorts 1000th: the last row of the offset window, so the first keyset
    # page starts after it
    specials = ["K00998,K00001", "K01049|x", "K01099&y", "K01149%2C", "K01199+z", "K01249/w"]
    _seed(sb, 1300)
    for sku in specials:
        sb.store.insert("products", {"internal_id": sku})
    rows = [
        r["internal_id"]
        for r in client.iter_all("products", order_by="internal_id", columns=["internal_id"])
    ]
    assert rows == sorted(r["internal_id"] for r in sb.rows("products"))
    keyset = [p for p in _logged_paths(sb) if "internal_id>" in p]
    assert keyset[0].startswith("/rest/products/where/internal_id>K00998%252CK00001/")
    assert all(e.status == 200 for e in sb.request_log)


def test_iter_all_without_order_stops_at_the_slow_window(
    client: PersonyzeClient, sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(sb, 200)
    with caplog.at_level(logging.WARNING):
        rows = list(client.iter_all("products", where=cond("price", ">=", 0)))
    assert len(rows) == 50
    assert "50-row window" in caplog.text


def test_iter_all_runs_every_page_through_pace(client: PersonyzeClient, sb: Sandbox) -> None:
    _seed(sb, 1120)
    paced: list[int] = []

    def pace(fetch):
        before = len(sb.request_log)
        result = fetch()
        paced.append(len(sb.request_log) - before)
        return result

    rows = list(client.iter_all("products", order_by="id", pace=pace))
    assert len(rows) == 1120
    assert paced == [1] * len(sb.request_log) and len(paced) == 1 + 3  # 1000, 50, 50, 20


def test_slow_read_over_50_refused_client_side(client: PersonyzeClient, sb: Sandbox) -> None:
    with pytest.raises(ValueError, match="capped at 50"):
        client.get("products", where=cond("internal_id", ">", "a"))
    with pytest.raises(ValueError, match="capped at 50"):
        client.get("products", where=eq("brand", "x"), limit=40, offset=20)
    assert client.get("products", where=eq("brand", "x"), limit=50) == []
    assert client.get("products", where=eq("internal_id", "x")) == []  # indexed: no cap
    assert sb.request_log[-2].status == 200


def test_iter_all_keyset_with_caller_where(client: PersonyzeClient, sb: Sandbox) -> None:
    _seed(sb, 4000)
    where = eq("price", 3) | eq("price", 5)
    rows = list(client.iter_all("products", where=where, order_by_desc="id", columns=["id"]))
    expected = sorted((r["id"] for r in sb.rows("products") if r["price"] in (3, 5)), reverse=True)
    assert len(expected) > 1000
    assert [r["id"] for r in rows] == expected
    keyset = [p for p in _logged_paths(sb) if "id<" in p]
    assert keyset and all("price=3&id<" in p and "|price=5&id<" in p for p in keyset)


def test_iter_all_without_order_stops_at_window(
    client: PersonyzeClient, sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(sb, 1200)
    with caplog.at_level(logging.WARNING):
        rows = list(client.iter_all("products"))
    assert len(rows) == 1000
    assert "1000-row window" in caplog.text


def test_iter_all_small_and_exact(client: PersonyzeClient, sb: Sandbox) -> None:
    assert list(client.iter_all("products", order_by="id")) == []
    _seed(sb, 1000)
    assert len(list(client.iter_all("products", order_by="id"))) == 1000
    with pytest.raises(ValueError):
        list(client.iter_all("products", page_size=1001))
    with pytest.raises(ValueError):
        list(client.iter_all("products", order_by="id", columns=["title"]))


def test_slow_read_past_50_is_a_bare_400_from_the_server(client: PersonyzeClient) -> None:
    """What the client-side check saves us from: Personyze's bare 400, with no reason."""
    with pytest.raises(PersonyzeBadRequest) as info:
        client.request("GET", "products/where/brand=x/limit/0,60")
    assert info.value.body == "" and "400: (empty body)" in str(info.value)


def test_window_checked_client_side(client: PersonyzeClient) -> None:
    with pytest.raises(ValueError):
        client.get("products", limit=1, offset=1000)


# -- errors ------------------------------------------------------------------------------


def test_400_row_not_found(client: PersonyzeClient) -> None:
    with pytest.raises(PersonyzeBadRequest) as info:
        client.get("products", id=999)
    assert info.value.status == 400
    assert info.value.body == "Row not found"
    assert_no_secret(info.value)


def test_400_malformed_input(client: PersonyzeClient) -> None:
    with pytest.raises(PersonyzeBadRequest) as info:
        client.create("products", {"bad name": 1})
    assert "Invalid column name" in info.value.body
    with pytest.raises(PersonyzeBadRequest):
        client.get("no_such_object")


def test_401_wrong_key(sb: Sandbox) -> None:
    bad = PersonyzeClient(WRONG_KEY, sb.url)
    with bad, pytest.raises(PersonyzeAuthError) as info:
        bad.account()
    assert info.value.status == 401
    assert info.value.body == "Please, log in"
    assert_no_secret(info.value, bad)


def test_500(client: PersonyzeClient, sb: Sandbox) -> None:
    sb.faults.update(error_500_rate=1.0)
    with pytest.raises(PersonyzeServerError) as info:
        client.product_upsert({"internal_id": "x"})
    assert info.value.status == 500
    assert sb.rows("products") == []
    assert_no_secret(info.value)


def test_503_retry_after_header(client: PersonyzeClient, sb: Sandbox) -> None:
    sb.faults.update(error_503_rate=1.0, retry_after_503=7, retry_after_header=True)
    resp = requests.get(f"{sb.url}/account", auth=("api", KEY), timeout=3)
    assert resp.headers["Retry-After"] == "7"
    with pytest.raises(PersonyzeUnavailable) as info:
        client.account()
    assert (info.value.status, info.value.retry_after) == (503, 7.0)
    assert_no_secret(info.value)


def test_503_number_only_in_body(client: PersonyzeClient, sb: Sandbox) -> None:
    """Personyze's own 503: the seconds in the body, no header (the sandbox's default)."""
    sb.faults.update(error_503_rate=1.0, retry_after_503=2)
    resp = requests.get(f"{sb.url}/account", auth=("api", KEY), timeout=3)
    assert resp.status_code == 503 and "Retry-After" not in resp.headers
    with pytest.raises(PersonyzeUnavailable) as info:
        client.account()
    assert info.value.retry_after == 2.0 and info.value.body == "2"


def test_503_without_a_number(client: PersonyzeClient, sb: Sandbox) -> None:
    sb.faults.update(error_503_rate=1.0)
    with pytest.raises(PersonyzeUnavailable) as info:
        client.account()
    assert info.value.retry_after is None


def test_503_rate_limit_and_forced_outage(client: PersonyzeClient, sb: Sandbox) -> None:
    sb.faults.update(rate_limit=3)
    statuses = []
    for _ in range(5):
        try:
            client.account()
            statuses.append(200)
        except PersonyzeUnavailable as exc:
            statuses.append(503)
            assert exc.retry_after == 1.0
    assert statuses == [200, 200, 200, 503, 503]
    sb.faults.update(rate_limit=None, force_503_for=30)
    with pytest.raises(PersonyzeUnavailable) as info:
        client.account()
    assert info.value.retry_after is not None and 29 <= info.value.retry_after <= 30


def test_parse_retry_after() -> None:
    assert parse_retry_after("3", None) == 3.0
    assert parse_retry_after(" 1.5 ", "9") == 1.5
    assert parse_retry_after(None, "Please retry in 5 seconds") == 5.0
    assert parse_retry_after("", "2") == 2.0
    assert parse_retry_after("garbage", "no number") is None
    assert parse_retry_after(None, "") is None
    now = time.time()
    when = parse_retry_after(formatdate(now + 120, usegmt=True), None, now=now)
    assert when is not None and 118 <= when <= 121
    assert parse_retry_after(formatdate(now - 60, usegmt=True), None, now=now) == 0.0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_transport_error_not_delivered_on_closed_port() -> None:
    c = PersonyzeClient(KEY, f"http://127.0.0.1:{_closed_port()}/rest")
    with c, pytest.raises(PersonyzeTransportError) as info:
        c.product_upsert({"internal_id": "x"})
    assert info.value.maybe_delivered is False
    assert info.value.status is None
    assert_no_secret(info.value)


def test_transport_error_maybe_delivered_on_drop_after_commit(
    client: PersonyzeClient, sb: Sandbox
) -> None:
    sb.faults.update(drop_after_commit_rate=1.0)
    with pytest.raises(PersonyzeTransportError) as info:
        client.product_upsert({"internal_id": "dropped", "title": "T"})
    assert info.value.maybe_delivered is True
    assert_no_secret(info.value)
    sb.faults.update(drop_after_commit_rate=0.0)
    assert client.get("products", where=eq("internal_id", "dropped"), column="title") == ["T"]
    assert [e.status for e in sb.request_log][-2:] == [0, 200]


def test_transport_error_on_read_timeout(sb: Sandbox) -> None:
    sb.reset()
    sb.faults.update(latency_ms=400)
    try:
        c = PersonyzeClient(KEY, sb.url, timeout=(1.0, 0.1))
        with c, pytest.raises(PersonyzeTransportError) as info:
            c.account()
        assert info.value.maybe_delivered is True
        assert_no_secret(info.value)
    finally:
        sb.reset()


def test_every_error_is_a_personyze_error() -> None:
    for cls in (
        PersonyzeBadRequest,
        PersonyzeAuthError,
        PersonyzeServerError,
        PersonyzeUnavailable,
        PersonyzeTransportError,
    ):
        assert issubclass(cls, PersonyzeError)
    long = PersonyzeError("m", status=500, body="x" * 2000)
    assert len(long.body) == 500
