"""`make run`: the whole service in one terminal on embedded defaults.

Starts what is missing (an embedded Redis when REDIS_URL is unset, the Personyze sandbox when
PERSONYZE_API_KEY is unset), then the web app (gunicorn, as in the Procfile), a worker and the
scheduler, each in its own process group, and stops them all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.core import redisconn
from sandbox import DEFAULT_API_KEY

# The webhook secret and shop `make run` configures when none is set; `send-sample` signs with
# them by default, so the two work together out of the box.
DEV_SHOPIFY_SECRET = "dev-shopify-secret"
DEV_SHOP_DOMAIN = "dev-shop.myshopify.com"
GUNICORN_CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, start_new_session=True)


def _wait_http(url: str, timeout: float = 20.0) -> bool:
    import requests

    end = time.time() + timeout
    while time.time() < end:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(port: int) -> int:
    # Ctrl-C and a plain `kill` both stop everything (a shell's background job would
    # otherwise start us with SIGINT ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    bindir = Path(sys.executable).parent
    procs: list[subprocess.Popen[bytes]] = []
    embedded = None
    try:
        if not env.get("REDIS_URL"):
            embedded = redisconn.EmbeddedRedis(Path("var"))
            env["REDIS_URL"] = embedded.url
        if not env.get("PERSONYZE_API_KEY"):
            sb_port = redisconn.free_port()
            procs.append(
                _spawn(
                    [
                        str(bindir / "personyze-sync"),
                        "sandbox",
                        "--port",
                        str(sb_port),
                        "--api-key",
                        DEFAULT_API_KEY,
                    ],
                    env,
                )
            )
            env["PERSONYZE_API_KEY"] = DEFAULT_API_KEY
            env["PERSONYZE_BASE_URL"] = f"http://127.0.0.1:{sb_port}/rest"
            _wait_http(f"http://127.0.0.1:{sb_port}/rest/account")
        if not (env.get("SHOPIFY_WEBHOOK_SECRET") or env.get("STORES_FILE")):
            env["SHOPIFY_WEBHOOK_SECRET"] = DEV_SHOPIFY_SECRET
            env.setdefault("SHOPIFY_SHOP_DOMAIN", DEV_SHOP_DOMAIN)
        env.setdefault("LOG_LEVEL", "INFO")
        procs.append(
            _spawn(
                [
                    str(bindir / "gunicorn"),
                    "-c",
                    str(GUNICORN_CONF),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "app:create_app()",
                ],
                env,
            )
        )
        procs.append(
            _spawn(
                [
                    str(bindir / "celery"),
                    "-A",
                    "workers.celery_app:celery",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                ],
                env,
            )
        )
        procs.append(_spawn([str(bindir / "personyze-sync"), "scheduler"], env))
        base = f"http://127.0.0.1:{port}"
        if not _wait_http(f"{base}/healthz"):
            print("the web app did not start; see the log above", file=sys.stderr)
            return 1
        secret = env.get("SHOPIFY_WEBHOOK_SECRET", "")
        shown = secret if secret == DEV_SHOPIFY_SECRET else "<your secret>"
        print(
            f"""
personyze-sync is running (Ctrl-C stops everything)
  web        {base}   (/healthz /readyz /metrics)
  webhooks   {base}/webhooks/shopify
  redis      {redisconn.describe(env["REDIS_URL"])}{"  (embedded)" if embedded else ""}
  personyze  {env.get("PERSONYZE_BASE_URL", "https://app.personyze.com/rest")}

Send a signed sample Shopify webhook from another terminal:
  SHOPIFY_WEBHOOK_SECRET={shown} \\
    .venv/bin/personyze-sync send-sample --url {base}
Then see it land:
  REDIS_URL={env["REDIS_URL"] if embedded else "$REDIS_URL"} .venv/bin/personyze-sync status
""",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if embedded:
            embedded.stop()
