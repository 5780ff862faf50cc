"""Webhook ingestion: the app's throughput against a bare Flask app on the same gunicorn.

Both are served by `gunicorn -c deploy/gunicorn.conf.py` with the same settings (the
config's defaults, or WEB_WORKER_CLASS, WEB_CONCURRENCY, WEB_THREADS from the environment).
wrk replays distinct, pre-signed, realistic products/update deliveries (1-5 KB; no product id
or event id repeats, and the app's keys are deleted after each round, so no request is a
duplicate). Rounds alternate (bare, app, app, bare, ...) to cancel drift; the figure is the
app/bare ratio measured in this run, with the app's latency percentiles.

    .venv/bin/python -m bench.ingest [--quick] [--connections 16] [--duration 6] [--rounds 3]

Needs wrk (apt-get install wrk). Redis: REDIS_URL if set, else a redis-server of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import redis
from flask import Flask, Response, request

from app.core.state import State
from bench._common import (
    commit,
    delete_keys,
    gunicorn_settings,
    install_cleanup,
    new_prefix,
    product,
    redis_url,
    service_env,
    signed,
    start_web,
    stop,
)
from sandbox import DEFAULT_API_KEY

bare_app = Flask(__name__)
"""The floor: one POST route that reads the body and answers 200 (`bench.ingest:bare_app`)."""


@bare_app.post("/webhooks/shopify")
def _bare_webhook() -> Response:
    request.get_data()
    return Response(b'{"status":"ok"}', status=200, mimetype="application/json")


@bare_app.get("/healthz")
def _bare_health() -> Response:
    return Response(b"ok", status=200)


# -- requests ----------------------------------------------------------------------------------


def write_set(directory: Path, first_pid: int, count: int, wrk_threads: int) -> int:
    """`count` raw signed requests in one file per wrk thread (bench/rotate.lua reads them);
    returns the mean body size."""
    rng = random.Random(first_pid)
    directory.mkdir(parents=True, exist_ok=True)
    files: list[list[bytes]] = [[] for _ in range(wrk_threads)]
    total = 0
    for k in range(count):
        pid = first_pid + k
        body, headers = signed(orjson.dumps(product(pid, rng, at=pid % 100_000)))
        total += len(body)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        raw = (
            f"POST /webhooks/shopify HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
            f"{head}\r\n"
        ).encode() + body
        files[k % wrk_threads].append(b"%010d" % len(raw) + raw)
    for t, parts in enumerate(files):
        (directory / f"reqs_{t + 1}.bin").write_bytes(b"".join(parts))
    return total // max(1, count)


# -- measurement -------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (gunicorn's master and workers)."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(d))
        cpu[int(d)] = (int(fields[11]) + int(fields[12])) / _TICK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


def busy_cpu() -> float:
    """CPU seconds the whole machine spent busy, to tell how much else was running."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / _TICK


def run_wrk(url: str, reqdir: Path, seconds: int, connections: int, threads: int, pid: int):
    cpu0, busy0 = tree_cpu(pid), busy_cpu()
    lua = Path(__file__).with_name("rotate.lua")
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    cmd += ["--timeout", "5s", "-s", str(lua), url + "/webhooks/shopify", "--", str(reqdir)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out[-1500:]}")
    res: dict[str, float] = json.loads(line.removeprefix("BENCHJSON "))
    secs = res["duration_us"] / 1e6
    res["rps"] = res["requests"] / secs
    res["server_cpu"] = tree_cpu(pid) - cpu0
    # CPUs busy with anything but the server under test (wrk, Redis, other jobs): the noise
    res["other_cpus"] = max(0.0, busy_cpu() - busy0 - res["server_cpu"]) / secs
    res["errors"] = sum(res[f"err_{x}"] for x in ("connect", "read", "write", "status", "timeout"))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--duration", type=int, help="seconds per round (6; quick 3)")
    ap.add_argument("--rounds", type=int, help="rounds per server (3; quick 2)")
    args = ap.parse_args()
    duration = args.duration or (3 if args.quick else 6)
    rounds = args.rounds or (2 if args.quick else 3)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    install_cleanup()
    url = redis_url()
    prefix = new_prefix("bench-ingest-")
    state = State(redis.Redis.from_url(url), prefix)
    # the webhook path never calls Personyze: nothing needs to listen there
    env = service_env(url, prefix, "http://127.0.0.1:9/rest", DEFAULT_API_KEY)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    wrk_threads = 2
    print(
        f"ingest bench: gunicorn -c deploy/gunicorn.conf.py ({gunicorn_settings()}) for "
        f"both servers, wrk -t{wrk_threads} -c{args.connections}, {rounds} rounds of "
        f"{duration} s each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
        f"code {commit()}"
    )
    servers = {
        name: start_web(env, app, tmp / f"{name}.log")
        for name, app in (("bare", "bench.ingest:bare_app"), ("app", "app:create_app()"))
    }
    try:
        # a warm-up round each; the app's rate sizes the set every round replays
        write_set(tmp / "warm", 9_000_000_000, 3000, wrk_threads)
        warm = {
            n: run_wrk(u, tmp / "warm", 1 if args.quick else 2, args.connections, 2, p.pid)
            for n, (p, u) in servers.items()
        }
        delete_keys(url, prefix)
        size = int(warm["app"]["rps"] * duration * 2) + 2000
        body = write_set(tmp / "set", 7_000_000_000, size, wrk_threads)
        print(
            f"warm-up: bare {warm['bare']['rps']:.0f} req/s, app {warm['app']['rps']:.0f} "
            f"req/s; {size} distinct deliveries of {body} B mean body per round\n"
        )
        print(
            f"{'round':8s} {'req/s':>7s} {'p50 ms':>7s} {'p90 ms':>7s} {'p99 ms':>7s} "
            f"{'max ms':>7s} {'errors':>6s} {'server us/req':>13s} {'other CPUs':>10s}"
        )
        results: dict[str, list[dict[str, float]]] = {"bare": [], "app": []}
        for k in range(rounds):
            for name in ("bare", "app") if k % 2 == 0 else ("app", "bare"):
                proc, base = servers[name]
                res = run_wrk(base, tmp / "set", duration, args.connections, wrk_threads, proc.pid)
                results[name].append(res)
                note = ""
                if name == "app":
                    led = state.ledger("default")
                    note = f"  received={led['received']} duplicates={led['duplicates']}"
                    note += (
                        f" (set replayed {res['wrapped']:.0f} more times)" if res["wrapped"] else ""
                    )
                    delete_keys(url, prefix)
                print(
                    f"{name} #{k + 1:<3d} {res['rps']:7.0f} {res['p50_us'] / 1e3:7.2f} "
                    f"{res['p90_us'] / 1e3:7.2f} {res['p99_us'] / 1e3:7.2f} "
                    f"{res['max_us'] / 1e3:7.1f} {res['errors']:6.0f} "
                    f"{res['server_cpu'] / res['requests'] * 1e6:13.0f} "
                    f"{res['other_cpus']:10.2f}{note}"
                )
    finally:
        for proc, _ in servers.values():
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(name: str) -> float:
        rs = results[name]
        return sum(r["requests"] for r in rs) / sum(r["duration_us"] / 1e6 for r in rs)

    app_rs = results["app"]
    ratios = ", ".join(
        f"{a['rps'] / b['rps']:.2f}" for a, b in zip(app_rs, results["bare"], strict=True)
    )
    p50 = sum(r["p50_us"] for r in app_rs) / len(app_rs) / 1e3
    p99 = sum(r["p99_us"] for r in app_rs) / len(app_rs) / 1e3
    print(
        f"\napp/bare = {rate('app') / rate('bare'):.2f} (rounds {ratios}; app "
        f"{rate('app'):.0f} req/s, bare {rate('bare'):.0f}); app p50 {p50:.2f} ms, p99 "
        f"{p99:.2f} ms at {args.connections} connections (mean of rounds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
