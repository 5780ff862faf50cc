"""Issue 8.6: configuration that cannot lie is refused at start, naming the variable."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_stores_file


def test_whsec_with_an_empty_key_is_refused(make_settings):
    with pytest.raises(ConfigError, match="STANDARD_WEBHOOK_SECRET.*empty key"):
        make_settings(standard_webhook_secret="whsec_")


def test_whsec_that_is_not_base64_is_refused(make_settings):
    with pytest.raises(ConfigError, match="STANDARD_WEBHOOK_SECRET.*base64") as e:
        make_settings(standard_webhook_secret="whsec_not*base64!")
    assert "not*base64" not in str(e.value)


@pytest.mark.parametrize(
    "mapping",
    [
        "{add: {internal_id: sku}}",
        "{rename: {sku: internal_id}}",
        "{constants: {internal_id: '1'}}",
    ],
)
def test_mapping_that_writes_internal_id_is_refused(tmp_path, mapping):
    f = tmp_path / "stores.yml"
    f.write_text(f"stores:\n  - id: s1\n    mapping: {mapping}\n")
    with pytest.raises(ConfigError, match="MAPPING.*internal_id is the product key"):
        load_stores_file(f)


def test_harmless_mapping_still_loads(tmp_path):
    f = tmp_path / "stores.yml"
    f.write_text("stores:\n  - id: s1\n    mapping: {rename: {brand: manufacturer}}\n")
    assert load_stores_file(f)["s1"].mapping.rename == {"brand": "manufacturer"}


def test_lease_must_outlive_the_task_hard_time_limit(make_settings):
    with pytest.raises(ConfigError, match="LEASE_SECONDS must be longer than TASK_TIME_LIMIT"):
        make_settings(lease_seconds=90, task_time_limit_seconds=90)
    s = make_settings(lease_seconds=120, task_time_limit_seconds=90)
    assert s.task_soft_time_limit_seconds == 60


def test_celery_takes_its_time_limits_from_the_settings(make_settings):
    from workers.celery_app import make_celery

    app = make_celery(
        __import__("app.runtime").runtime.build(
            make_settings(lease_seconds=31, task_time_limit_seconds=30)
        )
    )
    assert app.conf.task_time_limit == 30 and app.conf.task_soft_time_limit == 20
