"""Prometheus metrics. Request counters are per process (multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set, as gunicorn needs); the ledger, backlog and DLQ come straight
from Redis at scrape time, so every replica reports the same truth."""

from __future__ import annotations

import os
from collections.abc import Iterator

import redis
from flask import Blueprint, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from app.core.state import LATENCY_BUCKETS, LEDGER_FIELDS

WEBHOOKS = Counter(
    "personyze_sync_webhooks_total", "Webhook deliveries answered", ["platform", "outcome"]
)

bp = Blueprint("metrics", __name__)


class StateCollector(Collector):
    def __init__(self, runtime) -> None:
        self.rt = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ledger = GaugeMetricFamily(
            "personyze_sync_ledger", "Events by outcome (DESIGN.md invariant 8)",
            labels=["store", "outcome"],
        )
        due = GaugeMetricFamily("personyze_sync_due_keys", "Products waiting", labels=["store"])
        age = GaugeMetricFamily(
            "personyze_sync_backlog_age_seconds", "Age of the oldest due product", labels=["store"]
        )
        dead = GaugeMetricFamily("personyze_sync_dlq_size", "Dead-letter entries", labels=["store"])
        calls = CounterMetricFamily(
            "personyze_sync_personyze_calls", "Personyze calls by outcome",
            labels=["store", "outcome"],
        )
        latency = HistogramMetricFamily(
            "personyze_sync_end_to_end_seconds",
            "Webhook received -> Personyze confirmed the write", labels=["store"],
        )
        repairs = CounterMetricFamily(
            "personyze_sync_subscription_repairs",
            "Store webhook subscriptions the scheduler re-created or re-enabled",
            labels=["store", "platform"],
        )
        up = GaugeMetricFamily("personyze_sync_redis_up", "Redis answered this scrape")
        try:
            for sid in self.rt.settings.stores:
                led = self.rt.state.ledger(sid)
                for f in LEDGER_FIELDS:
                    ledger.add_metric([sid, f], led[f])
                due.add_metric([sid], self.rt.state.due_count(sid))
                age.add_metric([sid], self.rt.state.oldest_due_age(sid))
                dead.add_metric([sid], self.rt.state.status(sid)["dlq"])
                stats = self.rt.state.stats(sid)
                for k, v in stats.items():
                    if k.startswith("calls:"):
                        calls.add_metric([sid, k[6:]], v)
                    elif k.startswith("subscription_repairs:"):  # workers/subscriptions.py
                        repairs.add_metric([sid, k.removeprefix("subscription_repairs:")], v)
                buckets, total = [], 0.0
                for b in (*LATENCY_BUCKETS, "inf"):
                    total += stats.get(f"le:{b}", 0.0)
                    buckets.append(("+Inf" if b == "inf" else str(b), total))
                latency.add_metric([sid], buckets, stats.get("lat_sum", 0.0))
            up.add_metric([], 1)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        yield from (ledger, due, age, dead, calls, latency, repairs, up)


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY  # type: ignore[assignment]
    out = generate_latest(registry)
    state_registry = CollectorRegistry()
    state_registry.register(StateCollector(current_app.extensions["personyze_sync"]))
    out += generate_latest(state_registry)
    return Response(out, mimetype=CONTENT_TYPE_LATEST)
