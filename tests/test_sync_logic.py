"""One sync attempt at a time (workers.sync.Syncer) against real Redis and the sandbox over
HTTP: the state transitions, the mapping on the wire, failures, dead letters, pauses."""

from __future__ import annotations

import time

import pytest

from app.core.state import ledger_balance
from tests.support import send, shopify_product, standard_body, ts
from workers.sync import Syncer

PID = "632910392"


@pytest.fixture
def syncer(rt):
    return Syncer(rt.settings, rt.state)


def writes(sandbox):
    return [e for e in sandbox.request_log if e.method in ("POST", "DELETE")]


def balanced(rt):
    led = rt.state.ledger("default")
    assert ledger_balance(led) == 0, led
    return led


def test_update_becomes_the_mapped_row(webhooks, syncer, sandbox, rt):
    send(webhooks, shopify_product(at=1))
    assert syncer.run("default", PID) == "written"
    [row] = sandbox.rows("products")
    assert row["internal_id"] == PID
    assert row["title"] == "IPod Nano"
    assert row["description"] == "It's small & big."
    assert (row["price"], row["sale_price"]) == ("199.00", "199.00")
    assert row["is_in_stock"] == "yes" and int(row["inventory"]) == 10
    assert row["image_big_url"] == "https://cdn.example.com/ipod.png"
    assert row["guide_url"] == "https://test-shop.myshopify.com/products/ipod-nano"
    assert (row["brand"], row["category"], row["sku"]) == ("Apple", "Cult Products", "IPOD-PINK")
    led = balanced(rt)
    assert led["written"] == 1 and led["pending"] == 0
    assert rt.state.due_count("default") == 0


def test_sale_price_from_compare_at(webhooks, syncer, sandbox):
    p = shopify_product(at=1)
    p["variants"][0]["compare_at_price"] = "249.00"
    send(webhooks, p)
    syncer.run("default", PID)
    [row] = sandbox.rows("products")
    assert (row["price"], row["sale_price"]) == ("249.00", "199.00")


def test_sale_ends_with_an_explicit_price(webhooks, syncer, sandbox):
    p = shopify_product(at=1)
    p["variants"][0]["compare_at_price"] = "249.00"
    send(webhooks, p)
    syncer.run("default", PID)
    send(webhooks, shopify_product(at=2))  # compare_at gone
    syncer.run("default", PID)
    [row] = sandbox.rows("products")
    assert (row["price"], row["sale_price"]) == ("199.00", "199.00")


def test_out_of_stock_and_untracked(webhooks, syncer, sandbox):
    p = shopify_product(at=1)
    for v in p["variants"]:
        v["inventory_quantity"] = 0
    send(webhooks, p)
    syncer.run("default", PID)
    assert sandbox.rows("products")[0]["is_in_stock"] == "no"
    p = shopify_product(at=2)
    p["variants"][0]["inventory_management"] = None
    p["variants"][0]["inventory_quantity"] = 0
    send(webhooks, p)
    syncer.run("default", PID)
    assert sandbox.rows("products")[0]["is_in_stock"] == "yes"


def test_unchanged_content_is_not_written(webhooks, syncer, sandbox, rt):
    send(webhooks, shopify_product(at=1))
    syncer.run("default", PID)
    send(webhooks, shopify_product(at=2))  # newer updated_at, same mapped fields (an order, say)
    assert syncer.run("default", PID) == "skipped_unchanged"
    assert len(writes(sandbox)) == 1
    led = balanced(rt)
    assert led["skipped_unchanged"] == 1


def test_draft_product_is_deleted_and_tombstoned(webhooks, syncer, sandbox, rt):
    send(webhooks, shopify_product(at=1))
    syncer.run("default", PID)
    send(webhooks, shopify_product(at=2, status="draft"))
    assert syncer.run("default", PID) == "written"
    assert sandbox.rows("products") == []
    send(webhooks, shopify_product(at=1.5))
    assert rt.state.ledger("default")["stale"] == 1


def test_delete_then_late_update_never_resurrects(webhooks, syncer, sandbox, rt):
    send(webhooks, shopify_product(at=1))
    syncer.run("default", PID)
    send(webhooks, {"id": int(PID)}, topic="products/delete", triggered_at=ts(5))
    syncer.run("default", PID)
    assert sandbox.rows("products") == []
    assert send(webhooks, shopify_product(at=3)) == "stale"  # a retry of an older update
    assert syncer.run("default", PID) == "idle"
    assert sandbox.rows("products") == []
    balanced(rt)


def test_newer_version_arriving_during_the_call_is_written_next(webhooks, rt, sandbox):
    """Complete only clears pending if no newer version came in while the call was out."""
    send(webhooks, shopify_product(at=1, title="v1"))
    claim = rt.state.claim("default", PID, "tok", 5)
    send(webhooks, shopify_product(at=2, title="v2"))
    woken = rt.state.complete("default", PID, claim, "h1", "written")
    assert woken is True
    assert rt.state.product("default", PID).pending_kind == "upsert"
    s = Syncer(rt.settings, rt.state)
    assert s.run("default", PID) == "written"
    assert sandbox.rows("products")[0]["title"] == "v2"
    led = balanced(rt)
    assert led["coalesced"] == 1 and led["written"] == 1


def test_second_worker_cannot_claim_a_leased_key(webhooks, rt):
    send(webhooks, shopify_product(at=1))
    assert not isinstance(rt.state.claim("default", PID, "a", 5), str)
    assert rt.state.claim("default", PID, "b", 5) == "busy"


def test_400_is_permanent_dead_letter_at_once(webhooks, syncer, sandbox, rt):
    send(webhooks, shopify_product(at=1))
    sandbox.faults.update(error_400_rate=1.0)
    assert syncer.run("default", PID) == "dead"
    dead = rt.state.dlq_list("default")
    assert "PersonyzeBadRequest" in dead[PID]["errors"][0]["error"]
    assert len([e for e in sandbox.request_log if e.method == "POST"]) == 1  # no retry
    led = balanced(rt)
    assert led["dead"] == 1 and led["pending"] == 0


def test_500s_retry_with_backoff_then_dead_letter(make_settings, sandbox, webhooks):
    from app import runtime

    rt = runtime.build(make_settings(personyze_base_url=sandbox.url, max_attempts=3))
    s = Syncer(rt.settings, rt.state)
    send(webhooks, shopify_product(at=1))
    sandbox.faults.update(error_500_rate=1.0)
    assert s.run("default", PID) == "retry"
    assert rt.state.product("default", PID).attempts == 1
    # due again after a jittered backoff (<= 0.1 s with base 0.05)
    assert s.run("default", PID) in ("retry", "busy")
    _run_when_due(rt, s)
    dead = rt.state.dlq_list("default")
    assert list(dead) == [PID]
    assert len(dead[PID]["errors"]) == 3
    assert "PersonyzeServerError" in dead[PID]["errors"][-1]["error"]
    led = rt.state.ledger("default")
    assert led["dead"] == 1 and led["pending"] == 0 and ledger_balance(led) == 0
    # replay after Personyze recovers
    sandbox.faults.update(error_500_rate=0.0)
    assert rt.state.dlq_replay("default", PID) == "replayed"
    assert s.run("default", PID) == "written"
    led = rt.state.ledger("default")
    assert led["dead"] == 0 and led["written"] == 1 and ledger_balance(led) == 0


def _run_when_due(rt, s, store="default", pid=PID, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end and pid not in rt.state.dlq_list(store):
        score = rt.state.product(store, pid).due_at
        if score is None:
            return
        time.sleep(max(0.0, min(0.2, score - time.time())))
        s.run(store, pid)


def test_newer_webhook_supersedes_a_dead_entry(make_settings, sandbox, webhooks):
    from app import runtime

    rt = runtime.build(make_settings(personyze_base_url=sandbox.url, max_attempts=1))
    s = Syncer(rt.settings, rt.state)
    send(webhooks, shopify_product(at=1))
    sandbox.faults.update(error_500_rate=1.0)
    assert s.run("default", PID) == "dead"
    sandbox.faults.update(error_500_rate=0.0)
    assert send(webhooks, shopify_product(at=0.5)) == "stale"  # older than the dead version
    assert send(webhooks, shopify_product(at=2, title="fixed")) == "accepted_wake"
    assert rt.state.dlq_list("default") == {}
    assert s.run("default", PID) == "written"
    assert sandbox.rows("products")[0]["title"] == "fixed"
    led = rt.state.ledger("default")
    assert led["dead"] == 0 and led["coalesced"] == 1 and ledger_balance(led) == 0


def test_503_pauses_the_account_for_retry_after(webhooks, syncer, sandbox, rt):
    send(webhooks, shopify_product(at=1))
    sandbox.faults.update(force_503_for=2)
    assert syncer.run("default", PID) == "paused"
    limiter = syncer.limiter(rt.settings.stores["default"])
    assert 1.0 < limiter.paused_for() <= 2.0
    calls = len(sandbox.request_log)
    assert syncer.run("default", PID) in ("paused", "busy")
    assert len(sandbox.request_log) == calls  # nobody called during the pause
    assert rt.state.product("default", PID).attempts == 0  # not its fault


def test_401_pauses_keeps_pending_and_reports_once(make_settings, sandbox, webhooks):
    import json

    import sentry_sdk
    from sentry_sdk.transport import Transport

    from app import runtime
    from app.observability import before_send

    events = []

    class Capture(Transport):
        def capture_envelope(self, envelope):
            events.extend(i.payload.json for i in envelope.items if i.payload.json)

    wrong_key = "WRONG" + "7" * 35
    rt = runtime.build(make_settings(personyze_base_url=sandbox.url, personyze_api_key=wrong_key))
    s = Syncer(rt.settings, rt.state)
    send(webhooks, shopify_product(at=1))
    sentry_sdk.init(
        dsn="https://public@sentry.example.invalid/1", transport=Capture, before_send=before_send
    )
    try:
        assert s.run("default", PID) == "auth_failed"
        lim = s.limiter(rt.settings.stores["default"])
        first_pause = lim.paused_for()
        assert 200 < first_pause <= 300
        rt.redis.delete(lim.pause_key)  # the pause ran out; the key is still wrong
        assert s.run("default", PID) == "auth_failed"
        assert lim.paused_for() > first_pause  # growing
        sentry_sdk.flush()
    finally:
        sentry_sdk.init(dsn=None)
    reports = [e for e in events if "401" in json.dumps(e)]
    assert len(reports) == 1  # once, not per attempt
    assert wrong_key not in json.dumps(events)
    assert rt.state.product("default", PID).pending_kind == "upsert"  # still pending
    led = rt.state.ledger("default")
    assert led["pending"] == 1 and ledger_balance(led) == 0


def test_standard_webhook_row(webhooks, syncer, sandbox):
    resp = webhooks.standard(
        standard_body(
            "SKU/1 & 2|%+",
            price="10",
            sale_price="8",
            url="https://s.example/p",
            image_url="https://s.example/i.png",
            brand="B",
            category="C",
            sku="S",
        )
    )
    assert resp.status_code == 200
    assert syncer.run("default", "SKU/1 & 2|%+") == "written"
    [row] = sandbox.rows("products")
    assert row["internal_id"] == "SKU/1 & 2|%+"
    assert (row["price"], row["sale_price"], row["is_in_stock"]) == ("10", "8", "yes")
    assert row["guide_url"] == "https://s.example/p"
    # and it deletes by the same awkward id
    webhooks.standard(standard_body("SKU/1 & 2|%+", at=5, type_="product.deleted"))
    assert syncer.run("default", "SKU/1 & 2|%+") == "written"
    assert sandbox.rows("products") == []


def test_per_store_mapping_rename_drop_add_constants(make_settings, webhooks, sandbox, tmp_path):
    from app import runtime

    f = tmp_path / "stores.yaml"
    f.write_text(f"""
stores:
  - id: shop
    shopify_webhook_secrets: [s3cret]
    personyze: {{api_key: {sandbox.api_key}, base_url: "{sandbox.url}", rate_limit: 100}}
    mapping:
      rename: {{brand: manufacturer, internal_id: nope}}
      drop: [inventory, internal_id]
      add: {{custom_1: tags, custom_2: variants.1.sku}}
      constants: {{custom_3: imported}}
""")
    settings = make_settings(stores_file=str(f))
    rt = runtime.build(settings)
    product = shopify_product(at=1, tags="red, sale")
    resp = webhooks.to(settings).shopify("products/update", product, secret="s3cret")
    assert resp.status_code == 200
    assert Syncer(rt.settings, rt.state).run("shop", PID) == "written"
    [row] = sandbox.rows("products")
    assert row["internal_id"] == PID  # the key cannot be renamed or dropped
    assert row["manufacturer"] == "Apple" and "brand" not in row
    assert "inventory" not in row
    assert (row["custom_1"], row["custom_2"], row["custom_3"]) == (
        "red, sale",
        "IPOD-RED",
        "imported",
    )


def test_a_row_that_cannot_be_mapped_is_dead_lettered_not_looped(webhooks, syncer, sandbox, rt):
    send(webhooks, shopify_product(at=1))
    # Corrupt the pending doc the way a bug in an older version could have written it.
    rt.redis.hset(rt.state.keys.product("default", PID), "pd", b'{"id": "x", "bogus": 1}')
    assert syncer.run("default", PID) == "dead"
    [entry] = rt.state.dlq_list("default").values()
    assert "MappingError" in entry["errors"][-1]["error"]
    assert sandbox.request_log == []
    assert ledger_balance(rt.state.ledger("default")) == 0


def test_a_new_version_does_not_wait_out_the_old_ones_backoff(make_settings, sandbox, webhooks):
    import time as _time

    from app import runtime

    rt = runtime.build(
        make_settings(
            personyze_base_url=sandbox.url, backoff_base_seconds=100, backoff_max_seconds=300
        )
    )
    s = Syncer(rt.settings, rt.state)
    send(webhooks, shopify_product(at=1))
    sandbox.faults.update(error_500_rate=1.0)
    assert s.run("default", PID) == "retry"
    sandbox.faults.update(error_500_rate=0.0)
    send(webhooks, shopify_product(at=2, title="v2"))
    assert rt.state.product("default", PID).due_at <= _time.time() + 1
    assert s.run("default", PID) == "written"
    assert sandbox.rows("products")[0]["title"] == "v2"


def test_a_worker_that_lost_its_lease_changes_nothing(webhooks, rt):
    send(webhooks, shopify_product(at=1))
    old = rt.state.claim("default", PID, "old", 5)
    rt.redis.delete(rt.state.keys.lease("default", PID))  # its lease ran out
    new = rt.state.claim("default", PID, "new", 5)
    assert not isinstance(new, str)
    before = rt.state.product("default", PID)
    assert rt.state.release("default", PID, old, 60, [{"error": "late"}]) == -2
    assert rt.state.dead_letter("default", PID, old, []) == "lease_lost"
    assert rt.state.product("default", PID) == before
    assert rt.state.dlq_list("default") == {}


def test_503_without_a_number_backs_off_exponentially_per_account(make_settings, sandbox, webhooks):
    from app import runtime

    rt = runtime.build(
        make_settings(
            personyze_base_url=sandbox.url, backoff_base_seconds=1, backoff_max_seconds=300
        )
    )
    s = Syncer(rt.settings, rt.state)
    lim = s.limiter(rt.settings.stores["default"])
    send(webhooks, shopify_product(at=1))
    sandbox.faults.update(error_503_rate=1.0, retry_after_503=None)
    for n in range(1, 6):
        rt.redis.delete(lim.pause_key)
        rt.redis.zadd(rt.state.keys.due("default"), {PID: 0})
        assert s.run("default", PID) == "paused"
        paused = lim.paused_for()
        assert 0.9 <= paused <= 2 ** (n - 1) + 0.01  # full jitter, at least 1 s
    assert int(rt.redis.hget(lim.fail_key, "busy")) == 5
    sandbox.faults.update(error_503_rate=0.0)
    rt.redis.delete(lim.pause_key)
    rt.redis.zadd(rt.state.keys.due("default"), {PID: 0})
    assert s.run("default", PID) == "written"
    assert not rt.redis.exists(lim.fail_key)  # a success resets the backoff
