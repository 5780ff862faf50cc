"""Prometheus metrics. Request counters are per process (multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set, as gunicorn needs); the ledger, backlog and DLQ come straight
from Redis at scrape time, so every replica reports the same truth."""

from __future__ import annotations

import os
from collections.abc import Iterator

import redis
from flask import Blueprint, Response
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
    Metric,
)
from prometheus_client.registry import Collector

from app.core import activity
from app.core.state import LATENCY_BUCKETS, LEDGER_FIELDS, repairs_of
from app.observability import last_heartbeat
from app.runtime import Runtime
from app.web import current_runtime

WEBHOOKS = Counter(
    "personyze_sync_webhooks_total", "Webhook deliveries answered", ["platform", "outcome"]
)

bp = Blueprint("metrics", __name__)


class StateCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def collect(self) -> Iterator[Metric]:
        ledger = GaugeMetricFamily(
            "personyze_sync_ledger",
            "Events by outcome (docs/design.md invariant 8)",
            labels=["store", "outcome"],
        )
        due = GaugeMetricFamily("personyze_sync_due_keys", "Products waiting", labels=["store"])
        age = GaugeMetricFamily(
            "personyze_sync_backlog_age_seconds", "Age of the oldest due product", labels=["store"]
        )
        dead = GaugeMetricFamily("personyze_sync_dlq_size", "Dead-letter entries", labels=["store"])
        calls = CounterMetricFamily(
            "personyze_sync_personyze_calls",
            "Personyze calls by outcome",
            labels=["store", "outcome"],
        )
        latency = HistogramMetricFamily(
            "personyze_sync_end_to_end_seconds",
            "Webhook received -> Personyze confirmed the write",
            labels=["store"],
        )
        repairs = CounterMetricFamily(
            "personyze_sync_subscription_repairs",
            "Store webhook subscriptions the scheduler re-created or re-enabled",
            labels=["store", "platform"],
        )
        up = GaugeMetricFamily("personyze_sync_redis_up", "Redis answered this scrape")
        paused = GaugeMetricFamily(
            "personyze_sync_account_pause_seconds",
            "Seconds the store's Personyze account stays paused (0: not paused)",
            labels=["store"],
        )
        failures = GaugeMetricFamily(
            "personyze_sync_account_consecutive_failures",
            "401s and 503s since the account's last success",
            labels=["store", "status"],
        )
        extra: list[GaugeMetricFamily] = []
        try:
            for sid in self.rt.settings.stores:
                st = self.rt.state.status(sid)
                for f in LEDGER_FIELDS:
                    ledger.add_metric([sid, f], st["ledger"][f])
                due.add_metric([sid], st["due"])
                age.add_metric([sid], st["backlog_age_seconds"])
                dead.add_metric([sid], st["dlq"])
                stats = self.rt.state.stats(sid)
                for k, v in stats.items():
                    if k.startswith("calls:"):
                        calls.add_metric([sid, k[6:]], v)
                for platform, n in repairs_of(stats).items():
                    repairs.add_metric([sid, platform], n)
                buckets, total = [], 0.0
                for b in (*LATENCY_BUCKETS, "inf"):
                    total += stats.get(f"le:{b}", 0.0)
                    buckets.append(("+Inf" if b == "inf" else str(b), total))
                latency.add_metric([sid], buckets, stats.get("lat_sum", 0.0))
                pause = activity.pause_state(self.rt.state, self.rt.settings.stores[sid])
                paused.add_metric([sid], pause["remaining_seconds"])
                failures.add_metric([sid, "401"], pause["consecutive_401"])
                failures.add_metric([sid, "503"], pause["consecutive_503"])
            extra = self._process_gauges()
            up.add_metric([], 1)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        yield from (ledger, due, age, dead, calls, latency, repairs, paused, failures, up, *extra)

    def _process_gauges(self) -> list[GaugeMetricFamily]:
        """The scheduler's heartbeat (it writes it to Redis; alert: stale) and Redis memory
        against its maxmemory (alert: near the limit; with noeviction a full Redis refuses
        webhooks)."""
        out = []
        beat = last_heartbeat(self.rt.redis, self.rt.settings.key_prefix)
        if beat is not None:
            g = GaugeMetricFamily(
                "personyze_sync_scheduler_heartbeat_timestamp_seconds",
                "When a scheduler last turned its dispatcher loop (unix time)",
            )
            g.add_metric([], beat)
            out.append(g)
        try:
            info = self.rt.redis.info("memory")
        except redis.ResponseError:  # a managed Redis that refuses INFO
            return out
        used = GaugeMetricFamily("personyze_sync_redis_memory_used_bytes", "Redis used_memory")
        used.add_metric([], float(info.get("used_memory", 0)))
        cap = GaugeMetricFamily(
            "personyze_sync_redis_memory_max_bytes", "Redis maxmemory (0: no limit set)"
        )
        cap.add_metric([], float(info.get("maxmemory", 0)))
        return [*out, used, cap]


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    out = generate_latest(registry)
    state_registry = CollectorRegistry()
    state_registry.register(StateCollector(current_runtime()))
    out += generate_latest(state_registry)
    return Response(out, mimetype=CONTENT_TYPE_LATEST)
