"""What the benchmarks share: a Redis of their own, the service's processes, signed webhooks.

Benchmarks print figures and never pass or fail. They run the service as the Procfile does,
configured by environment variables as the README documents; each process they start leads
its own process group and is killed at exit, however the run ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import requests

from app.cli import shopify_headers
from app.core.redisconn import answers, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-shopify-secret"
SHOP = "bench-shop.myshopify.com"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

_children: list[subprocess.Popen[bytes]] = []
_finally: list[Callable[[], object]] = []


def _stop_everything() -> None:
    while _children:
        stop(_children.pop(), grace=5)
    while _finally:
        with contextlib.suppress(Exception):
            _finally.pop()()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the finally blocks, then atexit


def install_cleanup() -> None:
    """Stop every child and delete this run's keys at exit, also after SIGTERM or SIGHUP."""
    atexit.register(_stop_everything)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)


def spawn(
    cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own session (its whole process tree can be killed at once)."""
    with open(log or os.devnull, "wb") as out:  # the child holds its own copy
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL whatever is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


_redis: list[str] = []


def redis_url() -> str:
    """REDIS_URL when set, else a redis-server this run starts on a free port: a benchmark
    never writes to a Redis nobody pointed it at, and server-wide counters are its own."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if not _redis:
        port = free_port()
        workdir = tempfile.mkdtemp(prefix="bench-redis-")
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        proc = spawn([*cmd, "--appendonly", "no", "--dir", workdir])
        url = f"redis://127.0.0.1:{port}/0"
        end = time.monotonic() + 10
        while not answers(url):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        _redis.append(url)
    return _redis[0]


def new_prefix(tag: str) -> str:
    """A KEY_PREFIX of this run, `tag` and 6 random hex digits; its keys and its Celery queue
    `<prefix>-sync` are deleted at exit (they matter where REDIS_URL names a shared Redis)."""
    prefix = f"{tag}{uuid.uuid4().hex[:6]}"
    url = redis_url()
    _finally.append(lambda: delete_keys(url, prefix))
    return prefix


def delete_keys(url: str, prefix: str) -> int:
    r = redis.Redis.from_url(url)
    n = 0
    for pattern in (f"{prefix}*", f"_kombu.binding.{prefix}*"):
        keys = list(r.scan_iter(pattern, count=2000))
        for i in range(0, len(keys), 1000):
            n += r.unlink(*keys[i : i + 1000])
    r.close()
    return n


def service_env(
    url: str, prefix: str, personyze_url: str, api_key: str, **extra: Any
) -> dict[str, str]:
    """The environment of one Shopify store as the README's configuration table names it;
    `extra` adds settings by their lower-case names (e.g. personyze_rate_limit=19)."""
    drop = ("SHOPIFY_", "PERSONYZE_", "WOOCOMMERCE_", "BIGCOMMERCE_", "STANDARD_", "SENTRY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "STORES_FILE"}
    env.update(
        REDIS_URL=url,
        KEY_PREFIX=prefix,
        SYNC_QUEUE=f"{prefix}-sync",
        SHOPIFY_WEBHOOK_SECRET=SECRET,
        SHOPIFY_SHOP_DOMAIN=SHOP,
        PERSONYZE_API_KEY=api_key,
        PERSONYZE_BASE_URL=personyze_url,
        LOG_LEVEL="WARNING",
    )
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


def gunicorn_settings() -> str:
    """The worker class, workers and threads deploy/gunicorn.conf.py gives the children (they
    inherit WEB_WORKER_CLASS, WEB_CONCURRENCY and WEB_THREADS from this environment)."""
    conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    cls = conf["worker_class"]
    if cls == "sync" and conf["threads"] > 1:
        cls = "gthread"  # as gunicorn itself switches
    return f"{cls} x {conf['workers']} workers x {conf['threads']} threads"


def start_web(
    env: dict[str, str], app: str = "app:create_app()", log: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn with deploy/gunicorn.conf.py, as the Procfile's web line; returns (proc, url)
    once /healthz answers."""
    port = free_port()
    cmd = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    proc = spawn([*cmd, app], env, log)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 30
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"gunicorn {app} did not start (log: {log})")
        time.sleep(0.1)


# -- webhooks ----------------------------------------------------------------------------------

_TEXT = """soft organic cotton tee classic fit breathable fabric everyday wear premium
stitching durable lightweight travel ready machine washable recycled limited edition collar"""
_WORDS = _TEXT.split()
_COLORS = ("Black", "White", "Navy", "Olive", "Sand", "Red", "Grey", "Teal")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")


def product(
    pid: int, rng: random.Random, at: float = 0, title: str | None = None, price: str | None = None
) -> dict[str, Any]:
    """A Shopify REST product as a real store sends it: 2-6 variants, 1-4 images, options,
    tags and a few paragraphs of body_html; 1-5 KB of JSON. `at` is seconds after T0."""
    base = rng.randint(900, 19900)
    variants = [
        {
            "id": pid * 100 + i,
            "product_id": pid,
            "title": f"{_COLORS[i]} / {_SIZES[i % len(_SIZES)]}",
            "sku": f"SKU-{pid}-{i}",
            "price": price or f"{(base + 100 * (i % 3)) / 100:.2f}",
            "compare_at_price": f"{(base + 1500) / 100:.2f}" if i % 4 == 0 else None,
            "position": i + 1,
            "inventory_policy": "deny",
            "inventory_management": "shopify",
            "option1": _COLORS[i],
            "option2": _SIZES[i % len(_SIZES)],
            "barcode": f"{rng.randrange(10**12):012d}",
            "grams": 200,
            "inventory_quantity": rng.randint(0, 40),
            "requires_shipping": True,
        }
        for i in range(rng.randint(2, 6))
    ]
    images = [
        {
            "id": pid * 10 + j,
            "product_id": pid,
            "position": j + 1,
            "src": f"https://cdn.shopify.com/s/files/1/0000/0001/products/{pid}_{j}.jpg",
            "width": 2048,
            "height": 2048,
        }
        for j in range(rng.randint(1, 4))
    ]
    paragraphs = "".join(
        f"<p>{' '.join(rng.choice(_WORDS) for _ in range(rng.randint(8, 40)))}</p>"
        for _ in range(rng.randint(1, 4))
    )
    return {
        "id": pid,
        "title": title or f"Product {pid}",
        "body_html": f"<h2>Details</h2>{paragraphs}<ul><li>100% cotton</li></ul>",
        "vendor": "Acme Apparel",
        "product_type": "T-Shirts",
        "handle": f"product-{pid}",
        "status": "active",
        "tags": "summer, cotton, bestseller",
        "updated_at": (T0 + timedelta(seconds=at)).isoformat(),
        "options": [{"name": "Color", "position": 1}, {"name": "Size", "position": 2}],
        "variants": variants,
        "images": images,
        "image": images[0],
    }


def signed(body: bytes) -> tuple[bytes, dict[str, str]]:
    """A products/update delivery as Shopify signs it (the CLI's `send-sample` signer)."""
    return body, shopify_headers(body, SECRET, "products/update", SHOP)


# -- figures -----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))]


def summary_ms(seconds: list[float]) -> str:
    if not seconds:
        return "n=0"
    ms = [v * 1000 for v in seconds]
    return (
        f"n={len(ms)} p50={pct(ms, 50):.1f} p90={pct(ms, 90):.1f} p99={pct(ms, 99):.1f} "
        f"max={max(ms):.1f} ms"
    )


def commit() -> str:
    """The commit measured, marked when the working tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, text=True, capture_output=True, timeout=10
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        " (modified)" if git("status", "--porcelain") else ""
    )
