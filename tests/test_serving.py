"""The web app served by real gunicorn, as the Procfile runs it."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.servers import Gunicorn, settings_env
from tests.support import shopify_product


@pytest.fixture
def server(make_settings):
    g = Gunicorn(settings_env(make_settings(max_body_bytes=20_000)), workers=1, threads=2)
    yield g
    g.stop()


@pytest.fixture
def served(webhooks, server):
    """Deliveries to the gunicorn-served app, over HTTP."""
    return webhooks.to(server.url)


def test_webhook_through_gunicorn(server, served):
    resp = served.shopify("products/update", shopify_product())
    assert resp.status_code == 200 and resp.status == "accepted_wake"
    assert requests.get(server.url + "/readyz").status_code == 200


def test_oversized_body_with_content_length_is_413(served):
    resp = served.shopify("products/update", shopify_product(title="x" * 30_000))
    assert resp.status_code == 413


def test_oversized_chunked_body_is_413(server):
    """No Content-Length: the limit still holds while reading the stream."""
    host, port = "127.0.0.1", server.port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nX-Shopify-Topic: products/update\r\n\r\n"
        )
        chunk = b"x" * 4096
        try:
            for _ in range(20):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status = s.recv(200).split(b"\r\n", 1)[0]
    assert b" 413 " in status


def test_metrics_report_the_ledger(server, served):
    served.shopify("products/update", shopify_product())
    text = requests.get(server.url + "/metrics").text
    assert 'personyze_sync_ledger{outcome="received",store="default"} 1.0' in text
    assert 'personyze_sync_due_keys{store="default"} 1.0' in text
