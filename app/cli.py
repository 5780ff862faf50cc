"""`personyze-sync` command line: run the pieces, check configuration, operate the queues."""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from app.config import ConfigError, load_settings

DEV_SHOPIFY_SECRET = "dev-shopify-secret"
DEV_SHOP_DOMAIN = "dev-shop.myshopify.com"


def _runtime():
    from app import runtime

    return runtime.build()


def cmd_check(args: argparse.Namespace) -> int:
    """Release phase: refuse to deploy a configuration that cannot sync."""
    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    problems = settings.problems(need_api_key=not args.allow_sandbox)
    if not args.offline:
        from app.core import redisconn

        if settings.redis_url and not redisconn.answers(settings.redis_url, timeout=3):
            problems.append(f"REDIS_URL {redisconn.describe(settings.redis_url)} does not answer")
        if not problems:
            problems += _check_accounts(settings)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    if not problems:
        print(f"ok: {len(settings.stores)} store(s) configured")
    return 1 if problems else 0


def _check_accounts(settings) -> list[str]:
    from app.personyze import PersonyzeError

    out = []
    for store in settings.stores.values():
        if not store.personyze.api_key:
            continue
        with store.personyze.client() as client:
            try:
                client.account()
            except PersonyzeError as e:
                out.append(f"store {store.id!r}: Personyze rejected the credentials check: "
                           f"{type(e).__name__}")
    return out


def cmd_status(args: argparse.Namespace) -> int:
    rt = _runtime()
    print(json.dumps({sid: rt.state.status(sid) for sid in rt.settings.stores}, indent=2))
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    rt = _runtime()
    stores = [args.store] if args.store else list(rt.settings.stores)
    for sid in stores:
        if sid not in rt.settings.stores:
            print(f"unknown store {sid!r}", file=sys.stderr)
            return 2
        entries = rt.state.dlq_list(sid)
        pids = args.ids or list(entries)
        if args.action == "list":
            for pid, e in entries.items():
                last = e["errors"][-1]["error"] if e.get("errors") else ""
                print(json.dumps({"store": sid, "product": pid, "attempts": len(e["errors"]),
                                  "last_error": last}))
        elif args.action == "replay":
            outcomes = [rt.state.dlq_replay(sid, p) for p in pids]
            print(f"{sid}: replayed {outcomes.count('replayed')}, superseded by a newer "
                  f"version {outcomes.count('superseded')}")
        else:
            n = sum(rt.state.dlq_purge(sid, p) for p in pids)
            print(f"{sid}: purged {n}")
    return 0


def cmd_resync(args: argparse.Namespace) -> int:
    """Backfill: read the store's whole catalog through its API and sync what differs."""
    from app.platforms.catalog import has_catalog_api
    from app.platforms.fetch import StoreFetchError
    from workers.reconcile import reconcile

    rt = _runtime()
    stores = [args.store] if args.store else list(rt.settings.stores)
    rc = 0
    for sid in stores:
        store = rt.settings.stores.get(sid)
        if store is None or not has_catalog_api(store):
            print(f"{sid}: no store API configured (SHOPIFY_ADMIN_TOKEN, WOOCOMMERCE_CONSUMER_"
                  "KEY/SECRET or BIGCOMMERCE_STORE_HASH/ACCESS_TOKEN)", file=sys.stderr)
            rc = 2
            continue
        try:
            counts = reconcile(rt, sid, delete_missing=args.delete_missing)
        except StoreFetchError as e:
            print(f"{sid}: {e}", file=sys.stderr)
            rc = 1
            continue
        print(f"{sid}: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return rc


def cmd_scheduler(args: argparse.Namespace) -> int:
    import signal
    import threading

    import redis

    from workers.celery_app import celery
    from workers.dispatch import Dispatcher
    from workers.reconcile import run_periodic

    try:  # state of an older version, if any (read as it is until then)
        for sid in celery.runtime.settings.stores:
            celery.runtime.state.migrate(sid)
    except redis.RedisError as e:
        print(f"migration skipped, Redis unavailable: {type(e).__name__}", file=sys.stderr)
    d = Dispatcher(celery.runtime, celery)
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    threading.Thread(target=run_periodic, args=(celery.runtime, d.stop_event),
                     daemon=True, name="reconcile").start()
    with contextlib.suppress(KeyboardInterrupt):
        d.run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring Redis state written by an older version to the current layout (the scheduler
    also does it when it starts); safe to run while everything runs, and to repeat."""
    rt = _runtime()
    for sid in rt.settings.stores:
        got = rt.state.migrate(sid)
        print(f"store {sid}: folded {got['folded']} products, re-filed {got['moved']} records")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox.server import run

    return run(args)


def sample_product(product_id: int = 632910392, price: str = "199.00") -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return {
        "id": product_id,
        "title": "IPod Nano - 8GB",
        "body_html": "<p>It's the small iPod with <strong>one</strong> very big idea.</p>",
        "vendor": "Apple",
        "product_type": "Cult Products",
        "handle": "ipod-nano",
        "status": "active",
        "updated_at": now,
        "variants": [
            {"id": 808950810, "sku": "IPOD2008PINK", "price": price, "compare_at_price": None,
             "inventory_quantity": 10, "inventory_management": "shopify",
             "inventory_policy": "deny"},
        ],
        "images": [{"id": 850703190, "src": "https://cdn.shopify.com/s/files/ipod-nano.png"}],
    }


def shopify_headers(body: bytes, secret: str, topic: str, shop: str) -> dict[str, str]:
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sig,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "X-Shopify-API-Version": "2025-01",
    }


def cmd_send_sample(args: argparse.Namespace) -> int:
    import requests

    secret = args.secret or os.environ.get("SHOPIFY_WEBHOOK_SECRET", DEV_SHOPIFY_SECRET)
    secret = secret.split(",")[0]
    shop = args.shop or os.environ.get("SHOPIFY_SHOP_DOMAIN", DEV_SHOP_DOMAIN)
    if args.topic == "products/delete":
        payload: dict[str, Any] = {"id": args.product_id}
    else:
        payload = sample_product(args.product_id, args.price)
    body = json.dumps(payload).encode()
    resp = requests.post(f"{args.url.rstrip('/')}/webhooks/shopify", data=body,
                         headers=shopify_headers(body, secret, args.topic, shop), timeout=10)
    print(f"{resp.status_code} {resp.text.strip()}")
    return 0 if resp.ok else 1


def cmd_dev(args: argparse.Namespace) -> int:
    from app.devserver import run_dev

    return run_dev(args.port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="personyze-sync", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dev", help="start everything on embedded defaults (make run)")
    d.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    d.set_defaults(func=cmd_dev)

    from sandbox.server import add_arguments as sandbox_arguments

    s = sub.add_parser("sandbox", help="run the local Personyze emulator (fault injection)")
    sandbox_arguments(s)
    s.set_defaults(func=cmd_sandbox)

    s = sub.add_parser("send-sample", help="send a signed sample Shopify product webhook")
    s.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")
    s.add_argument("--topic", default="products/update",
                   choices=["products/create", "products/update", "products/delete"])
    s.add_argument("--product-id", type=int, default=632910392)
    s.add_argument("--price", default="199.00")
    s.add_argument("--secret", help="default: $SHOPIFY_WEBHOOK_SECRET or the dev secret")
    s.add_argument("--shop", help="default: $SHOPIFY_SHOP_DOMAIN or the dev shop")
    s.set_defaults(func=cmd_send_sample)

    c = sub.add_parser("check", help="validate configuration and credentials (release phase)")
    c.add_argument("--offline", action="store_true", help="do not contact Redis or Personyze")
    c.add_argument("--allow-sandbox", action="store_true", help="a missing API key is fine")
    c.set_defaults(func=cmd_check)

    st = sub.add_parser("status", help="ledger, backlog and dead letters per store")
    st.set_defaults(func=cmd_status)

    q = sub.add_parser("dlq", help="dead letters: list, replay or purge")
    q.add_argument("action", choices=["list", "replay", "purge"])
    q.add_argument("ids", nargs="*", help="product ids (default: all)")
    q.add_argument("--store", help="default: every store")
    q.set_defaults(func=cmd_dlq)

    r = sub.add_parser("resync", help="backfill: read the store catalog, sync what differs")
    r.add_argument("--store", help="default: every store")
    r.add_argument("--delete-missing", action="store_true",
                   help="also delete Personyze rows whose internal_id the store does not list")
    r.set_defaults(func=cmd_resync)

    sc = sub.add_parser("scheduler", help="the sweeper/dispatcher process (Procfile scheduler)")
    sc.set_defaults(func=cmd_scheduler)

    m = sub.add_parser("migrate", help="bring Redis state of an older version to this layout")
    m.set_defaults(func=cmd_migrate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

