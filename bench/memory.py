"""Redis memory per product and per delivery, from the state machine's own scripts.

Runs the transitions a real store causes, through `State` (the same Lua scripts the web and
the workers run), and reads Redis's `used_memory` (INFO memory) before and after each phase:

  1. N new products arrive (realistic Shopify products, normalized as the webhook path does):
     bytes per *pending* product (the pending document is most of it);
  2. every one is synced (claim, complete as written): bytes per *synced* product;
  3. D more deliveries of those known products (Shopify's products/update on every order:
     newer time, same content, so the worker skips the write), plus redeliveries of some:
     bytes per *delivery*, amortized.

It also prints the `MEMORY USAGE` of each kind of key, averaged, and how the product state is
encoded. Compare two designs by running this file from each checkout against the same Redis.

    .venv/bin/python -m bench.memory [--quick] [--products 50000] [--deliveries 100000]

Without REDIS_URL it starts a redis-server of its own: other clients' writes would count in
used_memory. Every key of the run is deleted at the end.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections import defaultdict

import redis

from app.core.model import Event
from app.core.state import State
from app.platforms.shopify import normalize
from bench._common import commit, install_cleanup, new_prefix, product, redis_url

STORE = "default"
FIRST_ID = 8_000_000_000_000  # 13-digit ids, as current Shopify product ids are
HASH = "0123456789abcdef0123456789abcdef"  # a row_hash: 32 hex digits


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def by_kind(r: redis.Redis, prefix: str) -> dict[str, tuple[int, int, str]]:
    """key kind -> (keys, total MEMORY USAGE, encodings seen)."""
    count: dict[str, int] = defaultdict(int)
    size: dict[str, int] = defaultdict(int)
    enc: dict[str, set[str]] = defaultdict(set)
    for key in r.scan_iter(f"{prefix}:*", count=5000):
        parts = key.decode().split(":")
        kind = parts[2] if len(parts) > 2 else parts[-1]
        count[kind] += 1
        size[kind] += r.memory_usage(key, samples=0) or 0
        enc[kind].add(r.object("encoding", key).decode())
    return {k: (count[k], size[k], ",".join(sorted(enc[k]))) for k in sorted(count)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k products, 20k deliveries")
    ap.add_argument("--products", type=int, help="(50000; quick 10000)")
    ap.add_argument("--deliveries", type=int, help="(100000; quick 20000)")
    args = ap.parse_args()
    install_cleanup()
    url = redis_url()
    r = redis.Redis.from_url(url)
    state = State(r, new_prefix("bm"))  # as short as the default `psync`
    prefix = state.keys.prefix
    n = args.products or (10_000 if args.quick else 50_000)
    d = args.deliveries or (20_000 if args.quick else 100_000)
    print(
        f"memory bench: Redis {url} ({r.info('server')['redis_version']}), code "
        f"{commit()}, {n} products, {d} deliveries of known products"
    )

    rng = random.Random(7)
    t0 = time.time()

    v0 = 1_767_268_800_000_000
    docs = [
        normalize(product(FIRST_ID + i, rng), str(FIRST_ID + i)) for i in range(min(n, 200))
    ]  # normalizing dominates; reuse 200 distinct docs

    def ingest(i: int, version: int, eid: str) -> None:
        ev = Event(
            store=STORE,
            platform="shopify",
            topic="products/update",
            product_id=str(FIRST_ID + i),
            version=version,
            kind="upsert",
            dedupe_key=eid,
            product=docs[i % len(docs)],
        )
        state.record(ev, time.time(), keep_raw=False)

    def sync(i: int, outcome: str = "written") -> None:
        claim = state.claim(STORE, str(FIRST_ID + i), uuid.uuid4().hex, 60)
        assert not isinstance(claim, str), claim
        state.complete(STORE, str(FIRST_ID + i), claim, HASH, outcome)

    m0 = used(r)
    for i in range(n):
        ingest(i, v0, f"e-{i}-0")
    m1 = used(r)
    pending_kinds = by_kind(r, prefix)
    for i in range(n):
        sync(i)
    m2 = used(r)
    synced_kinds = by_kind(r, prefix)
    # deliveries of known products: 9 in 10 a newer version with the same content (skipped),
    # 1 in 10 a redelivery of the one before (a duplicate, or stale where not remembered)
    last: dict[int, str] = {}
    for j in range(d):
        i = rng.randrange(n)
        if j % 10 == 9 and i in last:
            ingest(i, v0, last[i])
            continue
        eid = f"e-{i}-{j + 1}"
        ingest(i, v0 + j + 1, eid)
        last[i] = eid
        sync(i, "skipped_unchanged")
    m3 = used(r)
    delivered_kinds = by_kind(r, prefix)
    led = state.ledger(STORE)

    print(f"  per pending product: {(m1 - m0) / n:8.1f} bytes (used_memory delta over {n})")
    print(f"  per synced product:  {(m2 - m0) / n:8.1f} bytes (target <= 80)")
    print(
        f"  per delivery:        {(m3 - m2) / d:8.1f} bytes, amortized over {d} deliveries "
        f"of known products (target <= 10)"
    )
    print(
        f"  ledger: received={led['received']} written={led['written']} "
        f"skipped_unchanged={led['skipped_unchanged']} duplicates={led['duplicates']} "
        f"stale={led['stale']} pending={led['pending']}"
    )
    for title, kinds in (
        ("pending", pending_kinds),
        ("synced", synced_kinds),
        ("after the deliveries", delivered_kinds),
    ):
        print(f"  keys when {title}:")
        for kind, (count, size, enc) in kinds.items():
            print(
                f"    {kind:>8}: {count:7d} keys, MEMORY USAGE {size:11d} bytes "
                f"({size / n:7.1f} per product) [{enc}]"
            )
    print(f"  (total {time.time() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
