"""`State.product`: one product's state read back at every step of its life, each step taken
by the real transitions (webhooks into the app, then claim, release, dead letter, complete as
a worker calls them) against a real Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app import runtime
from app.core.mapping import DELETED_HASH
from app.core.model import Product
from tests.constants import T0
from tests.support import bigcommerce_body, shopify_product, ts

PID = "632910392"
COOLDOWN = 30.0


def us(seconds_after_t0: float) -> int:
    return int((T0 + timedelta(seconds=seconds_after_t0)).timestamp() * 1_000_000)


@pytest.fixture
def rt(make_settings):
    return runtime.build(make_settings(product_cooldown_seconds=COOLDOWN))


@pytest.fixture
def store(webhooks, rt):
    return webhooks.to(rt.settings)


def test_a_product_read_back_through_its_life(rt, store):
    state = rt.state
    assert state.product("default", PID).unknown

    before = time.time()
    assert store.shopify("products/update", shopify_product(at=1)).status == "accepted_wake"
    p = state.product("default", PID)
    assert (p.pending_version, p.pending_kind) == (us(1), "upsert")
    assert Product.from_json(p.pending_doc).title == "IPod Nano"
    assert before <= p.received_at <= time.time()
    assert p.due_at is not None and p.woken_at is None and not p.leased
    assert (p.deliveries, p.attempts, p.errors) == (1, 0, ())
    assert p.synced_version is None and not p.tombstone and not p.unknown

    assert state.sweep("default", 10, 60.0, 0)[0] == [PID]  # the dispatcher wakes it
    p = state.product("default", PID)
    assert p.woken_at is not None and p.due_at is None

    claim = state.claim("default", PID, "worker-1", 5)
    p = state.product("default", PID)
    assert p.leased and p.woken_at is None and p.due_at is not None  # due if the worker dies
    error = {"at": 1.0, "error": "500: try later"}
    state.release("default", PID, claim, 60, [error])
    p = state.product("default", PID)
    assert (p.attempts, p.errors) == (1, (error,)) and p.first_failure is not None
    assert not p.leased and p.pending

    claim = state.claim("default", PID, "worker-2", 5)
    assert state.dead_letter("default", PID, claim, [error]) == "dead"
    p = state.product("default", PID)
    assert p.dead_lettered and p.dead_version == us(1)
    assert not p.pending and p.pending_doc is None and p.due_at is None and not p.leased

    # A newer webhook supersedes the dead entry, with a fresh retry budget.
    assert store.shopify("products/update", shopify_product(at=2)).status == "accepted_wake"
    p = state.product("default", PID)
    assert not p.dead_lettered and p.dead_version is None
    assert (p.pending_version, p.attempts, p.deliveries) == (us(2), 0, 2)

    claim = state.claim("default", PID, "worker-3", 5)
    assert state.complete("default", PID, claim, "ab" * 16, "written") is False
    p = state.product("default", PID)
    assert (p.synced_version, p.synced_kind, p.synced_hash) == (us(2), "upsert", "ab" * 16)
    assert not p.pending and p.pending_doc is None and not p.leased and p.due_at is None
    assert 0 < p.cooldown_left <= COOLDOWN  # written just now: the next write waits

    resp = store.shopify("products/delete", {"id": int(PID)}, triggered_at=ts(3))
    assert resp.status == "accepted_wake"
    p = state.product("default", PID)
    assert p.pending_kind == "delete" and p.due_at > time.time()  # after the cooldown
    rt.redis.delete(state.keys.cool("default", PID))  # the cooldown has passed
    claim = state.claim("default", PID, "worker-4", 5)
    state.complete("default", PID, claim, DELETED_HASH, "written")
    p = state.product("default", PID)
    assert p.tombstone and (p.synced_kind, p.synced_hash) == ("delete", DELETED_HASH)
    assert p.synced_version == claim.version and p.deliveries == 3 and not p.pending


def test_a_refresh_remembers_which_api_to_read(webhooks, bc_rt):
    """A thin delivery (BigCommerce) pends as a refresh, its doc the platform to fetch from."""
    rt = bc_rt()
    assert webhooks.to(rt.settings).bigcommerce(bigcommerce_body(pid=205)).status_code == 200
    p = rt.state.product("default", "205")
    assert (p.pending_kind, p.pending_doc) == ("refresh", b"bigcommerce")
