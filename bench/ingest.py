"""Webhook ingestion throughput and latency: the real app against a bare Flask floor.

Both are served by gunicorn with deploy/gunicorn.conf.py and the same settings: its worker
class, workers and threads (WEB_WORKER_CLASS, WEB_CONCURRENCY, WEB_THREADS; default sync,
2 x cores + 1, 1), or --worker-class/--workers/--threads. wrk loads them with distinct,
pre-signed, realistic Shopify product updates (1-5 KB; every product id and event id distinct,
so no request is a duplicate: the app's keys are deleted after every round). Rounds alternate
in ABBA order (bare, app, what-if / what-if, app, bare, ...) to cancel drift; the ratio is
app/bare from the same run. The what-if is measured only, never applied: "app-redis"
(bench/whatif_noredis_app.py: State.record without its Redis round trip, an upper bound).
Then an in-process profile shows where the app's time goes. Per round it also prints the CPU
spent per request by gunicorn and by Redis, the CPUs wrk used (it must not be the bottleneck)
and the CPUs used by anything else on the machine meanwhile (other jobs, kernel: noise).

    .venv/bin/python bench/ingest.py [--quick] [--connections 16] [--duration 6] [--rounds 3]
                                     [--worker-class sync] [--workers N] [--threads 1]

Targets (issue): app/bare >= 0.6 and p99 <= 15 ms at 16 connections.
Needs `wrk` (apt-get install -y wrk). Redis: REDIS_URL if set, else a redis-server of its own
on a free port (bench/_common.py); keys of this run are deleted after.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench._common import (
    ROOT,
    SANDBOX_KEY,
    SHOP,
    SHOPIFY_SECRET,
    cleanup_prefix,
    effective_worker_class,
    gunicorn_settings,
    install_cleanup,
    kill_group,
    new_prefix,
    realistic_product,
    redis_url,
    shopify_request,
    start_gunicorn,
    track,
    tree_state,
)

LUA = ROOT / "bench" / "rotate.lua"
APP = "app:create_app()"
BARE = "bench.bare_app:create_app()"
NOREDIS = "bench.whatif_noredis_app:create_app()"


# -- requests ----------------------------------------------------------------------------------


class Gen:
    """Distinct signed deliveries: product ids and event ids never repeat within a run."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.next_pid = 7_000_000_000  # Shopify-sized ids

    def delivery(self) -> tuple[bytes, dict[str, str]]:
        pid = self.next_pid
        self.next_pid += 1
        payload = realistic_product(pid, self.rng, at=pid % 100_000)
        return shopify_request(orjson.dumps(payload), event_id=str(uuid.uuid4()))


def raw_http(body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST /webhooks/shopify HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        f"{head}\r\n"
    ).encode() + body


def write_set(gen: Gen, directory: Path, count: int, wrk_threads: int) -> int:
    """`count` raw requests spread over one file per wrk thread; returns the bytes of body."""
    directory.mkdir(parents=True, exist_ok=True)
    chunks: list[list[bytes]] = [[] for _ in range(wrk_threads)]
    total = 0
    for k in range(count):
        body, headers = gen.delivery()
        total += len(body)
        req = raw_http(body, headers)
        chunks[k % wrk_threads].append(b"%010d" % len(req) + req)
    for t, parts in enumerate(chunks):
        (directory / f"reqs_{t + 1}.bin").write_bytes(b"".join(parts))
    return total


# -- measurement -------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user+system) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(p, []))
    return total


def busy_cpu() -> float:
    """CPU seconds the whole machine spent busy (all processes, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / _TICK


def redis_pid(url: str) -> int | None:
    import redis

    try:
        pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        return pid if os.path.exists(f"/proc/{pid}/stat") else None
    except Exception:  # noqa: BLE001 - only a diagnostic
        return None


def run_wrk(
    url: str,
    reqdir: Path,
    seconds: float,
    connections: int,
    threads: int,
    server_pid: int,
    rpid: int | None,
) -> dict:
    cpu0 = tree_cpu(server_pid)
    r0 = tree_cpu(rpid) if rpid else 0.0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = busy_cpu()
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url + "/webhooks/shopify",
        "--",
        str(reqdir),
    ]
    proc = track(
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    )
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            kill_group(proc, 1)
    busy = busy_cpu() - busy0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, now reaped
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    line = next((x for x in out.decode().splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.decode()[-1500:]} {err.decode()[-1500:]}")
    res = json.loads(line[len("BENCHJSON ") :])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["server_cpu"] = tree_cpu(server_pid) - cpu0
    res["redis_cpu"] = (tree_cpu(rpid) - r0) if rpid else float("nan")
    res["wrk_cpu"] = wrk_cpu
    secs = res["duration_us"] / 1e6
    # CPU used by anything else on the machine meanwhile (other jobs): noise, in CPUs
    res["other_cpus"] = (
        max(0.0, busy - res["server_cpu"] - wrk_cpu - (res["redis_cpu"] if rpid else 0.0)) / secs
    )
    return res


# -- the in-process profile --------------------------------------------------------------------


def environs(gen: Gen, n: int):
    from werkzeug.test import EnvironBuilder

    out = []
    for _ in range(n):
        body, headers = gen.delivery()
        out.append(
            EnvironBuilder(
                path="/webhooks/shopify", method="POST", data=body, headers=headers
            ).get_environ()
        )
    return out


def call(app, env) -> int:
    status = []
    it = app(env, lambda s, h, e=None: status.append(s))
    for _ in it:
        pass
    if hasattr(it, "close"):
        it.close()
    return int(status[0].split()[0])


def per_call(fn, items) -> float:
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    return (time.perf_counter() - t0) / len(items) * 1e6


def profile(settings, n: int) -> None:
    # counters as gunicorn runs them: deploy/gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR
    # (it must be set before prometheus_client is imported)
    prom_dir = None
    if "prometheus_client" not in sys.modules and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        prom_dir = tempfile.mkdtemp(prefix="bench-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir
    try:
        _profile(settings, n)
    finally:
        if prom_dir:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(prom_dir, ignore_errors=True)


def _profile(settings, n: int) -> None:
    import orjson
    from werkzeug.wrappers import Request

    from app import create_app
    from app.core.model import Product, parse_json, parse_time
    from app.platforms.shopify import normalize
    from app.web import metrics, webhooks
    from bench import bare_app

    app = create_app(settings)
    bare = bare_app.create_app()
    rt = app.extensions["personyze_sync"]
    gen = Gen(seed=99)
    gen.next_pid = 8_000_000_000

    # warm both (imports, script load, connection pool); stop if the app does not answer 200
    first = call(app, environs(gen, 1)[0])
    if first != 200:
        print(f"\n(in-process profile skipped: the app answered {first}; see the log above)")
        return
    for env in environs(gen, 200):
        call(app, env)
    for env in environs(gen, 200):
        call(bare, env)
    import inspect

    store = rt.settings.stores["default"]
    keep = bool(store.mapping.add)
    tj_args = (keep,) if "keep_raw" in inspect.signature(Product.to_json).parameters else ()
    rec_kw = (
        {"keep_raw": keep} if "keep_raw" in inspect.signature(rt.state.record).parameters else {}
    )

    # Whole requests of the app and the bare app, and the view's steps timed one by one with
    # the functions app/web/webhooks.receive calls, all interleaved so they share the
    # machine's noise; "rest" is the mount dispatch and the WSGI response.
    orig_to_json = Product.to_json
    variants = {"app": app, "bare": bare}
    whole = dict.fromkeys(variants, 0.0)
    steps = dict.fromkeys(
        (
            "werkzeug Request wrapper",
            "read_body",
            "adapter.resolve",
            "adapter.verify (HMAC-SHA256)",
            "adapter.parse (JSON, normalize)",
            "State.record: Product.to_json",
            "State.record: EVALSHA ingest.lua",
            "_answer (JSON bytes, prometheus counter)",
        ),
        0.0,
    )
    adapter = webhooks.ADAPTERS["shopify"]
    bodies = []
    clock = time.perf_counter
    envs = iter(environs(gen, n * (len(variants) + 1)))
    names = list(variants)
    step_error = None
    cs0 = rt.redis.info("commandstats").get("cmdstat_evalsha", {})
    try:
        for i in range(n):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                env = next(envs)
                t0 = clock()
                call(variants[name], env)
                whole[name] += clock() - t0
            env = next(envs)
            if step_error:
                continue
            try:
                t0 = clock()
                request = Request(env)
                t1 = clock()
                body = webhooks.read_body(request, rt.settings.max_body_bytes)
                t2 = clock()
                store = adapter.resolve(rt.settings.stores, request.headers, None)
                t3 = clock()
                assert adapter.verify(store, body, request.headers)
                t4 = clock()
                ev = adapter.parse(store, body, request.headers, time.time())
                t5 = clock()
                doc = ev.product.to_json(*tj_args)
                t6 = clock()
                Product.to_json = lambda self, *_a, _doc=doc, **_k: _doc
                outcome = rt.state.record(ev, time.time(), **rec_kw)
                Product.to_json = orig_to_json
                t7 = clock()
                webhooks._answer(200, outcome.name.lower(), "shopify")
                t8 = clock()
                t9 = clock()
            except Exception as e:  # noqa: BLE001 - the app changed shape: say so, go on
                step_error = f"{type(e).__name__}: {e}"
                continue
            for name, dt in zip(
                steps,
                (t1 - t0 + t9 - t8, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7),
                strict=True,
            ):
                steps[name] += dt
            bodies.append(body)
    finally:
        Product.to_json = orig_to_json
    if step_error:
        print(f"(view step breakdown unavailable: {step_error})")
        steps = {}
    us = {k: v / n * 1e6 for k, v in whole.items()}
    app_us, bare_us = us["app"], us["bare"]
    steps = {k: v / n * 1e6 for k, v in steps.items()}
    cs1 = rt.redis.info("commandstats").get("cmdstat_evalsha", {})
    inside = (cs1.get("usec", 0) - cs0.get("usec", 0)) / max(
        1, cs1.get("calls", 0) - cs0.get("calls", 0)
    )
    deliveries = [gen.delivery() for _ in range(n)]
    bodies = bodies or [b for b, _ in deliveries]
    products = [adapter.parse(store, b, h, time.time()).product for b, h in deliveries]
    sub = {
        "orjson.loads": per_call(parse_json, bodies),
        "normalize": per_call(lambda b: normalize(orjson.loads(b), "1"), bodies)
        - per_call(orjson.loads, bodies),
        "parse_time": per_call(lambda p: parse_time(p.raw["updated_at"], "u"), products),
        "Counter.inc": per_call(
            lambda _: metrics.WEBHOOKS.labels("shopify", "accepted_wake").inc(), range(n)
        ),
        "PING": per_call(lambda _: rt.redis.ping(), range(n)),
    }
    docs = [p.to_json(*tj_args) for p in products]
    doc = sum(map(len, docs)) / len(docs)
    doc_noraw = sum(len(orjson.dumps({**orjson.loads(d), "raw": {}})) for d in docs) / len(docs)
    body_len = sum(map(len, bodies)) / len(bodies)
    mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "in-process"

    print(f"\n== in-process profile: {n} distinct deliveries, direct WSGI calls (no gunicorn) ==")
    print(f"whole request: app {app_us:.0f} us, bare Flask {bare_us:.0f} us")
    notes = {
        "adapter.parse (JSON, normalize)": f"orjson.loads {sub['orjson.loads']:.0f}, normalize "
        f"{sub['normalize']:.0f}, parse_time {sub['parse_time']:.0f}",
        "State.record: Product.to_json": f"keep_raw={keep if tj_args else 'n/a'}",
        "State.record: EVALSHA ingest.lua": f"{inside:.0f} inside Redis; PING round trip "
        f"{sub['PING']:.0f}; doc {doc:.0f} B (body {body_len:.0f} B, {doc_noraw:.0f} B w/o raw)",
        "_answer (JSON bytes, prometheus counter)": f"Counter.inc {sub['Counter.inc']:.1f} "
        f"({mode})",
    }
    for name, us in steps.items():
        print(f"  {name:40s} {us:6.0f} us {us / app_us:4.0%}  {notes.get(name, '')}")
    if steps:
        rest = app_us - sum(steps.values())
        print(
            f"  {'dispatch + WSGI response (rest)':40s} {rest:6.0f} us "
            f"{rest / app_us:4.0%}  (a whole bare Flask request: {bare_us:.0f} us)"
        )

    # cProfile: who spends the time (tottime), for what the table above does not split
    envs = environs(gen, n)
    prof = cProfile.Profile()
    prof.enable()
    for env in envs:
        call(app, env)
    prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("tottime").print_stats(10)
    print(
        f"\n-- cProfile, top functions by own time over {n} requests "
        f"(profiler overhead inflates small calls) --"
    )
    keep = False
    for line in s.getvalue().splitlines():
        if line.lstrip().startswith("ncalls"):
            keep = True
        if keep and line.strip():
            line = line.replace(str(ROOT) + "/", "").replace(
                str(Path(sys.prefix)) + "/lib/python3.11/site-packages/", ""
            )
            line = line.replace(str(Path(sys.base_prefix)) + "/lib/python3.11/", "")
            print("  " + line[:140])


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~20 s run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--duration", type=int, help="whole seconds per round (default 6; quick 3)")
    ap.add_argument("--rounds", type=int, help="rounds per server, ABBA order (3; quick 2)")
    conf_class, conf_workers, conf_threads = gunicorn_settings()
    conf = "every server; default from deploy/gunicorn.conf.py"
    ap.add_argument(
        "--worker-class", default=conf_class, help=f"gunicorn worker class ({conf}: {conf_class})"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=conf_workers,
        help=f"gunicorn workers ({conf}: {conf_workers})",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=conf_threads,
        help=f"threads per worker ({conf}: {conf_threads})",
    )
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--profile-n", type=int, help="requests profiled in-process (2000; quick 400)")
    ap.add_argument(
        "--no-whatif",
        action="store_true",
        help="skip the what-if server app-redis; --quick skips it too",
    )
    args = ap.parse_args()
    duration = args.duration or (3 if args.quick else 6)
    rounds = args.rounds or (2 if args.quick else 3)
    warmup = 1 if args.quick else 2
    prof_n = args.profile_n or (400 if args.quick else 2000)
    wrk_threads = max(1, min(args.wrk_threads, args.connections))
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    install_cleanup()
    from app.config import load_settings
    from app.runtime import build
    from tests.servers import settings_env

    url = redis_url()
    prefix = new_prefix("ingest")

    def make_settings(p: str):
        return load_settings(
            redis_url=url,
            key_prefix=p,
            sync_queue=f"{p}-sync",
            shopify_webhook_secret=SHOPIFY_SECRET,
            shopify_shop_domain=SHOP,
            personyze_api_key=SANDBOX_KEY,
            personyze_base_url="http://127.0.0.1:9/rest",
        )

    settings = make_settings(prefix)
    env = settings_env(settings)
    rt = build(settings)
    rpid = redis_pid(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    servers: dict[str, object] = {}
    names = ["bare", "app"] + (["app-redis"] if not args.no_whatif and not args.quick else [])
    apps = {"bare": BARE, "app": APP, "app-redis": NOREDIS}
    t_start = time.time()
    try:
        for name in names:
            servers[name] = start_gunicorn(
                env, apps[name], args.workers, args.threads, args.worker_class
            )
        # the class gunicorn says it runs (sync becomes gthread with threads > 1)
        used = {g.worker_class or "?" for g in servers.values()}
        expected = effective_worker_class(args.worker_class, args.threads)
        print(
            f"ingest bench: gunicorn -c deploy/gunicorn.conf.py, every server "
            f"worker class {'/'.join(sorted(used))} x {args.workers} workers x "
            f"{args.threads} threads (WEB_WORKER_CLASS={args.worker_class} WEB_CONCURRENCY="
            f"{args.workers} WEB_THREADS={args.threads}), wrk -t{wrk_threads} "
            f"-c{args.connections}, {duration}s rounds, {os.cpu_count()} CPUs, "
            f"load avg {os.getloadavg()[0]:.2f}, Redis {url}, code {tree_state()}"
        )
        if used != {expected}:
            print(
                f"(warning: expected every server to run {expected}; gunicorn reported "
                + ", ".join(f"{n} {g.worker_class}" for n, g in servers.items())
                + ")"
            )
        gen = Gen()

        # warm up every server; the app's warm-up rate sizes the request sets
        write_set(gen, tmp / "warm", 3000, wrk_threads)
        est = {}
        for name in names:
            g = servers[name]
            est[name] = run_wrk(
                g.url, tmp / "warm", warmup, args.connections, wrk_threads, g.proc.pid, rpid
            )["rps"]
            cleanup_prefix(url, prefix)
        # one set of distinct deliveries, replayed by every round: the app's Redis keys are
        # deleted after each round, so no request is ever a duplicate of an earlier one
        per_set = int(max(est["app"], 0.6 * est["bare"]) * duration * 1.5) + 2000
        t0 = time.perf_counter()
        body_bytes = write_set(gen, tmp / "set", per_set, wrk_threads)
        print(
            f"warm-up req/s: {', '.join(f'{n} {est[n]:.0f}' for n in names)}; {per_set} "
            f"distinct deliveries, mean body {body_bytes / per_set:.0f} B (built in "
            f"{time.perf_counter() - t0:.1f}s)"
        )

        results: dict[str, list[dict]] = {n: [] for n in names}
        order = []
        for k in range(rounds):
            order += names if k % 2 == 0 else names[::-1]
        print(
            f"\n{'round':10s} {'req/s':>7s} {'p50 ms':>7s} {'p90 ms':>7s} {'p99 ms':>7s} "
            f"{'p99.9':>6s} {'max ms':>6s} {'err':>3s} {'srv us/req':>10s} "
            f"{'redis us/req':>12s} {'wrk CPUs':>8s} {'other CPUs':>10s}"
        )
        for name in order:
            g = servers[name]
            res = run_wrk(
                g.url, tmp / "set", duration, args.connections, wrk_threads, g.proc.pid, rpid
            )
            errs = sum(res[f"err_{x}"] for x in ("connect", "read", "write", "status", "timeout"))
            note = ""
            if name == "app":
                led = rt.state.ledger("default")
                cleanup_prefix(url, prefix)
                note = (
                    f"  ledger: received={led['received']} pending={led['pending']} "
                    f"duplicates={led['duplicates']}"
                )
                if res["wrapped"]:  # the set was too small: some requests were duplicates
                    note += f" (request set wrapped x{res['wrapped']})"
            results[name].append(res)
            print(
                f"{name + ' #' + str(len(results[name])):10s} {res['rps']:7.0f} "
                f"{res['p50_us'] / 1000:7.2f} {res['p90_us'] / 1000:7.2f} "
                f"{res['p99_us'] / 1000:7.2f} {res['p999_us'] / 1000:6.1f} "
                f"{res['max_us'] / 1000:6.1f} {errs:3d} "
                f"{res['server_cpu'] / res['requests'] * 1e6:10.0f} "
                f"{res['redis_cpu'] / res['requests'] * 1e6:12.0f} "
                f"{res['wrk_cpu'] / (res['duration_us'] / 1e6):8.2f} "
                f"{res['other_cpus']:10.2f}{note}"
            )

        def agg(name: str) -> tuple[float, float, float, float]:
            rs = results[name]
            rps = sum(r["requests"] for r in rs) / sum(r["duration_us"] / 1e6 for r in rs)
            p50 = sum(r["p50_us"] for r in rs) / len(rs) / 1000
            p99 = sum(r["p99_us"] for r in rs) / len(rs) / 1000
            cpu = sum(r["server_cpu"] for r in rs) / sum(r["requests"] for r in rs) * 1e6
            return rps, p50, p99, cpu

        b = agg("bare")
        print()
        for name in names:
            x = agg(name)
            ratio = "" if name == "bare" else f"  ratio {name}/bare = {x[0] / b[0]:.2f}"
            print(
                f"{name:8s}: {x[0]:6.0f} req/s  p50 {x[1]:5.2f} ms  p99 {x[2]:5.2f} ms  "
                f"gunicorn CPU {x[3]:5.0f} us/req{ratio}"
            )
        a = agg("app")
        pair = [results["app"][k]["rps"] / results["bare"][k]["rps"] for k in range(rounds)]
        print(
            f"targets: app/bare {a[0] / b[0]:.2f} (rounds: {', '.join(f'{x:.2f}' for x in pair)})"
            f" >= 0.6 {'met' if a[0] / b[0] >= 0.6 else 'NOT met'}; app p99 {a[2]:.1f} ms "
            f"<= 15 ms at {args.connections} connections "
            f"{'met' if a[2] <= 15 else 'NOT met'}  (p50/p99: mean of rounds)"
        )
        if "app-redis" in names:
            print(
                "(app-redis = upper bound: the real app with State.record's Redis round trip "
                "removed, bench/whatif_noredis_app.py; not a valid service)"
            )

        for g in servers.values():
            kill_group(g.proc)
        servers.clear()
        profile(make_settings(prefix + "p"), prof_n)
    finally:
        for g in servers.values():
            kill_group(g.proc)
        n = cleanup_prefix(url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"\n(cleaned {n} Redis keys; total {time.time() - t_start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
