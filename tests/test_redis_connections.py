"""Issue 8.2 and 8.5: Redis connections that were closed under us, and TLS that verifies.

Each test starts its own redis-server: one with `--timeout 2` (Redis closes connections idle
for 2 s, as managed Redis idle limits do) and one that speaks only TLS with a self-signed
certificate made here with openssl."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from app import create_app, runtime
from app.core import redisconn
from app.core.state import ledger_balance
from tests.constants import SANDBOX_KEY
from tests.redis_server import OwnRedis
from tests.servers import eventually
from tests.support import shopify_product
from workers.sync import Syncer

needs_redis_server = pytest.mark.skipif(
    not shutil.which("redis-server"), reason="needs the redis-server binary"
)


@pytest.fixture
def idle_redis(tmp_path):
    server = OwnRedis(tmp_path / "idle", "--timeout", "2")
    yield server
    server.stop()


def wait_until_idle_clients_closed(url: str) -> None:
    """Until Redis has closed every connection but the one asking (no fixed sleep)."""

    def only_me():
        r = redis.Redis.from_url(url)
        try:
            return len(r.client_list()) == 1
        finally:
            r.close()

    time.sleep(2.0)  # the idle limit itself; then poll for Redis's cron to close them
    eventually(only_me, timeout=20, interval=0.2)


@needs_redis_server
def test_webhook_after_redis_closed_the_idle_connection(
    idle_redis, make_settings, webhooks, sandbox
):
    settings = make_settings(redis_url=idle_redis.url, personyze_base_url=sandbox.url)
    rt = runtime.build(settings)
    web = webhooks.to(create_app(settings))
    assert web.shopify("products/update", shopify_product(at=1)).status_code == 200

    wait_until_idle_clients_closed(idle_redis.url)
    resp = web.shopify("products/update", shopify_product(at=2, title="after idle"))
    assert resp.status_code == 200, resp.text  # was 503: the held connection was dead

    # The worker side (pooled client) after the same idle close.
    wait_until_idle_clients_closed(idle_redis.url)
    assert Syncer(settings, rt.state).run("default", "632910392") == "written"
    assert sandbox.rows("products")[0]["title"] == "after idle"

    # A WooCommerce delete also reads the product's version through the pooled client.
    wait_until_idle_clients_closed(idle_redis.url)
    assert web.woocommerce("product.deleted", {"id": 5}).status_code == 200
    led = rt.state.ledger("default")
    assert led["written"] == 1 and ledger_balance(led) == 0


class ReplyDroppingProxy:
    """A TCP proxy in front of Redis that can lose a reply the way a dropped link does: the
    command reaches Redis and runs, then the connection is cut before its answer arrives."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_replies = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while data := src.recv(65536):
                if replies and self.drop_replies:
                    self.drop_replies -= 1
                    break  # the reply is lost: cut both sides
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


@needs_redis_server
def test_thread_script_retries_once_on_a_fresh_connection_and_the_ledger_balances(
    make_settings, webhooks, tmp_path
):
    """The connection breaks after the script ran (the answer is lost on the wire): the retry
    meets the delivery id the product's record keeps, so the event is recorded once, answered
    as a duplicate, and the ledger counts both runs."""
    server = OwnRedis(tmp_path / "proxied")
    proxy = ReplyDroppingProxy(server.port)
    try:
        app = create_app(make_settings(redis_url=proxy.url))
        web, state = webhooks.to(app), app.extensions["personyze_sync"].state
        assert web.shopify("products/update", shopify_product(at=1)).status_code == 200
        first_conn = state._ingest._local.conn

        proxy.drop_replies = 1
        resp = web.shopify("products/update", shopify_product(at=2))
        assert resp.status_code == 200 and resp.status == "duplicate"
        assert state._ingest._local.conn is not first_conn  # a fresh connection
        assert proxy.drop_replies == 0  # the reply really was lost once
        led = state.ledger("default")
        assert led["received"] == 3 and led["duplicates"] == 1 and ledger_balance(led) == 0
        assert state.product("default", "632910392").pending  # the newer version pends
    finally:
        proxy.close()
        server.stop()


def test_pooled_client_retries_once_without_backoff(settings):
    """redis-py 6+ retries 10 times with up to 10 s backoff by default: a webhook would hang
    far past the sender's timeout while Redis is down instead of answering 503."""
    r = redisconn.client(settings.redis_url, True)
    retry = r.connection_pool.connection_kwargs["retry"]
    assert retry._retries == 1
    assert retry._supported_errors == (redis.ConnectionError,)


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def tls_redis(tmp_path):
    if not shutil.which("openssl") or not shutil.which("redis-server"):
        pytest.skip("needs openssl and redis-server")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    port = redisconn.free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"rediss://localhost:{port}/0"
    end = time.time() + 10
    while not redisconn.answers(url + "?ssl_cert_reqs=none"):
        if proc.poll() is not None:
            pytest.skip(f"this redis-server has no TLS: {proc.stdout.read().decode()[-300:]}")
        if time.time() > end:
            proc.kill()
            raise RuntimeError("TLS redis-server did not start")
        time.sleep(0.05)
    yield url, cert
    proc.terminate()
    proc.wait(10)


def test_rediss_verifies_the_certificate_by_default(tls_redis, make_settings):
    url, _ = tls_redis
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redisconn.client(url, True).ping()
    settings = make_settings(redis_url=url)
    assert settings.redis_tls_verify is True
    with pytest.raises(redis.ConnectionError):
        runtime.build(settings).redis.ping()


def test_rediss_opt_out_for_self_signed_certificates(tls_redis, make_settings, webhooks):
    url, _ = tls_redis
    settings = make_settings(redis_url=url, redis_tls_verify=False)
    rt = runtime.build(settings)
    assert rt.redis.ping()
    resp = webhooks.to(settings).shopify("products/update", shopify_product(at=1))
    assert resp.status_code == 200
    assert rt.state.ledger("default")["pending"] == 1

    from workers.celery_app import make_celery

    with make_celery(rt).connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
    verifying = runtime.build(make_settings(redis_url=url))
    with (
        make_celery(verifying).connection_for_write() as conn,
        pytest.raises(Exception, match="certificate verify failed"),
    ):
        conn.ensure_connection(max_retries=0)


def test_rediss_opt_out_reaches_a_separate_broker_and_the_release_check(
    tls_redis, make_settings, redis_url
):
    """A separate `rediss://` BROKER_URL: the dispatcher's queue reads use the opt-out too
    (without it every tick fails and nothing is woken), and so does `check`'s PING."""
    from workers.dispatch import Dispatcher

    url, _ = tls_redis
    rt = runtime.build(make_settings(redis_url=redis_url, broker_url=url, redis_tls_verify=False))
    d = Dispatcher(rt)
    assert d.broker is not rt.redis and d.broker.ping()
    assert d.tick() >= 0  # reads the broker queue's length over TLS
    assert redisconn.answers(url, tls_verify=False)
    assert not redisconn.answers(url)


def test_rediss_with_a_trusted_certificate_connects(tls_redis):
    """Verification on, the CA trusted (SSL_CERT_FILE, as the system store would): works,
    so verifying by default costs nothing to a provider with a real certificate; a
    certificate for another host name is still refused."""
    url, cert = tls_redis
    by_ip = url.replace("localhost", "127.0.0.1")  # the certificate names localhost only
    code = (
        "from app.core import redisconn; import redis, sys\n"
        f"assert redisconn.client({url!r}, True).ping()\n"
        "try:\n"
        f"    redisconn.client({by_ip!r}, True).ping()\n"
        "except redis.ConnectionError as e:\n"
        "    sys.exit(0 if 'match' in str(e) or 'mismatch' in str(e) else 3)\n"
        "sys.exit(4)  # a certificate for another host was accepted\n"
    )
    env = dict(os.environ, SSL_CERT_FILE=str(cert), PERSONYZE_API_KEY=SANDBOX_KEY)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr[-1000:]
