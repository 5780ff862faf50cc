"""End to end with the sandbox: webhook -> Redis -> scheduler -> Celery -> Personyze sandbox.

Everything runs as deployed: the app under gunicorn (deploy/gunicorn.conf.py with its defaults
or WEB_WORKER_CLASS, WEB_CONCURRENCY, WEB_THREADS from the environment), `celery worker`
processes, `personyze-sync scheduler`, and the sandbox (in this process, so each write is seen
with the product it carries: the sandbox's request_log entry is recorded together with the
`internal_id` of the row written).

  (i)   unthrottled latency, webhook 200 -> sandbox write, at a modest arrival rate;
  (ii)  saturated: sandbox rate limit R, PERSONYZE_RATE_LIMIT = 0.95 R, a backlog, 4 workers;
  (iii) bursty trace: bursts of updates per product, PRODUCT_COOLDOWN_SECONDS coalescing;
  (iv)  slow Personyze: the workers, not the limit, are the bottleneck (sandbox latency
        250 ms, limit 100/s, one worker of concurrency 4, 1500 new products at once): the
        Celery queue's peak, what it still holds when every product is synced, messages
        published per write (LPUSH calls in INFO commandstats), and
        the sync time.

    .venv/bin/python bench/sync.py [--quick] [--only i,ii,iii,iv]

Targets (issue): p50 <= 50 ms and p99 <= 500 ms unthrottled; >= 0.95 of the limit saturated;
(iv) queue peak <= 100, <= 20 messages left, <= 1.1 messages per write (issue 9).
Redis: REDIS_URL if set, else a redis-server of its own; every key of the run is deleted.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import requests

from bench._common import (
    ROOT,
    SANDBOX_KEY,
    SHOP,
    SHOPIFY_SECRET,
    at_exit,
    cleanup_prefix,
    cleanup_shared,
    effective_worker_class,
    gunicorn_settings,
    install_cleanup,
    kill_group,
    new_prefix,
    pct,
    realistic_product,
    redis_url,
    shared_absent,
    shopify_request,
    start_gunicorn,
    summary_ms,
    track,
    tree_state,
)

STORE = "default"
# deploy/gunicorn.conf.py in this environment: (worker class, workers, threads)
WEB = gunicorn_settings()


class Stack:
    """Sandbox + web + (later) workers and scheduler for one scenario, with its own KEY_PREFIX
    and SYNC_QUEUE; `close()` stops every process (as a group) and deletes the keys."""

    def __init__(self, tag: str, faults: dict, **overrides) -> None:
        from app.config import load_settings
        from app.runtime import build
        from sandbox import Sandbox
        from sandbox.server import LogEntry
        from tests.servers import settings_env

        self.prefix = new_prefix(tag)
        self.url = redis_url()
        self.procs: list[subprocess.Popen] = []
        self.web = None
        self.tmp = tmp = Path(tempfile.mkdtemp(prefix=f"bench-sync-{tag}-"))
        at_exit(lambda: shutil.rmtree(tmp, ignore_errors=True))
        self.sandbox = sb = Sandbox(api_key=SANDBOX_KEY, port=0, **faults).start()

        # Each write as the sandbox logs it, with the product id it wrote (same handler thread).
        self.writes: list[tuple[float, str | None, int]] = []
        tls = threading.local()
        insert = sb.store.insert

        def insert_hook(obj, data):
            tls.iid = data.get("internal_id")
            return insert(obj, data)

        def record_hook(method, path, status):
            with sb._log_lock:
                entry = LogEntry(time.time(), method, path, status)
                sb.request_log.append(entry)
            if method == "POST":
                self.writes.append((entry.time, getattr(tls, "iid", None), status))
                tls.iid = None

        sb.store.insert = insert_hook
        sb.record = record_hook

        self.settings = load_settings(
            redis_url=self.url,
            key_prefix=self.prefix,
            sync_queue=f"{self.prefix}-sync",
            shopify_webhook_secret=SHOPIFY_SECRET,
            shopify_shop_domain=SHOP,
            personyze_api_key=SANDBOX_KEY,
            personyze_base_url=sb.url,
            **overrides,
        )
        self.rt = build(self.settings)
        self.env = settings_env(self.settings)
        worker_class, workers, threads = WEB
        self.web = start_gunicorn(self.env, "app:create_app()", workers, threads, worker_class)
        if self.web.worker_class != effective_worker_class(worker_class, threads):
            print(f"    (warning: gunicorn reported worker class {self.web.worker_class})")
        self.session = requests.Session()

    def start_sync(self, concurrency: int = 4) -> None:
        """`celery worker` (prefork, as the Procfile) and `personyze-sync scheduler`."""
        bin_dir = Path(sys.executable).parent
        for name, cmd in (
            (
                "worker",
                [
                    str(bin_dir / "celery"),
                    "-A",
                    "workers.celery_app:celery",
                    "worker",
                    "--concurrency",
                    str(concurrency),
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
            ),
            ("scheduler", [str(bin_dir / "personyze-sync"), "scheduler"]),
        ):
            log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
            self.procs.append(
                track(
                    subprocess.Popen(
                        cmd,
                        cwd=ROOT,
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            )
            log.close()

    def post(self, payload: dict, session: requests.Session | None = None) -> float:
        """Send one signed delivery; return the time its 200 came back."""
        body, headers = shopify_request(orjson.dumps(payload))
        resp = (session or self.session).post(
            self.web.url + "/webhooks/shopify", data=body, headers=headers, timeout=10
        )
        t = time.time()
        if resp.status_code != 200:
            raise RuntimeError(f"webhook answered {resp.status_code}: {resp.text[:200]}")
        return t

    def post_all(self, payloads: list[dict], connections: int = 8) -> None:
        """Send every delivery over `connections` keep-alive sessions at once."""
        sessions = threading.local()

        def send(p: dict) -> float:
            if not hasattr(sessions, "s"):
                sessions.s = requests.Session()
            return self.post(p, sessions.s)

        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(send, payloads))

    def settled(self) -> bool:
        led = self.rt.state.ledger(STORE)
        return led["pending"] == 0 and self.rt.state.due_count(STORE) == 0

    def wait(self, check, timeout: float) -> bool:
        from tests.servers import eventually

        try:
            eventually(check, timeout=timeout, interval=0.05)
            return True
        except AssertionError:
            return False

    def written(self, ok_only: bool = True) -> list[tuple[float, str | None, int]]:
        return [w for w in list(self.writes) if w[2] == 200 or not ok_only]

    def close(self) -> None:
        try:
            for p in self.procs:
                kill_group(p, grace=10)
            if self.web is not None:
                kill_group(self.web.proc)
            self.sandbox.stop()
            self.session.close()
        finally:
            cleanup_prefix(self.url, self.prefix)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self) -> str:
        out = []
        for f in sorted(self.tmp.glob("*.log")):
            out.append(f"--- {f.name}\n" + f.read_text(errors="replace")[-1500:])
        return "\n".join(out)


def warm(stack: Stack, pid: int = 1) -> None:
    """One product through the whole path, so workers are up and pools are connected."""
    rng = random.Random(0)
    stack.post(realistic_product(pid, rng, at=0))
    if not stack.wait(lambda: any(w[1] == str(pid) for w in stack.written()), 60):
        raise RuntimeError("warm-up product never reached the sandbox\n" + stack.log_tail())
    stack.wait(stack.settled, 10)


# -- (i) unthrottled latency -------------------------------------------------------------------


def latency(quick: bool, n: int | None, rate: float) -> None:
    n = n or (50 if quick else 200)
    print(
        f"\n(i) unthrottled: {n} distinct products, Poisson arrivals at {rate:g}/s, "
        f"PERSONYZE_RATE_LIMIT=1000, sandbox without limit, 4 worker processes"
    )
    stack = Stack("lat", {}, personyze_rate_limit=1000)
    try:
        stack.start_sync(4)
        warm(stack)
        rng = random.Random(1)
        accepted: dict[str, float] = {}
        answer: list[float] = []
        t_next = time.time()
        for i in range(n):
            pid = 10_000 + i
            t_next += rng.expovariate(rate)
            delay = t_next - time.time()
            if delay > 0:
                time.sleep(delay)
            t0 = time.time()
            accepted[str(pid)] = stack.post(realistic_product(pid, rng, at=1))
            answer.append(accepted[str(pid)] - t0)
        stack.wait(lambda: len({w[1] for w in stack.written()} & accepted.keys()) == n, 60)
        first: dict[str, float] = {}
        for t, iid, _ in stack.written():
            if iid in accepted and iid not in first:
                first[iid] = t
        lat = [first[p] - accepted[p] for p in accepted if p in first]
        print(f"    webhook answer (client side): {summary_ms(answer)}")
        print(f"    webhook 200 -> sandbox write: {summary_ms(lat)}")
        missing = n - len(lat)
        p50, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
        print(
            f"    targets p50 <= 50 ms: {'met' if p50 <= 50 else 'NOT met'} ({p50:.1f}); "
            f"p99 <= 500 ms: {'met' if p99 <= 500 else 'NOT met'} ({p99:.1f})"
            + (f"; {missing} products never written" if missing else "")
        )
    finally:
        stack.close()


# -- (ii) saturated ----------------------------------------------------------------------------


def saturated(quick: bool, n: int | None, limit: float) -> None:
    n = n or (80 if quick else 300)
    configured = round(limit * 0.95, 3)
    print(
        f"\n(ii) saturated: sandbox rate_limit R={limit:g}/s, "
        f"PERSONYZE_RATE_LIMIT={configured:g} "
        f"(0.95 R), backlog of {n} products, 4 worker processes"
    )
    stack = Stack("sat", {"rate_limit": limit}, personyze_rate_limit=configured)
    try:
        rng = random.Random(2)
        payloads = [realistic_product(20_000 + i, rng, at=1) for i in range(n)]
        stack.post_all(payloads)
        t_start = time.time()
        stack.start_sync(4)
        done = stack.wait(
            lambda: len(stack.written()) >= n and stack.settled(), n / configured * 2 + 30
        )
        ok = sorted(t for t, _, _ in stack.written())
        all_posts = stack.written(ok_only=False)
        n503 = sum(1 for w in all_posts if w[2] == 503)
        other = sum(1 for w in all_posts if w[2] not in (200, 503))
        if len(ok) < 2:
            print("    no writes\n" + stack.log_tail())
            return
        span = ok[-1] - ok[0]
        rate = (len(ok) - 1) / span
        steady = ok[int(limit) :]  # after the first second's worth, as the e2e test does
        srate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else rate
        worst = max(sum(1 for t in ok[i:] if t < s + 1.0) for i, s in enumerate(ok))
        gaps = [b - a for a, b in zip(ok, ok[1:], strict=False)]
        print(
            f"    {len(ok)} writes in {span:.2f}s (first write {ok[0] - t_start:.1f}s after "
            f"workers were started){'' if done else '  [timed out before settling]'}"
        )
        print(
            f"    achieved {rate:.2f} writes/s = {rate / limit:.3f} of R, "
            f"{rate / configured:.3f} of the configured limit "
            f"(steady state after the first {int(limit)}: {srate:.2f}/s = "
            f"{srate / configured:.3f} of the limit)"
        )
        print(
            f"    503s from the sandbox: {n503}; other errors: {other}; most writes in any 1 s "
            f"window: {worst} (R={limit:g}); inter-write gap p50 {pct(gaps, 50) * 1000:.1f} ms "
            f"p99 {pct(gaps, 99) * 1000:.1f} ms max {max(gaps) * 1000:.0f} ms "
            f"(ideal {1000 / configured:.1f})"
        )
        print(
            f"    target >= 0.95 of the limit: "
            f"{'met' if rate / configured >= 0.95 else 'NOT met'} ({rate / configured:.3f})"
        )
    finally:
        stack.close()


# -- (iii) bursty trace ------------------------------------------------------------------------


def bursty(quick: bool, products: int | None) -> None:
    from app.core.state import ledger_balance

    products = products or (20 if quick else 50)
    rng = random.Random(3)
    plan = []
    for i in range(products):
        k = rng.randint(5, 20)
        gaps = [rng.uniform(0.010, 0.100) for _ in range(k - 1)]
        plan.append((30_000 + i, rng.uniform(0, 2.0 if quick else 4.0), gaps))
    webhooks = sum(len(g) + 1 for _, _, g in plan)
    print(
        f"\n(iii) bursty: {products} products x bursts of 5-20 updates 10-100 ms apart "
        f"({webhooks} webhooks), PRODUCT_COOLDOWN_SECONDS=1.0 (default), unthrottled, "
        f"4 worker processes"
    )
    stack = Stack("burst", {}, personyze_rate_limit=1000, product_cooldown_seconds=1.0)
    cooldown = stack.settings.product_cooldown_seconds
    try:
        stack.start_sync(4)
        warm(stack)
        stack.writes.clear()
        last: dict[str, tuple[float, str]] = {}
        span: dict[str, float] = {}
        errors: list[BaseException] = []
        t0 = time.time() + 0.2

        def run(pid: int, start: float, gaps: list[float]) -> None:
            s = requests.Session()
            prng = random.Random(pid)
            try:
                time.sleep(max(0.0, t0 + start - time.time()))
                first = None
                for v in range(len(gaps) + 1):
                    title = f"p{pid} v{v}"
                    t = stack.post(
                        realistic_product(pid, prng, at=10 + v, title=title, price=f"{10 + v}.00"),
                        s,
                    )
                    first = first or t
                    last[str(pid)] = (t, title)
                    if v < len(gaps):
                        time.sleep(gaps[v])
                span[str(pid)] = last[str(pid)][0] - first
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
            finally:
                s.close()

        threads = [threading.Thread(target=run, args=p, daemon=True) for p in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        if errors:
            raise errors[0]
        stack.wait(stack.settled, 60)
        time.sleep(0.2)
        writes = stack.written()
        per: dict[str, list[float]] = {}
        for t, iid, _ in writes:
            per.setdefault(iid, []).append(t)
        rows = {r["internal_id"]: r for r in stack.sandbox.rows("products")}
        wrong = [p for p, (_, title) in last.items() if rows.get(p, {}).get("title") != title]
        counts = [len(per.get(p, [])) for p in last]
        stale = [max(per[p]) - last[p][0] for p in last if p in per]
        # with a cooldown C, a burst lasting D needs about 1 + ceil(D / C) writes
        expected = sum(1 + math.ceil(span[p] / cooldown) for p in last)
        led = stack.rt.state.ledger(STORE)
        print(
            f"    {webhooks} webhooks -> {len(writes)} writes = {len(writes) / webhooks:.3f} "
            f"writes per webhook; per product min {min(counts)} / median "
            f"{statistics.median(counts):g} / max {max(counts)} (burst span mean "
            f"{statistics.fmean(span.values()):.2f}s; 1 + ceil(span / cooldown) would be "
            f"{expected} writes = {expected / webhooks:.3f} per webhook)"
        )
        print(f"    last webhook 200 -> final write: {summary_ms(stale)}")
        print(
            f"    final rows equal each product's last update: "
            f"{'yes' if not wrong else f'NO ({len(wrong)} differ)'}; ledger (incl. warm-up): "
            f"received={led['received']} coalesced={led['coalesced']} "
            f"written={led['written']} skipped_unchanged={led['skipped_unchanged']} "
            f"stale={led['stale']} balance={ledger_balance(led)}"
        )
    finally:
        stack.close()


# -- (iv) slow Personyze: backpressure ---------------------------------------------------------


def _lpush_calls(r) -> int:
    """kombu's Redis transport publishes a message with one LPUSH; the only other LPUSH is
    the worker's note of each finished sync (app/core/activity.py: one per write or dead
    letter), which `slow` subtracts using the ledger."""
    return int(r.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0))


def _notes(stack) -> int:
    """Finished syncs the worker noted in the recent-syncs list (one LPUSH each)."""
    led = stack.rt.state.ledger(STORE)
    return led["written"] + led["dead"]


def slow(quick: bool, n: int | None, latency_ms: float, limit: float) -> None:
    import redis

    n = n or (300 if quick else 1500)
    print(
        f"\n(iv) slow Personyze: sandbox latency {latency_ms:g} ms, PERSONYZE_RATE_LIMIT="
        f"{limit:g}, one worker of concurrency 4, {n} new products posted at once"
    )
    stack = Stack("slow", {"latency_ms": latency_ms}, personyze_rate_limit=limit)
    r = redis.Redis.from_url(stack.url)
    queue = stack.settings.sync_queue
    try:
        stack.start_sync(4)
        warm(stack)
        stack.writes.clear()
        rng = random.Random(4)
        payloads = [realistic_product(40_000 + i, rng, at=1) for i in range(n)]
        wanted = {str(40_000 + i) for i in range(n)}
        peak, samples, stop = [0], [], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                q = r.llen(queue)
                peak[0] = max(peak[0], q)
                samples.append(q)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        lpush0, notes0 = _lpush_calls(r), _notes(stack)
        t_start = time.time()
        sampler.start()
        stack.post_all(payloads)
        t_posted = time.time()
        done = stack.wait(lambda: wanted <= {w[1] for w in stack.written()}, n / 2 + 120)
        t_synced = time.time()
        left = r.llen(queue)
        stop.set()
        sampler.join(2)
        stack.wait(stack.settled, 30)
        published = _lpush_calls(r) - lpush0 - (_notes(stack) - notes0)
        writes = len(stack.written())
        print(
            f"    posted in {t_posted - t_start:.1f}s; every product synced "
            f"{t_synced - t_start:.1f}s after the first post"
            f"{'' if done else '  [timed out]'}; {writes} writes "
            f"({writes / (t_synced - t_start):.1f}/s)"
        )
        print(
            f"    Celery queue: peak {peak[0]} messages, {left} left when every product was "
            f"synced (mean {statistics.fmean(samples) if samples else 0:.0f} while syncing)"
        )
        print(
            f"    messages published {published} = {published / max(1, writes):.2f} per "
            f"Personyze write"
        )
        print(
            f"    targets: peak <= 100 {'met' if peak[0] <= 100 else 'NOT met'}; left <= 20 "
            f"{'met' if left <= 20 else 'NOT met'}; <= 1.1 per write "
            f"{'met' if published <= 1.1 * writes else 'NOT met'}"
        )
    finally:
        stack.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~20 s run")
    ap.add_argument("--only", default="i,ii,iii,iv", help="scenarios to run, e.g. i,iii")
    ap.add_argument("--latency-products", type=int, help="(i) products (200; quick 50)")
    ap.add_argument("--rate", type=float, default=20.0, help="(i) arrivals per second")
    ap.add_argument("--backlog", type=int, help="(ii) backlog products (300; quick 80)")
    ap.add_argument("--limit", type=float, default=20.0, help="(ii) sandbox rate limit R")
    ap.add_argument("--burst-products", type=int, help="(iii) products (50; quick 20)")
    ap.add_argument("--slow-products", type=int, help="(iv) products (1500; quick 300)")
    ap.add_argument("--slow-latency-ms", type=float, default=250.0, help="(iv) sandbox latency")
    ap.add_argument("--slow-limit", type=float, default=100.0, help="(iv) PERSONYZE_RATE_LIMIT")
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",")}
    install_cleanup()
    absent = shared_absent(redis_url())
    at_exit(lambda: cleanup_shared(redis_url(), absent))
    t0 = time.time()
    worker_class, workers, threads = WEB
    print(
        f"sync bench: Redis {redis_url()}, gunicorn web "
        f"{effective_worker_class(worker_class, threads)} x {workers} workers x {threads} "
        f"threads (deploy/gunicorn.conf.py: WEB_WORKER_CLASS={worker_class} "
        f"WEB_CONCURRENCY={workers} WEB_THREADS={threads}), celery prefork, "
        f"personyze-sync scheduler, sandbox in-process, code {tree_state()}"
    )
    try:
        if "i" in only:
            latency(args.quick, args.latency_products, args.rate)
        if "ii" in only:
            saturated(args.quick, args.backlog, args.limit)
        if "iii" in only:
            bursty(args.quick, args.burst_products)
        if "iv" in only:
            slow(args.quick, args.slow_products, args.slow_latency_ms, args.slow_limit)
    finally:
        print(f"\n(total {time.time() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
