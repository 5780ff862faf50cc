"""Configuration validation, the CLI, the admin endpoints, and secrets staying secret."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from app import create_app
from app.config import ConfigError, load_settings
from tests.constants import SANDBOX_KEY, SHOP
from tests.servers import CLI, ROOT, settings_env
from tests.support import dead_letters, shopify_product


def run_cli(args, env, check=False):
    p = subprocess.run([CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


# -- configuration ------------------------------------------------------------------------


def test_bad_standard_secret_names_the_variable_not_the_value():
    with pytest.raises(ConfigError) as e:
        load_settings(standard_webhook_secret="plain-value-123")
    assert "STANDARD_WEBHOOK_SECRET" in str(e.value)
    assert "plain-value-123" not in str(e.value)


def test_plain_http_personyze_url_refused_except_loopback():
    with pytest.raises(ConfigError) as e:
        load_settings(personyze_base_url="http://app.personyze.com/rest")
    assert "PERSONYZE_BASE_URL" in str(e.value)
    assert load_settings(personyze_base_url="http://127.0.0.1:9/rest").personyze_base_url
    assert load_settings(personyze_base_url="http://[::1]:9/rest").personyze_base_url


def test_problems_name_missing_variables():
    s = load_settings()
    problems = " ".join(s.problems(need_api_key=True))
    assert "PERSONYZE_API_KEY" in problems and "SHOPIFY_WEBHOOK_SECRET" in problems


def test_stores_file_many_stores_and_env_references(tmp_path, monkeypatch, make_settings, webhooks):
    monkeypatch.setenv("SHOP_B_SECRET", "secret-b")
    f = tmp_path / "stores.yaml"
    f.write_text(f"""
stores:
  - id: a
    shopify_shop_domain: {SHOP}
    shopify_webhook_secrets: [secret-a]
    personyze: {{api_key: {SANDBOX_KEY}, rate_limit: 3}}
  - id: b
    shopify_shop_domain: b.myshopify.com
    shopify_webhook_secrets: ["${{SHOP_B_SECRET}}"]
    personyze: {{api_key: {"B" * 40}}}
    mapping: {{rename: {{brand: manufacturer}}, drop: [inventory], add: {{custom_1: tags}}}}
""")
    settings = make_settings(stores_file=str(f))
    assert set(settings.stores) == {"a", "b"}
    assert settings.stores["a"].personyze.rate_limit == 3
    assert settings.stores["a"].personyze.id != settings.stores["b"].personyze.id
    app = create_app(settings)
    stores = webhooks.to(app, shopify_secret="secret-b")
    assert (
        stores.shopify("products/update", shopify_product(), shop="b.myshopify.com").status_code
        == 200
    )
    assert stores.shopify("products/update", shopify_product(), shop=SHOP).status_code == 401
    state = app.extensions["personyze_sync"].state
    assert state.ledger("b")["received"] == 1 and state.ledger("a")["received"] == 0


@pytest.mark.parametrize(
    "content,needle",
    [
        ("stores: []", "stores"),
        ("stores:\n  - id: a\n  - id: a", "duplicate"),
        ("stores:\n  - id: a\n    shopify_webhook_secrets: ['${NOPE_NOT_SET}']", "NOPE_NOT_SET"),
        ("stores:\n  - id: 'bad id!'", "ID"),
    ],
)
def test_stores_file_errors_are_clear(tmp_path, content, needle):
    f = tmp_path / "stores.yaml"
    f.write_text(content)
    with pytest.raises(ConfigError) as e:
        load_settings(stores_file=str(f))
    assert needle in str(e.value)


# -- CLI ----------------------------------------------------------------------------------


def test_check_passes_against_the_sandbox_and_never_prints_the_key(sync_settings, sandbox):
    env = settings_env(sync_settings)
    p = run_cli(["check"], env)
    assert p.returncode == 0, p.stderr
    assert "ok:" in p.stdout
    env["PERSONYZE_API_KEY"] = "WRONGKEY" + "9" * 32
    p = run_cli(["check"], env)
    assert p.returncode == 1 and "PersonyzeAuthError" in p.stderr
    assert "WRONGKEY" not in p.stdout + p.stderr


def test_check_reports_missing_configuration(redis_url):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHOPIFY", "PERSONYZE", "STANDARD", "WOOCOMMERCE"))
    }
    env["REDIS_URL"] = redis_url
    p = run_cli(["check", "--offline"], env)
    assert p.returncode == 1
    assert "PERSONYZE_API_KEY is not set" in p.stderr
    p = run_cli(["check", "--offline"], dict(env, PERSONYZE_API_KEY="short"))
    assert "40 characters" in p.stderr and "short" not in p.stderr.replace("40 characters", "")


def test_status_and_dlq_commands(sync_settings, sandbox, rt):
    dead_letters(rt, sandbox, "1", "2")
    env = settings_env(sync_settings)
    status = json.loads(run_cli(["status", "--json"], env, check=True).stdout)
    assert status["default"]["dlq"] == 2 and status["default"]["balance"] == 0
    listed = [
        json.loads(line)
        for line in run_cli(["dlq", "list", "--json"], env, check=True).stdout.splitlines()
    ]
    assert {e["product"] for e in listed} == {"1", "2"}
    assert "PersonyzeBadRequest" in listed[0]["last_error"]
    assert "replayed 1" in run_cli(["dlq", "replay", "1"], env, check=True).stdout
    assert "purged 1" in run_cli(["dlq", "purge"], env, check=True).stdout
    from workers.sync import Syncer

    assert Syncer(rt.settings, rt.state).run("default", "1") == "written"
    led = rt.state.ledger("default")
    assert led["written"] == 1 and led["dead"] == 1 and led["pending"] == 0


def test_sandbox_command_serves_the_documented_curl_examples(tmp_path):
    from app.core.redisconn import free_port
    from tests.servers import eventually

    port = free_port()
    proc = subprocess.Popen(
        [CLI, "sandbox", "--port", str(port), "--api-key", SANDBOX_KEY],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://api:{SANDBOX_KEY}@127.0.0.1:{port}/rest"

        def curl(*a):
            return subprocess.run(["curl", "-s", *a], capture_output=True, text=True).stdout

        eventually(lambda: curl(f"{base}/placeholders") == "[]", timeout=10)
        new_id = curl("--data", '{"name": "Fake", "html_id": ".fake"}', f"{base}/placeholders")
        assert new_id.strip().isdigit()
        assert (
            curl(
                "-X",
                "PUT",
                "--data",
                '{"html_id": "#fake"}',
                f"{base}/placeholders/{new_id.strip()}",
            ).strip()
            == "1"
        )
        assert json.loads(curl(f"{base}/placeholders"))[0]["html_id"] == "#fake"
        assert curl("-X", "DELETE", f"{base}/placeholders/{new_id.strip()}").strip() == "1"
    finally:
        proc.terminate()
        proc.wait(10)


# -- admin endpoints ----------------------------------------------------------------------


def test_admin_is_off_without_token_and_guarded_with_it(make_settings):
    assert create_app(make_settings()).test_client().get("/admin/status").status_code == 404
    client = create_app(make_settings(admin_token="t0ken-admin-0123456")).test_client()
    assert client.get("/admin/status").status_code == 401
    assert client.get("/admin/status", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/admin/status", headers={"Authorization": "Bearer t0ken-admin-0123456"})
    assert ok.status_code == 200 and ok.json["default"]["balance"] == 0


def test_admin_dlq_replay_and_purge(make_settings, webhooks, sandbox):
    from app import runtime
    from workers.sync import Syncer

    settings = make_settings(admin_token="tok-0123456789abcdef", personyze_base_url=sandbox.url)
    client = create_app(settings).test_client()
    auth = {"Authorization": "Bearer tok-0123456789abcdef"}
    webhooks.to(client).shopify("products/update", shopify_product(pid=5))
    sandbox.faults.update(error_400_rate=1.0)
    rt = runtime.build(settings)
    assert Syncer(rt.settings, rt.state).run("default", "5") == "dead"
    assert list(client.get("/admin/dlq/default", headers=auth).json) == ["5"]
    assert client.post("/admin/dlq/default/5/replay", headers=auth).json == {
        "replayed": ["5"],
        "superseded": [],
    }
    assert client.get("/admin/dlq/default", headers=auth).json == {}
    assert client.get("/admin/dlq/nostore", headers=auth).status_code == 404


# -- secrets ------------------------------------------------------------------------------


def test_log_scrubbing_removes_credentials():
    from app.logging_setup import scrub

    event = {
        "event": "boom",
        "url": f"https://api:{SANDBOX_KEY}@app.personyze.com/rest",
        "headers": {"Authorization": "Basic YXBpOmtleQ==", "X-Shopify-Hmac-Sha256": "abc"},
        "note": f"key {'A1' * 20} and whsec_abcdef== inside",
        "api_key": "x",
    }
    out = json.dumps(scrub(event))
    for secret in (SANDBOX_KEY, "YXBpOmtleQ==", "A1" * 20, "whsec_abcdef", '"abc"'):
        assert secret not in out


def test_sentry_events_carry_no_body_signature_or_key(make_settings):
    import sentry_sdk
    from sentry_sdk.transport import Transport

    from app.observability import before_send

    captured = []

    class Capture(Transport):
        def capture_envelope(self, envelope):
            for item in envelope.items:
                if item.payload.json:
                    captured.append(item.payload.json)

    app = create_app(make_settings())

    @app.get("/boom")
    def boom():
        raise RuntimeError(f"failed talking to https://api:{SANDBOX_KEY}@app.personyze.com")

    # the request body size option is opened wide on purpose: before_send must still drop it
    sentry_sdk.init(
        dsn="https://public@sentry.example.invalid/1",
        transport=Capture,
        before_send=before_send,
        max_request_body_size="always",
    )
    try:
        client = app.test_client()
        client.get(
            "/boom",
            headers={
                "Authorization": f"Basic {SANDBOX_KEY}",
                "X-Shopify-Hmac-Sha256": "c2lnbmF0dXJl",
            },
        )
        sentry_sdk.flush()
    finally:
        sentry_sdk.init(dsn=None)
    text = json.dumps(captured)
    assert captured, "the error reached Sentry"
    assert SANDBOX_KEY not in text and "c2lnbmF0dXJl" not in text


def test_empty_admin_token_keeps_admin_off_and_short_one_is_refused(make_settings):
    client = create_app(make_settings(admin_token="")).test_client()
    assert client.get("/admin/status").status_code == 404
    with pytest.raises(ConfigError) as e:
        make_settings(admin_token="short")
    assert "ADMIN_TOKEN" in str(e.value) and "short" not in str(e.value).replace("short", "", 0)


def test_tracebacks_and_stdlib_logs_are_scrubbed():
    import io
    import logging

    import structlog

    from app.logging_setup import _ScrubFilter, configure_logging

    hex_key = "AB12" * 10  # real Personyze keys are 40 hex digits
    configure_logging("INFO")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(_ScrubFilter())
    stdlib = logging.getLogger("urllib3.scrubtest")
    stdlib.addHandler(handler)
    try:
        raise RuntimeError(f"https://api:{SANDBOX_KEY}@app.personyze.com failed, key {hex_key}")
    except RuntimeError as e:
        stdlib.error("stdlib boom %s", hex_key, exc_info=True)
        # the structlog chain as configured, run on an event carrying the exception
        event = {"event": "boom", "exc_info": (type(e), e, e.__traceback__)}
        for processor in structlog.get_config()["processors"]:
            event = processor(None, "error", event)
    finally:
        stdlib.removeHandler(handler)
    text = out.getvalue() + str(event)
    assert "stdlib boom" in text and "Traceback" in text and "boom" in str(event)
    assert SANDBOX_KEY not in text and hex_key not in text
