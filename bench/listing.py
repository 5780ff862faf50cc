"""The full Personyze catalog listing of `resync --delete-missing`, against the sandbox.

  (a) unthrottled: requests and time to list N rows (1000-row window, then keyset pages of
      50), i.e. what the 50-row cap costs in requests;
  (b) paced: the same listing through the account's shared GCRA configured at 0.95 R (as the
      README advises) with the sandbox limiting at R: achieved rate as a ratio of the
      configured limit, and 503s (target: none).

    .venv/bin/python bench/listing.py [--rows 10000] [--rate 20]

Redis: REDIS_URL if set, else a redis-server of its own; every key of the run is deleted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from app.config import PersonyzeAccount
from app.core.ratelimit import AccountLimiter
from app.core.state import Keys
from app.personyze import PersonyzeClient
from bench._common import SANDBOX_KEY, install_cleanup, new_prefix, redis_url
from sandbox import Sandbox
from workers.reads import PacedReads

SPECIALS = ["A,B", "A|B", "A&B", "A/B", "A%B", "A+B", "A%2CB", "A B"]


def listing(client: PersonyzeClient, pace: PacedReads | None = None) -> int:
    return sum(
        1
        for _ in client.iter_all(
            "products", columns=["internal_id"], order_by="internal_id", pace=pace
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=20.0)
    args = ap.parse_args()
    install_cleanup()
    with Sandbox(api_key=SANDBOX_KEY) as sb:
        for i in range(args.rows - len(SPECIALS)):
            sb.store.insert("products", {"internal_id": f"P{i:07d}"})
        for sku in SPECIALS:
            sb.store.insert("products", {"internal_id": sku})
        with PersonyzeClient(SANDBOX_KEY, sb.url) as client:
            start = time.perf_counter()
            n = listing(client)
            took = time.perf_counter() - start
            requests = len(sb.request_log)
            assert n == args.rows, (n, args.rows)
            print(
                f"(a) {n} rows: {requests} requests (1 + (N-1000)/50, + 1 empty page when "
                f"the last is full), {took:.2f} s unthrottled, {requests / took:.0f} req/s "
                "(the sandbox filters and sorts every page in Python)"
            )

            sb.clear_log()
            sb.faults.update(rate_limit=args.rate)
            configured = 0.95 * args.rate
            account = PersonyzeAccount(api_key=SANDBOX_KEY, base_url=sb.url, rate_limit=configured)
            limiter = AccountLimiter(
                redis.Redis.from_url(redis_url()), Keys(new_prefix("listing")), account
            )
            pace = PacedReads(limiter, 1.0, 300.0, 300.0)
            start = time.perf_counter()
            assert listing(client, pace) == args.rows
            took = time.perf_counter() - start
            log = sb.request_log
            ok = [e for e in log if e.status == 200]
            busy = sum(e.status == 503 for e in log)
            rate = (len(ok) - 1) / (ok[-1].time - ok[0].time)
            print(
                f"(b) paced at {configured:g}/s (sandbox limit {args.rate:g}/s): "
                f"{len(ok)} pages in {took:.1f} s, {rate:.2f} req/s = "
                f"{rate / configured:.3f} of the configured limit, {busy} x 503"
            )


if __name__ == "__main__":
    main()
