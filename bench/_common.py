"""Shared pieces of the benchmarks: realistic payloads, Redis hygiene, process cleanup.

Benchmarks print figures; they are not pass/fail tests. Every process they start runs in its
own session (process group) and is killed as a group when the benchmark ends, however it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.conftest import SANDBOX_KEY, SHOP, SHOPIFY_SECRET  # noqa: E402
from tests.support import shopify_product, shopify_request  # noqa: E402

BENCH_DB = int(os.environ.get("PERSONYZE_SYNC_BENCH_DB", "13"))
__all__ = ["SANDBOX_KEY", "SHOP", "SHOPIFY_SECRET", "shopify_request"]


def tree_state() -> str:
    """The commit measured, and whether app code differs from it (others edit concurrently)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "workers", "deploy", "sandbox"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.split("\n")
        n = sum(1 for line in dirty if line.strip())
        return f"{head}" + (f" + {n} uncommitted app files" if n else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


_own_redis: list[str] = []


def redis_url() -> str:
    """REDIS_URL when set; else a redis-server this run starts on a free port and stops at
    exit, so a benchmark never writes to a Redis it was not pointed at (a developer's 6379
    may hold real data), and server-wide counters (INFO memory, commandstats) are its own."""
    base = os.environ.get("REDIS_URL")
    if not base:
        if not _own_redis:
            import tempfile

            from tests.conftest import OwnRedis

            server = OwnRedis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
            at_exit(server.stop)
            _own_redis.append(server.url)
        base = _own_redis[0]
    return base.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def new_prefix(tag: str) -> str:
    """A KEY_PREFIX unique to this run; the Celery queue is named `<prefix>-sync` so one
    SCAN for `<prefix>*` finds every key the run made (state keys and the queue). Its keys
    are deleted at exit whatever happens (after the processes that write them are killed)."""
    prefix = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    url = redis_url()
    at_exit(lambda: cleanup_prefix(url, prefix))
    return prefix


def cleanup_prefix(url: str, prefix: str) -> int:
    """Delete every key of a run: `<prefix>:*`, its Celery queue and kombu bindings."""
    r = redis.Redis.from_url(url)
    n = 0
    for pattern in (f"{prefix}*", f"_kombu.binding.{prefix}*", f"_kombu.binding_*.{prefix}*"):
        batch: list[bytes] = []
        for key in r.scan_iter(pattern, count=2000):
            batch.append(key)
            if len(batch) >= 1000:
                n += r.unlink(*batch)
                batch = []
        if batch:
            n += r.unlink(*batch)
    r.close()
    return n


# kombu's keys shared by every Celery app of a database (pidbox bindings): deleted at the end
# only when this run created them (absent at its start)
KOMBU_SHARED = (
    "_kombu.binding_deadlines",
    "_kombu.binding.celery.pidbox",
    "_kombu.binding_permanent.celery.pidbox",
    "_kombu.binding.celeryev",
    "unacked",
    "unacked_index",
    "unacked_mutex",
)


def shared_absent(url: str) -> list[str]:
    r = redis.Redis.from_url(url)
    absent = [k for k in KOMBU_SHARED if not r.exists(k)]
    r.close()
    return absent


def cleanup_shared(url: str, absent: list[str]) -> int:
    r = redis.Redis.from_url(url)
    n = r.delete(*absent) if absent else 0
    r.close()
    return n


# -- payloads ----------------------------------------------------------------------------------

_TEXT = (
    "soft organic cotton tee classic fit breathable fabric everyday wear premium "
    "stitching durable lightweight travel ready machine washable recycled packaging "
    "limited edition colourway ethically made in portugal ribbed collar"
)
_WORDS = _TEXT.split()
_COLORS = ("Black", "White", "Navy", "Olive", "Sand", "Red", "Grey", "Teal")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")


def realistic_product(
    pid: int,
    rng: random.Random,
    at: float = 0.0,
    title: str | None = None,
    price: str | None = None,
) -> dict[str, Any]:
    """A Shopify REST product as a real store sends it: 2-6 variants, 1-4 images, options,
    tags and a body_html of a few paragraphs; 1-5 KB of JSON."""
    n_var = rng.randint(2, 6)
    base = rng.randint(900, 19900)
    variants = []
    for i in range(n_var):
        color, size = _COLORS[i % len(_COLORS)], _SIZES[(i // len(_COLORS) + i) % len(_SIZES)]
        p = price or f"{(base + 100 * (i % 3)) / 100:.2f}"
        variants.append(
            {
                "id": pid * 100 + i,
                "product_id": pid,
                "title": f"{color} / {size}",
                "sku": f"SKU-{pid}-{i}",
                "price": p,
                "compare_at_price": f"{(base + 1500) / 100:.2f}" if i % 4 == 0 else None,
                "position": i + 1,
                "inventory_policy": "deny",
                "fulfillment_service": "manual",
                "inventory_management": "shopify",
                "option1": color,
                "option2": size,
                "option3": None,
                "taxable": True,
                "barcode": f"{rng.randrange(10**12):012d}",
                "grams": 200,
                "weight": 0.2,
                "weight_unit": "kg",
                "inventory_quantity": rng.randint(0, 40),
                "requires_shipping": True,
            }
        )
    images = [
        {
            "id": pid * 10 + j,
            "product_id": pid,
            "position": j + 1,
            "src": f"https://cdn.shopify.com/s/files/1/0000/0001/products/{pid}_{j}.jpg",
            "width": 2048,
            "height": 2048,
            "alt": None,
            "variant_ids": [],
        }
        for j in range(rng.randint(1, 4))
    ]
    paras = "".join(
        f"<p>{' '.join(rng.choice(_WORDS) for _ in range(rng.randint(8, 40)))}</p>"
        for _ in range(rng.randint(1, 4))
    )
    return shopify_product(
        pid,
        at=at,
        price=variants[0]["price"],
        title=title or f"Product {pid}",
        body_html=f"<h2>Details</h2>{paras}<ul><li>100% cotton</li><li>Care: 30C</li></ul>",
        handle=f"product-{pid}",
        vendor="Acme Apparel",
        product_type="T-Shirts",
        tags="summer, cotton, bestseller",
        published_scope="web",
        options=[{"name": "Color", "position": 1}, {"name": "Size", "position": 2}],
        variants=variants,
        images=images,
        image=images[0],
    )


# -- statistics ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary_ms(values: list[float]) -> str:
    if not values:
        return "n=0"
    ms = [v * 1000 for v in values]
    return (
        f"n={len(ms)} p50={pct(ms, 50):.1f} p90={pct(ms, 90):.1f} p99={pct(ms, 99):.1f} "
        f"max={max(ms):.1f} mean={statistics.fmean(ms):.1f} ms"
    )


# -- processes -----------------------------------------------------------------------------------

_groups: list[subprocess.Popen] = []
_at_exit: list = []


def at_exit(fn) -> None:
    """Run `fn` at exit, after every child process group is killed."""
    _at_exit.append(fn)


def track(proc: subprocess.Popen) -> subprocess.Popen:
    """Remember a child started with start_new_session=True; its group dies with us."""
    _groups.append(proc)
    return proc


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL whatever is left after `grace`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _own_session_children() -> list[int]:
    """Direct children of this process that lead their own process group (started with
    start_new_session), including any not tracked yet (e.g. interrupted while starting)."""
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == me and int(fields[2]) == int(d):
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill_all() -> None:
    while _groups:
        p = _groups.pop()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.wait(5)
    for pid in _own_session_children():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
    while _at_exit:
        fn = _at_exit.pop()
        with contextlib.suppress(Exception):
            fn()


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks, then atexit


def install_cleanup() -> None:
    """Kill every process group we started at exit, also after SIGTERM/SIGHUP/Ctrl-C."""
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in background


def drain(stream, keep: int = 50) -> deque:
    """Read a child's pipe in a thread (an unread pipe blocks the child once it is full);
    keep the last lines for error messages."""
    tail: deque = deque(maxlen=keep)

    def run() -> None:
        with contextlib.suppress(Exception):
            for line in iter(stream.readline, b""):
                tail.append(line.decode(errors="replace").rstrip())

    threading.Thread(target=run, daemon=True).start()
    return tail


def gunicorn_settings() -> tuple[str, int, int]:
    """(worker class, workers, threads) as deploy/gunicorn.conf.py sets them in this
    environment (WEB_WORKER_CLASS, WEB_CONCURRENCY, WEB_THREADS; sync, 2 x cores + 1, 1)."""
    import runpy

    conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    return str(conf["worker_class"]), int(conf["workers"]), int(conf["threads"])


def effective_worker_class(worker_class: str, threads: int) -> str:
    """The class gunicorn runs: it switches sync to gthread when threads > 1."""
    is_sync = worker_class == "sync" or worker_class.endswith("SyncWorker")
    return "gthread" if is_sync and threads > 1 else worker_class


def start_gunicorn(env: dict[str, str], app: str, workers: int, threads: int, worker_class: str):
    """tests.servers.Gunicorn (deploy/gunicorn.conf.py, as the Procfile) with these exact
    settings, tracked for cleanup and with its stderr drained. `g.worker_class` is the class
    gunicorn reported it runs ("Using worker: ..."; None if it did not say)."""
    from tests.servers import Gunicorn

    g = Gunicorn(
        dict(env, WEB_WORKER_CLASS=worker_class), app=app, workers=workers, threads=threads
    )
    track(g.proc)
    g.stderr_tail = drain(g.proc.stderr)
    g.worker_class = None
    end = time.monotonic() + 3  # logged before /healthz answered; the drain thread reads it
    while g.worker_class is None and time.monotonic() < end:
        for line in list(g.stderr_tail):
            if "Using worker: " in line:
                g.worker_class = line.split("Using worker: ", 1)[1].strip()
        time.sleep(0.02)
    return g
