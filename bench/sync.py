"""End to end: webhook -> Redis -> scheduler -> Celery -> the Personyze sandbox.

The service runs as the Procfile runs it: gunicorn `app:create_app()` (deploy/gunicorn.conf.py),
`celery -A workers.celery_app:celery worker` and `personyze-sync scheduler`, configured by
environment variables. The sandbox (the package `sandbox`, as `personyze-sync sandbox` serves
it) runs in this process so that each committed write is seen with the product it wrote.

  (i)   unthrottled: webhook 200 -> sandbox write, Poisson arrivals under the limit;
  (ii)  saturated: sandbox limit R, PERSONYZE_RATE_LIMIT 0.95 R, a backlog: the achieved
        write rate as a fraction of the configured limit;
  (iii) bursts of 5-20 updates per product 10-100 ms apart: writes per webhook with the
        default PRODUCT_COOLDOWN_SECONDS;
  (iv)  slow Personyze (answers in 250 ms, limit 100/s, one worker of concurrency 4, 1500 new
        products at once): the Celery queue's peak, what it holds when every product is
        synced, messages published per write (LPUSH calls in INFO commandstats);
  (v)   the `--delete-missing` listing of 10,000 Personyze rows: requests it takes, and its
        pace through the account's rate limiter (app.core.ratelimit) against a sandbox
        limiting at R, as a fraction of the configured 0.95 R.

    .venv/bin/python -m bench.sync [--quick] [--only i,ii,iii,iv,v]

Redis: REDIS_URL if set, else a redis-server of its own ((iv) counts every LPUSH the server
sees: give it a Redis nobody else uses).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import redis
import requests
from pydantic import SecretStr

from app.config import PersonyzeAccount
from app.core.ratelimit import AccountLimiter
from app.core.state import Keys, State, ledger_balance
from app.personyze import PersonyzeClient
from bench._common import (
    BIN,
    commit,
    gunicorn_settings,
    install_cleanup,
    new_prefix,
    pct,
    product,
    redis_url,
    service_env,
    signed,
    spawn,
    start_web,
    stop,
    summary_ms,
)
from sandbox import DEFAULT_API_KEY, Sandbox, Store
from workers.reads import PacedReads

STORE = "default"


class WriteLog(Store):
    """The sandbox's tables, noting each committed product write with its internal_id (the
    sandbox's request log has no bodies)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[float, str]] = []

    def insert(self, obj: str, data: dict[str, Any]) -> int:
        rid = super().insert(obj, data)
        if obj == "products":
            self.writes.append((time.time(), str(data.get("internal_id"))))
        return rid


class Stack:
    """The sandbox and the service for one scenario, with its own KEY_PREFIX and SYNC_QUEUE."""

    def __init__(self, tag: str, faults: dict[str, Any], **settings: Any) -> None:
        self.url = redis_url()
        self.prefix = new_prefix(f"bench-{tag}-")
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-sync-{tag}-"))
        self.store = WriteLog()
        self.sandbox = Sandbox(api_key=DEFAULT_API_KEY, port=0, **faults)
        self.sandbox.store = self.store
        self.sandbox.start()
        self.env = service_env(self.url, self.prefix, self.sandbox.url, DEFAULT_API_KEY, **settings)
        self.r = redis.Redis.from_url(self.url)
        self.state = State(self.r, self.prefix)
        web, self.web = start_web(self.env, log=self.tmp / "web.log")
        self.procs = [web]
        self.session = requests.Session()

    def start_sync(self, concurrency: int = 4) -> None:
        """The Procfile's worker and scheduler lines."""
        worker = [str(BIN / "celery"), "-A", "workers.celery_app:celery", "worker"]
        worker += ["--loglevel", "WARNING", "--concurrency", str(concurrency)]
        worker += ["--without-gossip", "--without-mingle"]
        env = dict(self.env, REMAP_SIGTERM="SIGQUIT")
        self.procs.append(spawn(worker, env, self.tmp / "worker.log"))
        self.procs.append(
            spawn([str(BIN / "personyze-sync"), "scheduler"], env, self.tmp / "scheduler.log")
        )

    def post(self, payload: dict[str, Any], session: requests.Session | None = None) -> float:
        """Deliver one signed products/update; the time its 200 came back."""
        body, headers = signed(orjson.dumps(payload))
        resp = (session or self.session).post(
            self.web + "/webhooks/shopify", data=body, headers=headers, timeout=10
        )
        if resp.status_code != 200:
            raise RuntimeError(f"webhook answered {resp.status_code}: {resp.text[:200]}")
        return time.time()

    def post_all(self, payloads: list[dict[str, Any]], connections: int = 8) -> None:
        local = threading.local()

        def send(p: dict[str, Any]) -> float:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            return self.post(p, local.s)

        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(send, payloads))

    def settled(self) -> bool:
        return self.state.ledger(STORE)["pending"] == 0 and self.state.due_count(STORE) == 0

    def written(self) -> set[str]:
        return {pid for _, pid in list(self.store.writes)}

    def close(self) -> None:
        for p in reversed(self.procs):
            stop(p)
        self.sandbox.stop()
        self.session.close()
        self.r.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}"
            for f in sorted(self.tmp.glob("*.log"))
        )


def wait(check: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def warm(stack: Stack) -> None:
    """One product through the whole path: workers up, pools connected."""
    stack.post(product(1, random.Random(0)))
    if not wait(lambda: "1" in stack.written(), 60):
        raise RuntimeError("the warm-up product never reached the sandbox\n" + stack.logs())
    wait(stack.settled, 10)
    stack.store.writes.clear()


# -- (i) unthrottled latency -------------------------------------------------------------------


def latency(n: int, rate: float) -> None:
    print(
        f"\n(i) unthrottled: {n} products, Poisson arrivals at {rate:g}/s, "
        f"PERSONYZE_RATE_LIMIT=1000, sandbox without limit, worker concurrency 4"
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
            t_next += rng.expovariate(rate)
            time.sleep(max(0.0, t_next - time.time()))
            t0 = time.time()
            accepted[str(10_000 + i)] = stack.post(product(10_000 + i, rng, at=1))
            answer.append(accepted[str(10_000 + i)] - t0)
        wait(lambda: accepted.keys() <= stack.written(), 60)
        first: dict[str, float] = {}
        for t, pid in stack.store.writes:
            first.setdefault(pid, t)
        lat = [first[p] - accepted[p] for p in accepted if p in first]
        print(f"    webhook answer (client side): {summary_ms(answer)}")
        print(f"    webhook 200 -> sandbox write: {summary_ms(lat)}")
        if len(lat) < n:
            print(f"    {n - len(lat)} products never written\n{stack.logs()}")
    finally:
        stack.close()


# -- (ii) saturated ----------------------------------------------------------------------------


def saturated(n: int, limit: float) -> None:
    configured = round(limit * 0.95, 3)
    print(
        f"\n(ii) saturated: sandbox limit R={limit:g}/s, PERSONYZE_RATE_LIMIT={configured:g} "
        f"(0.95 R), a backlog of {n} products, worker concurrency 4"
    )
    stack = Stack("sat", {"rate_limit": limit}, personyze_rate_limit=configured)
    try:
        rng = random.Random(2)
        stack.post_all([product(20_000 + i, rng, at=1) for i in range(n)])
        t_start = time.time()
        stack.start_sync(4)
        done = wait(
            lambda: len(stack.store.writes) >= n and stack.settled(), n / configured * 2 + 30
        )
        ok = sorted(t for t, _ in stack.store.writes)
        posts = [e.status for e in list(stack.sandbox.request_log) if e.method == "POST"]
        if len(ok) < 2:
            print("    no writes\n" + stack.logs())
            return
        rate = (len(ok) - 1) / (ok[-1] - ok[0])
        worst = max(sum(1 for t in ok[i:] if t < s + 1.0) for i, s in enumerate(ok))
        gaps = [b - a for a, b in zip(ok, ok[1:], strict=False)]
        print(
            f"    {len(ok)} writes in {ok[-1] - ok[0]:.2f} s, the first {ok[0] - t_start:.1f} s "
            f"after the workers were started{'' if done else '  [timed out before settling]'}"
        )
        print(
            f"    {rate:.2f} writes/s = {rate / configured:.3f} of the configured limit "
            f"({rate / limit:.3f} of R); 503s {posts.count(503)}, other errors "
            f"{sum(s not in (200, 503) for s in posts)}; most writes in any 1 s: {worst}; "
            f"gap p50 {pct(gaps, 50) * 1000:.1f} ms, p99 {pct(gaps, 99) * 1000:.1f} ms "
            f"(ideal {1000 / configured:.1f})"
        )
    finally:
        stack.close()


# -- (iii) bursts ------------------------------------------------------------------------------


def bursty(products: int, spread: float) -> None:
    rng = random.Random(3)
    plan = []
    for i in range(products):
        gaps = [rng.uniform(0.010, 0.100) for _ in range(rng.randint(5, 20) - 1)]
        plan.append((30_000 + i, rng.uniform(0, spread), gaps))
    webhooks = sum(len(g) + 1 for _, _, g in plan)
    print(
        f"\n(iii) bursts: {products} products x 5-20 updates 10-100 ms apart ({webhooks} "
        f"webhooks), PRODUCT_COOLDOWN_SECONDS default, unthrottled, worker concurrency 4"
    )
    stack = Stack("burst", {}, personyze_rate_limit=1000)
    try:
        stack.start_sync(4)
        warm(stack)
        last: dict[str, tuple[float, str]] = {}
        span: dict[str, float] = {}
        errors: list[BaseException] = []
        t0 = time.time() + 0.2

        def run(pid: int, start: float, gaps: list[float]) -> None:
            prng, session = random.Random(pid), requests.Session()
            try:
                time.sleep(max(0.0, t0 + start - time.time()))
                first = None
                for v in range(len(gaps) + 1):
                    title = f"p{pid} v{v}"
                    p = product(pid, prng, at=10 + v, title=title, price=f"{10 + v}.00")
                    t = stack.post(p, session)
                    first = first or t
                    last[str(pid)] = (t, title)
                    if v < len(gaps):
                        time.sleep(gaps[v])
                span[str(pid)] = last[str(pid)][0] - (first or 0.0)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                errors.append(e)
            finally:
                session.close()

        senders = [threading.Thread(target=run, args=p, daemon=True) for p in plan]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
        if errors:
            raise errors[0]
        wait(stack.settled, 60)
        time.sleep(0.2)
        per: dict[str, list[float]] = {}
        for t, pid in stack.store.writes:
            per.setdefault(pid, []).append(t)
        writes = sum(map(len, per.values()))
        rows = {r["internal_id"]: r for r in stack.sandbox.rows("products")}
        wrong = [p for p, (_, title) in last.items() if rows.get(p, {}).get("title") != title]
        counts = [len(per.get(p, [])) for p in last]
        stale = [max(per[p]) - last[p][0] for p in last if p in per]
        led = stack.state.ledger(STORE)
        print(
            f"    {webhooks} webhooks -> {writes} writes = {writes / webhooks:.3f} writes per "
            f"webhook; per product min {min(counts)} / median {statistics.median(counts):g} / "
            f"max {max(counts)} (burst span mean {statistics.fmean(span.values()):.2f} s)"
        )
        print(f"    last webhook 200 -> final write: {summary_ms(stale)}")
        print(
            f"    final rows equal each product's last update: "
            f"{'yes' if not wrong else f'NO ({len(wrong)} differ)'}; ledger balance "
            f"{ledger_balance(led)} (0: every delivery accounted for)"
        )
    finally:
        stack.close()


# -- (iv) slow Personyze -----------------------------------------------------------------------


def slow(n: int, latency_ms: float, limit: float) -> None:
    print(
        f"\n(iv) slow Personyze: sandbox answers in {latency_ms:g} ms, PERSONYZE_RATE_LIMIT="
        f"{limit:g}, one worker of concurrency 4, {n} new products posted at once"
    )
    stack = Stack("slow", {"latency_ms": latency_ms}, personyze_rate_limit=limit)
    queue = stack.env["SYNC_QUEUE"]

    def lpush() -> int:
        # kombu publishes a message with one LPUSH; the worker's note of each finished sync
        # (the recent-syncs list) is the only other LPUSH, one per write or dead letter
        led = stack.state.ledger(STORE)
        calls = stack.r.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
        return int(calls) - led["written"] - led["dead"]

    try:
        stack.start_sync(4)
        warm(stack)
        rng = random.Random(4)
        payloads = [product(40_000 + i, rng, at=1) for i in range(n)]
        wanted = {str(40_000 + i) for i in range(n)}
        samples: list[int] = []
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.is_set():
                samples.append(stack.r.llen(queue))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        published0 = lpush()
        t_start = time.time()
        sampler.start()
        stack.post_all(payloads)
        t_posted = time.time()
        done = wait(lambda: wanted <= stack.written(), n / 2 + 120)
        t_synced = time.time()
        left = stack.r.llen(queue)
        stop_sampling.set()
        sampler.join(2)
        wait(stack.settled, 30)
        published = lpush() - published0
        writes = len(stack.store.writes)
        print(
            f"    posted in {t_posted - t_start:.1f} s; every product synced "
            f"{t_synced - t_start:.1f} s after the first post{'' if done else '  [timed out]'}"
            f"; {writes} writes ({writes / (t_synced - t_start):.1f}/s)"
        )
        print(
            f"    Celery queue: peak {max(samples, default=0)} messages, {left} left when "
            f"every product was synced; {published} messages published = "
            f"{published / max(1, writes):.2f} per write"
        )
    finally:
        stack.close()


# -- (v) the Personyze listing -----------------------------------------------------------------

SPECIALS = ["A,B", "A|B", "A&B", "A/B", "A%B", "A+B", "A%2CB", "A B"]


def listing(rows: int, limit: float) -> None:
    configured = 0.95 * limit
    print(
        f"\n(v) listing {rows} Personyze rows (ids with , | & / % + and space), unthrottled, "
        f"then paced by the account's limiter at {configured:g}/s against a sandbox limit "
        f"of {limit:g}/s"
    )
    with Sandbox(api_key=DEFAULT_API_KEY, port=0) as sb:
        for i in range(rows - len(SPECIALS)):
            sb.store.insert("products", {"internal_id": f"P{i:07d}"})
        for sku in SPECIALS:
            sb.store.insert("products", {"internal_id": sku})
        account = PersonyzeAccount(
            api_key=SecretStr(DEFAULT_API_KEY), base_url=sb.url, rate_limit=configured
        )
        limiter = AccountLimiter(
            redis.Redis.from_url(redis_url()), Keys(new_prefix("bench-list-")), account
        )

        # The pacing reconciliation uses (workers/reads.py), measured as it runs there.
        paced = PacedReads(limiter, backoff_base=1.0, backoff_max=300.0, auth_pause=300.0)

        with PersonyzeClient(DEFAULT_API_KEY, sb.url) as client:
            for pace in (None, paced):
                sb.clear_log()
                start = time.perf_counter()
                got = sum(
                    1
                    for _ in client.iter_all(
                        "products", columns=["internal_id"], order_by="internal_id", pace=pace
                    )
                )
                took = time.perf_counter() - start
                log = list(sb.request_log)
                ok = [e.time for e in log if e.status == 200]
                if pace is None:
                    print(
                        f"    {got} rows listed in {len(log)} requests (one 1000-row window, "
                        f"then keyset pages of 50), {took:.2f} s unthrottled"
                    )
                    sb.faults.update(rate_limit=limit)
                    continue
                rate = (len(ok) - 1) / (ok[-1] - ok[0])
                print(
                    f"    paced: {got} rows, {len(ok)} pages in {took:.1f} s, {rate:.2f} req/s "
                    f"= {rate / configured:.3f} of the configured limit, "
                    f"{sum(e.status == 503 for e in log)} x 503"
                )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller scenarios (about 2 minutes)")
    ap.add_argument("--only", default="i,ii,iii,iv,v", help="scenarios to run, e.g. i,iii")
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",")}
    q = args.quick
    install_cleanup()
    url = redis_url()
    t0 = time.time()
    print(
        f"sync bench: Redis {url}, gunicorn {gunicorn_settings()}, celery worker "
        f"(prefork), personyze-sync scheduler, sandbox in-process, code {commit()}"
    )
    try:
        if "i" in only:
            latency(50 if q else 200, 20.0)
        if "ii" in only:
            saturated(80 if q else 300, 20.0)
        if "iii" in only:
            bursty(20 if q else 50, 2.0 if q else 4.0)
        if "iv" in only:
            slow(300 if q else 1500, 250.0, 100.0)
        if "v" in only:
            listing(10_000, 5.0)
    finally:
        print(f"\n(total {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
