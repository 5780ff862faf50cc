"""Issue 8.7: every failure of one product's sync counts against its retry budget.

A soft time limit (or any unexpected exception) in an attempt used to propagate out of the
task: the product was retried after every lease, forever, and never reached the
dead-letter store. Real `celery worker` processes (prefork, where Celery enforces time
limits), the real dispatcher, the sandbox over HTTP."""

from __future__ import annotations

from app import runtime
from app.core.state import ledger_balance
from tests.servers import CeleryWorkers, eventually, settings_env
from tests.support import shopify_product

PID = "632910392"


def test_soft_time_limit_is_a_counted_attempt_then_dead_letter(
    make_settings, webhooks, sandbox, dispatcher_factory
):
    settings = make_settings(
        personyze_base_url=sandbox.url,
        lease_seconds=2.0,
        task_time_limit_seconds=1.5,
        max_attempts=2,
    )
    rt = runtime.build(settings)
    web = webhooks.to(settings)
    sandbox.faults.update(latency_ms=1300)  # past the soft limit (1 s), within the hard one
    stop = dispatcher_factory(rt)
    workers = CeleryWorkers(settings_env(settings), concurrency=2)
    try:
        assert web.shopify("products/update", shopify_product(at=1)).status_code == 200
        dlq = eventually(lambda: rt.state.dlq_list("default"), timeout=60)
        errors = dlq[PID]["errors"]
        assert len(errors) == 2
        assert all(e["error"].startswith("SoftTimeLimitExceeded") for e in errors)
        led = rt.state.ledger("default")
        assert led["dead"] == 1 and led["pending"] == 0 and ledger_balance(led) == 0
        assert rt.state.due_count("default") == 0
    finally:
        stop()
        workers.stop()
