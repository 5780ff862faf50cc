"""The sandbox over raw HTTP (http.client sends the path byte for byte, as curl does)."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.personyze import PersonyzeClient, eq
from sandbox import DEFAULT_API_KEY, Faults, Sandbox

KEY = DEFAULT_API_KEY


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture()
def fresh(sb: Sandbox) -> Iterator[Sandbox]:
    sb.reset()
    yield sb
    sb.reset()


def call(
    sb: Sandbox,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = KEY,
    content_type: str | None = "application/json",
) -> tuple[int, dict[str, str], str]:
    """One raw request to `/rest/{path}` (or `/{path}` if it starts with `/`)."""
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=5)
    headers: dict[str, str] = {}
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"api:{key}".encode()).decode()
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if content_type:
            headers["Content-Type"] = content_type
    target = path if path.startswith("/") else f"/rest/{path}"
    try:
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def get_json(sb: Sandbox, path: str) -> Any:
    status, _, text = call(sb, "GET", path)
    assert status == 200, text
    return json.loads(text)


@pytest.fixture()
def catalog(fresh: Sandbox) -> Sandbox:
    rows = [
        {"internal_id": "a", "title": "Apple", "price": 5, "brand": "X"},
        {"internal_id": "b", "title": "banana", "price": 10, "brand": "Y"},
        {"internal_id": "c", "title": "Cherry", "price": 9.5, "brand": "X"},
        {"internal_id": "d", "title": "date", "price": "100", "brand": "Z"},
        {"internal_id": "e", "title": "Elder"},  # no price, no brand (NULL)
    ]
    for row in rows:
        fresh.store.insert("products", row)
    return fresh


def ids(sb: Sandbox, where: str, extra: str = "/limit/50") -> list[str]:
    """Matching internal_ids; 50 rows at most, as Personyze allows for slow reads."""
    return get_json(sb, f"products/where/{where}/order_by/internal_id{extra}/column/internal_id")


# -- operators and modifiers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("price=10", ["b"]),
        ("price=10.0", ["b"]),  # numeric comparison when both sides are numbers
        ("price!=10", ["a", "c", "d"]),  # NULL matches nothing, as in SQL
        ("price>9", ["b", "c", "d"]),  # "100" > 9 numerically, not as text
        ("price<9.5", ["a"]),
        ("price>=9.5", ["b", "c", "d"]),
        ("price<=9.5", ["a", "c"]),
        ("price%3E9", ["b", "c", "d"]),  # urllib3/WHATWG-encoded ">" is accepted
        ("price%3C=9.5", ["a", "c"]),
        ("title>C", ["a", "b", "c", "d", "e"][1:]),  # text comparison, case-sensitive
        ("internal_id:a,c,zz", ["a", "c"]),
        ("internal_id!:a,c", ["b", "d", "e"]),
        ("brand=X&price>6", ["c"]),
        ("brand=Y|brand=Z", ["b", "d"]),
        ("brand=Y|brand=X&price<6", ["a", "b"]),  # AND binds tighter than OR
        ("brand=X&price<6|brand=Z", ["a", "d"]),
        ("brand=nobody", []),
    ],
)
def test_where_operators(catalog: Sandbox, where: str, expected: list[str]) -> None:
    assert ids(catalog, where) == expected


def test_order_limit_columns(catalog: Sandbox) -> None:
    assert get_json(catalog, "products/order_by/brand,price/column/internal_id") == [
        "e",
        "a",
        "c",
        "b",
        "d",
    ]
    assert get_json(catalog, "products/order_by_desc/price/limit/1,2/column/internal_id") == [
        "b",
        "c",
    ]
    assert get_json(catalog, "products/limit/2/columns/internal_id,price") == [
        {"internal_id": "a", "price": 5},
        {"internal_id": "b", "price": 10},
    ]
    # modifiers in any order
    assert get_json(catalog, "products/column/title/limit/0,1/where/price%3E9/order_by/title") == [
        "Cherry"
    ]
    assert get_json(catalog, "products/2/columns/title") == {"title": "banana"}
    assert get_json(catalog, "products/2")["internal_id"] == "b"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("products/99", "Row not found"),
        ("products/limit/1,1000", "Can't select more than 1000 rows"),
        ("products/limit/1001", "Can't select more than 1000 rows"),
        ("products/limit/x", "Invalid limit"),
        ("products/where/price~5", "Invalid where condition"),
        ("products/where/a=1/where/b=2", "more than once"),
        ("products/sort/title", "Unknown modifier"),
        ("products/order_by", "needs a value"),
        ("products/columns/a,b%20c", "Invalid column name"),
        ("widgets", "Unknown object"),
    ],
)
def test_bad_requests(catalog: Sandbox, path: str, message: str) -> None:
    status, headers, text = call(catalog, "GET", path)
    assert status == 400
    assert message in text
    assert headers["Content-Type"].startswith("text/plain")


def test_window_edge_is_allowed(catalog: Sandbox) -> None:
    assert len(get_json(catalog, "products/limit/1000")) == 5
    assert get_json(catalog, "products/limit/999,1") == []


# -- writes -------------------------------------------------------------------------------


def test_post_put_delete_bare_numbers(fresh: Sandbox) -> None:
    status, headers, text = call(fresh, "POST", "placeholders", {"name": "Fake"})
    assert (status, text, headers["Content-Type"]) == (200, "1", "application/json")
    assert call(fresh, "PUT", "placeholders/1", {"html_id": "#x"})[2] == "1"
    assert call(fresh, "PUT", "placeholders/7", {"html_id": "#x"})[2] == "0"
    assert call(fresh, "DELETE", "placeholders/where/name=Fake")[2] == "1"
    assert call(fresh, "DELETE", "placeholders/where/name=Fake")[2] == "0"
    assert call(fresh, "DELETE", "placeholders")[0] == 400  # never a whole table


def test_products_upsert_on_internal_id(fresh: Sandbox) -> None:
    first = call(fresh, "POST", "products", {"internal_id": "S/1", "title": "T", "price": 3})[2]
    again = call(fresh, "POST", "products", {"internal_id": "S/1", "price": "", "brand": None})
    assert again[2] == first
    assert fresh.rows("products") == [{"id": 1, "internal_id": "S/1", "title": "T", "price": 3}]
    assert call(fresh, "POST", "products", {"internal_id": "S/2", "id": 1})[2] == "2"
    # a patch may not give two rows the same unique internal_id
    status, _, text = call(fresh, "PUT", "products/2", {"internal_id": "S/1"})
    assert status == 400 and "Duplicate entry" in text


def test_users_merge_on_email_not_internal_id(fresh: Sandbox) -> None:
    assert call(fresh, "POST", "users", {"email": "a@x", "internal_id": "7"})[2] == "1"
    assert call(fresh, "POST", "users", {"email": "a@x", "first_name": "A"})[2] == "1"
    assert call(fresh, "POST", "users", {"internal_id": "7"})[2] == "2"
    assert fresh.rows("users")[0] == {
        "user_id": 1,
        "email": "a@x",
        "internal_id": "7",
        "first_name": "A",
    }


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b'{"internal_id": "f1"}', "application/x-www-form-urlencoded", 200, ""),  # curl --data
        (b'{"internal_id": "f2"}', None, 200, ""),
        (b"internal_id=f3&title=Form", "application/x-www-form-urlencoded", 200, ""),
        (b'{"internal_id": ', "application/json", 400, "Malformed JSON"),
        (b'["internal_id"]', "application/json", 400, "JSON object"),
        (b"", "application/json", 400, "Empty body"),
        (b'{"internal_id": "x", "tags": [1]}', "application/json", 400, "scalar"),
    ],
)
def test_post_bodies(
    fresh: Sandbox, body: bytes, content_type: str | None, status: int, message: str
) -> None:
    got, _, text = call(fresh, "POST", "products", body, content_type=content_type)
    assert got == status
    assert message in text


# -- auth, account, control ---------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "WRONG", KEY + "X"])
def test_auth(fresh: Sandbox, key: str | None) -> None:
    status, headers, text = call(fresh, "GET", "account", key=key)
    assert (status, text) == (401, "Please, log in")
    assert headers["Content-Type"].startswith("text/plain")
    assert call(fresh, "GET", "/_control/log", key=key)[0] == 401


def test_account_and_default_key(fresh: Sandbox) -> None:
    assert len(KEY) == 40
    assert get_json(fresh, "account") == {"id": 1, "name": "Sandbox"}


def test_control_endpoints(fresh: Sandbox) -> None:
    status, _, text = call(fresh, "POST", "/_control/faults", {"error_500_rate": 1})
    assert status == 200 and json.loads(text)["error_500_rate"] == 1
    assert call(fresh, "GET", "account")[0] == 500
    assert call(fresh, "POST", "/_control/faults", {"nope": 1})[0] == 400
    assert call(fresh, "POST", "/_control/faults", {"error_500_rate": 2})[0] == 400
    log = json.loads(call(fresh, "GET", "/_control/log")[2])
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/rest/account", 500)]
    assert isinstance(log[0]["time"], float)
    fresh.store.insert("products", {"internal_id": "x"})
    assert call(fresh, "POST", "/_control/reset")[0] == 200
    assert fresh.rows("products") == [] and fresh.request_log == []
    assert fresh.faults.error_500_rate == 0


def test_keep_alive_connection_reused(fresh: Sandbox) -> None:
    conn = http.client.HTTPConnection(fresh.host, fresh.port, timeout=5)
    auth = "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    try:
        for _ in range(3):
            conn.request("GET", "/rest/products", headers={"Authorization": auth})
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"[]")
        assert conn.sock is not None  # still the same open socket
    finally:
        conn.close()


# -- faults ------------------------------------------------------------------------------


def test_rate_limit_window(fresh: Sandbox) -> None:
    fresh.faults.update(rate_limit=5)
    statuses = [call(fresh, "GET", "products")[0] for _ in range(7)]
    assert statuses == [200] * 5 + [503] * 2
    # as Personyze: the seconds in the body, no Retry-After header
    status, headers, text = call(fresh, "GET", "products")
    assert status == 503 and "Retry-After" not in headers and text == "1"
    fresh.faults.update(retry_after_header=True)
    status, headers, text = call(fresh, "GET", "products")
    assert (status, headers["Retry-After"], text) == (503, "1", "1")
    time.sleep(1.05)
    assert call(fresh, "GET", "products")[0] == 200


def test_force_503_and_random_503(fresh: Sandbox) -> None:
    fresh.faults.update(force_503_for=3)
    status, headers, text = call(fresh, "GET", "products")
    assert (status, text) == (503, "3") and "Retry-After" not in headers
    fresh.faults.update(force_503_for=0, error_503_rate=1, retry_after_503=1.5)
    status, headers, text = call(fresh, "GET", "products")
    assert (status, text) == (503, "1.5") and "Retry-After" not in headers
    fresh.faults.update(retry_after_header=True)
    status, headers, text = call(fresh, "GET", "products")
    assert (status, headers["Retry-After"], text) == (503, "1.5", "1.5")
    fresh.faults.update(error_503_rate=0, force_503_for=2)
    status, headers, text = call(fresh, "GET", "products")
    assert (status, headers["Retry-After"], text) == (503, "2", "2")


def test_drop_before_commit_writes_nothing(fresh: Sandbox) -> None:
    fresh.faults.update(drop_before_commit_rate=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(fresh, "POST", "products", {"internal_id": "gone"})
    assert fresh.rows("products") == []
    assert fresh.request_log[-1].status == 0


def test_faults_validation_and_seed() -> None:
    with pytest.raises(ValueError):
        Faults(error_503_rate=1.5)
    with pytest.raises(ValueError):
        Faults(rate_limit=0)
    a, b = Faults(seed=3), Faults(seed=3)
    assert [a.roll(0.5) for _ in range(20)] == [b.roll(0.5) for _ in range(20)]


def test_latency_comes_after_commit_and_log(fresh: Sandbox) -> None:
    fresh.faults.update(latency_ms=150)
    start = time.time()
    call(fresh, "POST", "products", {"internal_id": "slow"})
    assert time.time() - start >= 0.15
    assert fresh.request_log[-1].time - start < 0.15  # logged (and committed) before the wait


def test_random_400(fresh: Sandbox) -> None:
    fresh.faults.update(error_400_rate=1)
    status, _, text = call(fresh, "POST", "products", {"internal_id": "x"})
    assert (status, text) == (400, "Rejected input (sandbox fault)")
    assert fresh.rows("products") == []


# -- curl, as documented ------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_documented_curl_examples(fresh: Sandbox) -> None:
    base = fresh.url.replace("http://", f"http://api:{KEY}@")

    def curl(*args: str) -> str:
        done = subprocess.run(
            ["curl", "-sS", *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout

    assert json.loads(curl(f"{base}/placeholders")) == []
    new_id = curl("--data", '{"name": "Fake", "html_id": ".fake"}', f"{base}/placeholders")
    assert new_id.isdigit()
    assert curl("-X", "PUT", "--data", '{"html_id": "#fake"}', f"{base}/placeholders/{new_id}")
    assert fresh.rows("placeholders") == [{"id": int(new_id), "name": "Fake", "html_id": "#fake"}]
    assert json.loads(curl(f"{base}/placeholders/where/html_id=%23fake|name=x/limit/50")) == [
        {"id": int(new_id), "name": "Fake", "html_id": "#fake"}
    ]
    assert curl("-X", "DELETE", f"{base}/placeholders/{new_id}") == "1"
    assert curl("-X", "DELETE", f"{base}/placeholders/{new_id}") == "0"


# -- CLI -----------------------------------------------------------------------------------


def test_main_serves_until_interrupted() -> None:
    """`sandbox.server.main` (what `personyze-sync sandbox` wires up) serves until SIGTERM."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"import sys; from sandbox.server import main; sys.exit(main(['--port', '{port}']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}/rest" in proc.stdout.readline()
        with PersonyzeClient(KEY, f"http://127.0.0.1:{port}/rest") as c:
            assert c.account()["name"] == "Sandbox"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


# -- property: builder + parser round trip over HTTP ---------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24),
        st.text(alphabet="/&,|%+ =:<>!?#é", min_size=1, max_size=10),
    )
)
def test_where_equality_round_trip(sb: Sandbox, value: str) -> None:
    """A random value, created then selected by equality, matches exactly its own row."""
    sb.store.reset()
    with PersonyzeClient(KEY, sb.url) as c:
        decoy = c.product_upsert({"internal_id": value + "~decoy", "title": "decoy"})
        rid = c.product_upsert({"internal_id": value, "title": "target"})
        assert rid != decoy
        assert c.get("products", where=eq("internal_id", value), column="id") == [rid]
        either = eq("internal_id", value) | eq("id", decoy)
        assert c.get("products", where=either, column="id", limit=50) == sorted([decoy, rid])
        assert c.product_delete(value) == 1
    assert [r["internal_id"] for r in sb.rows("products")] == [value + "~decoy"]


# -- what Personyze's own clients found live ------------------------------------------------


@pytest.fixture()
def big(fresh: Sandbox) -> Sandbox:
    for i in range(120):
        fresh.store.insert("products", {"internal_id": f"P{i:03d}", "brand": "B"})
    return fresh


@pytest.mark.parametrize(
    "path",
    [
        "products/where/internal_id%3EP000/limit/51",  # a range, even on the unique index
        "products/where/internal_id%3EP000/limit/10,41",  # offset + limit counts
        "products/where/internal_id%3C=P999",  # no limit: more than 50
        "products/where/brand=B/limit/0,60",  # no index on brand
        "products/where/internal_id=P001|brand=B/limit/100",  # one slow term is enough
    ],
)
def test_slow_reads_past_50_rows_get_a_bare_400(big: Sandbox, path: str) -> None:
    status, headers, text = call(big, "GET", path)
    assert (status, text) == (400, "")


def test_fast_reads_and_slow_reads_within_50(big: Sandbox) -> None:
    assert len(get_json(big, "products/order_by/internal_id/limit/0,1000")) == 120
    assert len(get_json(big, "products/limit/100,20")) == 20  # a plain window
    assert len(get_json(big, "products/where/internal_id=P007")) == 1  # indexed equality
    assert len(get_json(big, "products/where/internal_id%3EP000/limit/0,50")) == 50
    assert len(get_json(big, "products/where/brand=B/limit/40,10")) == 10
    assert get_json(
        big, "products/where/internal_id%3EP100/order_by/internal_id/limit/50/column/internal_id"
    )[:2] == ["P101", "P102"]
    # writes are not capped: a slow DELETE removes every match
    assert call(big, "DELETE", "products/where/brand=B")[2] == "120"


def test_where_values_are_decoded_split_on_commas_and_decoded_again(fresh: Sandbox) -> None:
    for sku in ("A", "B", "A,B", "1+1", "1 1", "50%2C"):
        fresh.store.insert("products", {"internal_id": sku})
    # %2C is decoded before the split: an OR-list of A and B
    assert ids(fresh, "internal_id=A%2CB") == ["A", "B"]
    # %252C survives the first decode as %2C, and the second makes it a literal comma
    assert ids(fresh, "internal_id=A%252CB") == ["A,B"]
    assert ids(fresh, "internal_id!=A%2CB") == ["1 1", "1+1", "50%2C", "A,B"]
    # the second decode is urldecode: a once-encoded "+" arrives as a space
    assert ids(fresh, "internal_id=1%2B1") == ["1 1"]
    assert ids(fresh, "internal_id=1%252B1") == ["1+1"]
    assert ids(fresh, "internal_id=50%25252C") == ["50%2C"]
    # what a client sending %2C does to a delete: two rows gone instead of one
    assert call(fresh, "DELETE", "products/where/internal_id=A%252CB")[2] == "1"
    assert call(fresh, "DELETE", "products/where/internal_id=A%2CB")[2] == "2"


def test_internal_id_sorts_and_compares_as_text(fresh: Sandbox) -> None:
    for sku in ("9", "10", "A,B", "100"):
        fresh.store.insert("products", {"internal_id": sku})
    assert get_json(fresh, "products/order_by/internal_id/column/internal_id") == [
        "10",
        "100",
        "9",
        "A,B",
    ]
    # the keyset condition agrees with the order
    assert ids(fresh, "internal_id%3E100") == ["9", "A,B"]


def test_permanent_errors_as_500_with_text(fresh: Sandbox) -> None:
    call(fresh, "POST", "products", {"internal_id": "a"})
    call(fresh, "POST", "products", {"internal_id": "b"})
    fresh.faults.update(permanent_errors_as_500=True)
    status, headers, text = call(fresh, "PUT", "products/2", {"internal_id": "a"})
    assert (status, text) == (500, "Duplicate entry 'a' for key 'internal_id'")
    assert headers["Content-Type"].startswith("text/plain")
    assert call(fresh, "GET", "products/99")[:3:2] == (400, "Row not found")  # reads stay 400
    fresh.faults.update(
        permanent_errors_as_500=False,
        error_500_rate=1,
        error_500_text="Duplicate entry 'x' for key 'sku'",
    )
    assert call(fresh, "POST", "products", {"internal_id": "c"})[::2] == (
        500,
        "Duplicate entry 'x' for key 'sku'",
    )


def test_cli_flags_reach_the_faults() -> None:
    import argparse

    from sandbox.server import add_arguments, sandbox_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sb = sandbox_from_args(
        parser.parse_args(
            [
                "--port",
                "0",
                "--retry-after-header",
                "--permanent-errors-as-500",
                "--error-500-text",
                "Duplicate entry",
            ]
        )
    )
    assert (
        sb.faults.retry_after_header,
        sb.faults.permanent_errors_as_500,
        sb.faults.error_500_text,
    ) == (True, True, "Duplicate entry")
    default = sandbox_from_args(parser.parse_args([]))
    assert (default.faults.retry_after_header, default.faults.permanent_errors_as_500) == (
        False,
        False,
    )
