"""Issue 8.9: a sender that posts 6 MiB with a Content-Length reads the 413 answer.

Answering before the body is read and then closing makes the kernel reset the connection
while the client is still sending: it sees ECONNRESET, not the 413. Real gunicorn (sync
workers as the Procfile runs them, and gthread), real clients that send the whole body."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

from tests.servers import Gunicorn, settings_env
from tests.webhooks import Delivery

SIX_MIB = 6 * 1024 * 1024


@pytest.fixture(params=[("sync", 1), ("gthread", 2)], ids=["sync", "gthread"])
def server(request, make_settings):
    worker_class, threads = request.param
    env = settings_env(make_settings())  # default MAX_BODY_BYTES, 5 MiB
    g = Gunicorn(dict(env, WEB_WORKER_CLASS=worker_class), workers=1, threads=threads)
    yield g
    g.stop()


@pytest.fixture
def big_delivery(webhooks) -> Delivery:
    """A signed Shopify delivery of 6 MiB, over the default 5 MiB limit."""
    return webhooks.shopify_delivery(
        "products/update", b'{"id": 1, "title": "' + b"x" * SIX_MIB + b'"}'
    )


def test_six_mib_with_content_length_gets_a_readable_413_requests(server, big_delivery):
    body, headers = big_delivery.body, big_delivery.headers
    for _ in range(3):  # and again, on whatever connection the client reuses
        resp = requests.post(
            server.url + "/webhooks/shopify", data=body, headers=headers, timeout=60
        )
        assert resp.status_code == 413
        assert resp.json()["status"] == "request_entity_too_large"
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


def test_six_mib_with_content_length_gets_a_readable_413_http_client(server, big_delivery):
    body, headers = big_delivery.body, big_delivery.headers
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/webhooks/shopify", body=body, headers=headers)
        resp = conn.getresponse()
        assert resp.status == 413
        assert "5242880" in json.loads(resp.read())["error"]
    finally:
        conn.close()
