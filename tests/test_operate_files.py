"""Alerting as files: the Prometheus rules pass promtool and fire on the series they are
about, and every metric the rules and the Grafana dashboard name is one /metrics exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.observability import SchedulerPulse
from tests.servers import ROOT
from tests.support import shopify_product

ALERTS = ROOT / "deploy/prometheus/alerts.yaml"
DASHBOARD = ROOT / "deploy/grafana/personyze-sync.json"
METRIC = re.compile(r"\bpersonyze_sync_[a-z0-9_]+\b")


@pytest.fixture
def exported(app, client, webhooks) -> set[str]:
    """Sample names of a real scrape, with every family present: a webhook answered, the
    scheduler's heartbeat written, the sync state read from Redis."""
    rt = app.extensions["personyze_sync"]
    assert webhooks.shopify("products/update", shopify_product()).status_code == 200
    SchedulerPulse(rt.redis, rt.settings.key_prefix)()
    rt.state.note_call("default", "ok", 0.2)  # what a worker records after a write
    text = client.get("/metrics").get_data(as_text=True)
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_export_pause_heartbeat_and_redis_memory(app, client, exported):
    for name in (
        "personyze_sync_account_pause_seconds",
        "personyze_sync_account_consecutive_failures",
        "personyze_sync_scheduler_heartbeat_timestamp_seconds",
        "personyze_sync_redis_memory_used_bytes",
        "personyze_sync_redis_memory_max_bytes",
    ):
        assert name in exported


def rule_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v.get("definition")]
    return exprs


def test_every_alert_and_panel_names_an_exported_metric(exported):
    alerts, panels = rule_exprs(), dashboard_exprs()
    assert len(alerts) >= 6 and len(panels) >= 10
    named = {m for e in alerts + panels for m in METRIC.findall(e)}
    assert named and named <= exported, sorted(named - exported)
    for topic in (
        "backlog_age",
        'outcome="dead"',
        "pause_seconds",
        "unauthorized",
        "unavailable",
        "heartbeat",
        "redis_memory",
    ):
        assert any(topic in e for e in alerts), topic


def test_dashboard_is_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["type"] in ("timeseries", "stat") and p["targets"]
        assert (
            set(p["gridPos"]) == {"x", "y", "w", "h"}
            and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        )


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package `prometheus`; .ci/run "
    "installs it where apt-get works)",
)


@needs_promtool
def test_promtool_checks_the_rules():
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in out.stdout


def expect(alert: str, summary: str, **labels: str) -> dict:
    """An expected firing alert; its description is the rule's (no templates in them)."""
    rules = yaml.safe_load(ALERTS.read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == alert)
    annotations = {"summary": summary}
    if "description" in rule["annotations"]:
        annotations["description"] = rule["annotations"]["description"]
    return {
        "exp_labels": {"severity": rule["labels"]["severity"], **labels},
        "exp_annotations": annotations,
    }


@needs_promtool
def test_promtool_unit_tests_fire_the_alerts(tmp_path: Path):
    """Series shaped like two web replicas' scrapes; the alerts fire when they should and
    stay quiet when they should not."""
    dead = "0x16 1 2 3 3x25"
    series = {
        'personyze_sync_ledger{store="eu",outcome="dead",instance="a"}': dead,
        'personyze_sync_ledger{store="eu",outcome="dead",instance="b"}': dead,
        "personyze_sync_scheduler_heartbeat_timestamp_seconds": "0 60 120 180 180 180 180 180",
        'personyze_sync_account_pause_seconds{store="eu"}': "300x40",
        # short 503 pauses come and go: no alert for them
        'personyze_sync_account_pause_seconds{store="us"}': " ".join(["5", "0"] * 20),
        "personyze_sync_redis_memory_used_bytes": "90x20",
        "personyze_sync_redis_memory_max_bytes": "100x20",
        "personyze_sync_redis_up": "1x40",
    }
    cases = [
        (
            "20m",
            "PersonyzeSyncDeadLettersRising",
            [
                expect(
                    "PersonyzeSyncDeadLettersRising",
                    "Store eu: 3 products dead-lettered in 15 minutes",
                    store="eu",
                )
            ],
        ),
        ("40m", "PersonyzeSyncDeadLettersRising", []),
        ("2m", "PersonyzeSyncSchedulerHeartbeatStale", []),
        (
            "7m",
            "PersonyzeSyncSchedulerHeartbeatStale",
            [
                expect(
                    "PersonyzeSyncSchedulerHeartbeatStale",
                    "No scheduler has turned its loop for 4m 0s",
                )
            ],
        ),
        (
            "35m",
            "PersonyzeSyncAccountPausedTooLong",
            [
                expect(
                    "PersonyzeSyncAccountPausedTooLong",
                    "Store eu: Personyze account paused for 30 minutes",
                    store="eu",
                )
            ],
        ),
        (
            "15m",
            "PersonyzeSyncRedisMemoryHigh",
            [expect("PersonyzeSyncRedisMemoryHigh", "Redis at 90% of its maxmemory")],
        ),
        ("15m", "PersonyzeSyncSchedulerHeartbeatMissing", []),
    ]
    doc = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in series.items()],
                "alert_rule_test": [
                    {"eval_time": t, "alertname": a, "exp_alerts": exp} for t, a, exp in cases
                ],
            }
        ],
    }
    f = tmp_path / "alerts_test.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = subprocess.run(
        [PROMTOOL, "test", "rules", str(f)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
