"""Personyze catalog reads as the live API allows them, end to end: `resync --delete-missing`
over more than 1000 Personyze rows with ids holding `, / & | % +`, under the account's shared
rate limit and pause; and a repeating 500 text shown in the dead-letter entry. Real Redis,
real HTTP to the sandbox and to a fake WooCommerce API."""

from __future__ import annotations

import base64
import subprocess
import time

import pytest

from app import runtime
from app.core.ratelimit import AccountLimiter
from app.core.state import ledger_balance
from app.personyze import PersonyzeAuthError, PersonyzeClient, PersonyzeServerError
from tests.constants import SANDBOX_KEY, WOO_CONSUMER_KEY, WOO_CONSUMER_SECRET
from tests.servers import CLI, ROOT, settings_env
from tests.support import standard_body, sync_due, woo_product
from workers.reads import PacedReads
from workers.reconcile import reconcile
from workers.sync import Syncer

KEEPERS = [str(i) for i in range(1, 13)]  # what the store lists
# Personyze rows the store does not list; each one, mis-encoded, would hit keepers "1"/"2"
# or another victim: "1,2" is the OR-list 1|2, "1%2C2" decoded twice is "1,2", ...
SPECIALS = ["1,2", "1|2", "1&2", "1/2", "1%2", "1+2", "1%2C2", "1 2", "2,"]
# 1100 fillers, so the listing passes the 1000-row window; two comma ids sort exactly at
# page boundaries (the last row of the offset window, the last of the first keyset page),
# so they become the keyset value `internal_id>...` of the next page.
FILLERS = [f"gone-{i:04d}" for i in range(1100)]
BOUNDARY = ["gone-0977,1", "gone-1026,2"]


@pytest.fixture
def woo(woo):
    for i in KEEPERS:
        woo.products[int(i)] = woo_product(pid=int(i), at=1, name=f"keep {i}")
    return woo


@pytest.fixture
def rt(woo_rt):
    return woo_rt


def personyze_gets(sandbox) -> list:
    return [e for e in sandbox.request_log if e.method == "GET"]


def test_resync_delete_missing_over_1000_rows_with_special_ids(rt, sandbox):
    """`personyze-sync resync --delete-missing` (a real process) against a catalog of 1123
    Personyze rows: only the rows the store does not list are deleted, each exactly."""
    for iid in KEEPERS + SPECIALS + FILLERS + BOUNDARY:
        sandbox.store.insert("products", {"internal_id": iid, "title": "t"})
    everything = sorted(KEEPERS + SPECIALS + FILLERS + BOUNDARY)
    assert (everything[999], everything[1049]) == tuple(BOUNDARY)

    cli = CLI
    done = subprocess.run(
        [cli, "resync", "--delete-missing"],
        env=settings_env(rt.settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    missing = len(SPECIALS) + len(FILLERS) + len(BOUNDARY)
    assert "listed=12 " in done.stdout and f"deleted_missing={missing}" in done.stdout

    gets = personyze_gets(sandbox)
    paths = [e.path.replace("%3E", ">") for e in gets]
    assert paths[0] == "/rest/products/order_by/internal_id/limit/0,1000/columns/internal_id"
    assert paths[1] == (
        "/rest/products/where/internal_id>gone-0977%252C1/order_by/internal_id"
        "/limit/50/columns/internal_id"
    )
    assert paths[2].startswith("/rest/products/where/internal_id>gone-1026%252C2/")
    assert len(paths) == 1 + 3  # 1000 rows, then 50 + 50 + 23
    assert all(e.status == 200 for e in sandbox.request_log)

    assert set(sync_due(rt)) <= {"written"}
    assert sorted(r["internal_id"] for r in sandbox.rows("products")) == sorted(KEEPERS)
    deletes = [e for e in sandbox.request_log if e.method == "DELETE"]
    assert len(deletes) == missing
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_delete_missing_waits_out_the_accounts_pause(rt, sandbox):
    sandbox.store.insert("products", {"internal_id": "gone"})
    limiter = AccountLimiter(rt.redis, rt.state.keys, rt.settings.stores["default"].personyze)
    limiter.unavailable(1.0, 1.0, 1.0)  # as if a worker had just been answered 503
    pause_ends = time.time() + limiter.paused_for()
    assert reconcile(rt, "default", delete_missing=True)["deleted_missing"] == 1
    [get] = personyze_gets(sandbox)
    assert get.time >= pause_ends - 0.02  # not one read before the pause ended


def test_delete_missing_reads_share_the_accounts_rate_limit(make_settings, sandbox, woo):
    rt = runtime.build(
        make_settings(
            personyze_base_url=sandbox.url,
            personyze_rate_limit=2,
            woocommerce_url=woo.url,
            woocommerce_consumer_key=WOO_CONSUMER_KEY,
            woocommerce_consumer_secret=WOO_CONSUMER_SECRET,
        )
    )
    for i in range(1120):
        sandbox.store.insert("products", {"internal_id": f"gone-{i:04d}"})
    started = time.time()
    assert reconcile(rt, "default", delete_missing=True)["deleted_missing"] == 1120
    gets = personyze_gets(sandbox)
    assert len(gets) == 4
    # GCRA at 2/s, each request at most 0.05 s early: the 4th cannot start before 1.45 s
    # (a lower bound only: a slow machine makes it later, never earlier)
    assert gets[-1].time - started >= 1.4


def test_a_503_on_a_read_pauses_the_account_for_the_workers_too(rt, sandbox):
    """The 503's seconds come in the body (no header): the read pauses the whole account,
    a worker meanwhile finds it paused and calls nobody, and the read is retried after."""
    store = rt.settings.stores["default"]
    limiter = AccountLimiter(rt.redis, rt.state.keys, store.personyze)
    syncer = Syncer(rt.settings, rt.state)
    sandbox.store.insert("products", {"internal_id": "row"})
    reconcile(rt, "default")  # 12 keepers pending for the workers
    seen_during_pause: list[tuple[float, str]] = []

    def sleep(seconds: float) -> None:
        if not seen_during_pause:
            seen_during_pause.append((limiter.paused_for(), syncer.run("default", "1")))
        time.sleep(seconds)

    pace = PacedReads(limiter, 0.05, 0.5, 1.0, sleep=sleep)
    sandbox.faults.update(force_503_for=2)  # answers 503 with "2" in the body
    sandbox.clear_log()
    with PersonyzeClient(SANDBOX_KEY, sandbox.url) as client:
        rows = list(client.iter_all("products", order_by="internal_id", pace=pace))
    assert [r["internal_id"] for r in rows] == ["row"]
    [(paused, outcome)] = seen_during_pause
    assert paused > 0 and outcome == "paused"
    first, second = sandbox.request_log
    assert (first.status, second.status) == (503, 200)
    assert second.time - first.time >= 1.95  # waited the seconds the body asked for


def test_a_500_on_a_read_is_retried_and_a_401_pauses_and_stops(rt, sandbox):
    limiter = AccountLimiter(rt.redis, rt.state.keys, rt.settings.stores["default"].personyze)
    pace = PacedReads(limiter, 0.01, 0.05, 60.0, max_attempts=3)
    sandbox.faults.update(error_500_rate=1.0)
    with PersonyzeClient(SANDBOX_KEY, sandbox.url) as client, pytest.raises(PersonyzeServerError):
        pace(lambda: client.get("products"))
    assert [e.status for e in sandbox.request_log] == [500, 500, 500]
    sandbox.faults.update(error_500_rate=0.0)
    wrong = PersonyzeClient("WRONG" + "0" * 35, sandbox.url)
    with wrong, pytest.raises(PersonyzeAuthError):
        pace(lambda: wrong.get("products"))
    assert limiter.paused_for() > 30  # workers of the account stop calling too


def test_repeating_500_text_is_in_the_dead_letter_entry(make_settings, webhooks, sandbox):
    """Some permanent input errors come back as 500 with a text: after the retry budget the
    DLQ entry shows, per attempt, the status and that text, without the key."""
    rt = runtime.build(make_settings(personyze_base_url=sandbox.url, max_attempts=3))
    resp = webhooks.to(rt.settings).standard(standard_body("SKU-1", at=1))
    assert resp.status_code == 200
    basic = base64.b64encode(f"api:{SANDBOX_KEY}".encode()).decode()
    sandbox.faults.update(
        error_500_rate=1.0,
        error_500_text=(
            f"Duplicate entry 'SKU-1' for key 'sku' (key {SANDBOX_KEY}, Basic {basic})"
        ),
    )
    s = Syncer(rt.settings, rt.state)
    for _ in range(3):
        rt.redis.zadd(rt.state.keys.due("default"), {"SKU-1": 0})
        s.run("default", "SKU-1")
    entry = rt.state.dlq_list("default")["SKU-1"]
    assert len(entry["errors"]) == 3
    for attempt in entry["errors"]:
        assert "500" in attempt["error"]
        assert "Duplicate entry 'SKU-1' for key 'sku'" in attempt["error"]
        assert SANDBOX_KEY not in attempt["error"] and basic not in attempt["error"]


def test_resync_reports_a_personyze_failure_without_a_traceback(make_settings, sandbox, woo):
    settings = make_settings(
        personyze_base_url=sandbox.url,
        personyze_api_key="WRONG" + "7" * 35,
        woocommerce_url=woo.url,
        woocommerce_consumer_key=WOO_CONSUMER_KEY,
        woocommerce_consumer_secret=WOO_CONSUMER_SECRET,
    )
    cli = CLI
    done = subprocess.run(
        [cli, "resync", "--delete-missing"],
        env=settings_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "default: Personyze GET /products" in done.stderr and "401" in done.stderr
    assert "Traceback" not in done.stderr and "7" * 35 not in done.stdout + done.stderr
