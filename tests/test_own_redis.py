"""The tests never write to a Redis they did not start (a developer's 6379 may hold real data)."""

from __future__ import annotations

import os

import pytest
import redis


def test_session_redis_is_our_own(redis_url: str) -> None:
    if os.environ.get("TEST_REDIS_URL"):
        pytest.skip("TEST_REDIS_URL names a Redis explicitly")
    r = redis.Redis.from_url(redis_url)
    port = int(r.config_get("port")["port"])
    assert port != 6379
    # a server started for this session keeps its files under pytest's temp directory
    assert "pytest-" in r.config_get("dir")["dir"]
