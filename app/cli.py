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
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.config import SHOPIFY_API_VERSION, ConfigError, Settings, load_settings
from app.core.activity import duration

if TYPE_CHECKING:
    from app.runtime import Runtime


def _runtime() -> Runtime:
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

        if settings.redis_url and not redisconn.answers(
            settings.redis_url, timeout=3, tls_verify=settings.redis_tls_verify
        ):
            problems.append(f"REDIS_URL {redisconn.describe(settings.redis_url)} does not answer")
        if not problems:
            problems += _check_accounts(settings)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    if not problems:
        print(f"ok: {len(settings.stores)} store(s) configured")
    return 1 if problems else 0


def _check_accounts(settings: Settings) -> list[str]:
    from app.personyze import PersonyzeError

    out = []
    for store in settings.stores.values():
        if not store.personyze.api_key:
            continue
        with store.personyze.client() as client:
            try:
                client.account()
            except PersonyzeError as e:
                out.append(
                    f"store {store.id!r}: Personyze rejected the credentials check: "
                    f"{type(e).__name__}"
                )
    return out


def cmd_status(args: argparse.Namespace) -> int:
    """A table per store for people; `--json` for scripts (what /admin/status answers)."""
    from app.core import activity

    rt = _runtime()
    views = {sid: activity.overview(rt.state, s) for sid, s in rt.settings.stores.items()}
    if args.json:
        print(json.dumps(views, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for sid, v in views.items():
        t = Table(title=f"store {sid}", title_justify="left", show_header=False)
        t.add_column("what", style="bold")
        t.add_column("value", justify="right")
        pause = v["pause"]
        t.add_row("due products", str(v["due"]))
        t.add_row("backlog age", duration(v["backlog_age_seconds"]))
        t.add_row("writes / minute", str(v["writes_per_minute"]))
        t.add_row("dead letters", f"[red]{v['dlq']}[/]" if v["dlq"] else "0")
        t.add_row(
            "Personyze account",
            f"[red]paused {duration(pause['remaining_seconds'])}[/] ({pause['reason']})"
            if pause["paused"]
            else "[green]writing[/]",
        )
        t.add_section()
        for k, n in v["ledger"].items():
            t.add_row(f"ledger {k}", str(n))
        t.add_row(
            "ledger balance", str(v["balance"]) if v["balance"] == 0 else f"[red]{v['balance']}[/]"
        )
        console.print(t)
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    rt = _runtime()
    stores = [args.store] if args.store else list(rt.settings.stores)
    table = None
    if args.action == "list" and not args.json:
        from rich.table import Table

        table = Table(
            "store",
            "product",
            "attempts",
            "dead for",
            "last error",
            title="dead letters",
            title_justify="left",
        )
    for sid in stores:
        if sid not in rt.settings.stores:
            print(f"unknown store {sid!r}", file=sys.stderr)
            return 2
        pids = args.ids or rt.state.dlq_ids(sid)
        if args.action == "list":
            entries = rt.state.dlq_list(sid)
            for pid, e in sorted(entries.items(), key=lambda x: -float(x[1].get("dead_at", 0))):
                last = e["errors"][-1]["error"] if e.get("errors") else ""
                if table is None:
                    print(
                        json.dumps(
                            {
                                "store": sid,
                                "product": pid,
                                "attempts": len(e["errors"]),
                                "last_error": last,
                            }
                        )
                    )
                else:
                    table.add_row(
                        sid,
                        pid,
                        str(len(e["errors"])),
                        duration(time.time() - float(e.get("dead_at", 0))),
                        last,
                    )
        elif args.action == "replay":
            outcomes = [rt.state.dlq_replay(sid, p) for p in pids]
            print(
                f"{sid}: replayed {outcomes.count('replayed')}, superseded by a newer "
                f"version {outcomes.count('superseded')}"
            )
        else:
            n = sum(rt.state.dlq_purge(sid, p) for p in pids)
            print(f"{sid}: purged {n}")
    if table is not None:
        from rich.console import Console

        Console().print(table)
    return 0


def cmd_resync(args: argparse.Namespace) -> int:
    """Backfill: read the store's whole catalog through its API and sync what differs."""
    from app.personyze import PersonyzeError
    from app.platforms.catalog import has_catalog_api
    from app.platforms.fetch import StoreFetchError
    from workers.reconcile import BacklogStalled, reconcile

    rt = _runtime()
    stores = [args.store] if args.store else list(rt.settings.stores)
    rc = 0
    for sid in stores:
        store = rt.settings.stores.get(sid)
        if store is None or not has_catalog_api(store):
            print(
                f"{sid}: no store API configured (SHOPIFY_ADMIN_TOKEN, WOOCOMMERCE_CONSUMER_"
                "KEY/SECRET or BIGCOMMERCE_STORE_HASH/ACCESS_TOKEN)",
                file=sys.stderr,
            )
            rc = 2
            continue
        with ResyncProgress(rt, sid, tty=sys.stdout.isatty()) as progress:
            try:
                counts = reconcile(
                    rt, sid, delete_missing=args.delete_missing, progress=progress.update
                )
            except (StoreFetchError, PersonyzeError, BacklogStalled) as e:  # no secrets in these
                print(f"{sid}: {e}", file=sys.stderr)
                rc = 1
                continue
            if args.wait:
                progress.follow_writes()
        print(f"{sid}: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return rc


class ResyncProgress:
    """What a resync is doing: products read from the store, ingested (newer than what
    Personyze has, so queued), written by the workers since the start, and the time the
    rest takes at the account's rate limit. A rich progress bar on a terminal, a plain line
    every few seconds otherwise (logs, CI)."""

    PLAIN_EVERY_SECONDS = 5.0
    LEDGER_EVERY_SECONDS = 0.5
    FINISHED = ("written", "skipped_unchanged", "dead", "coalesced")

    def __init__(self, rt: Runtime, sid: str, tty: bool) -> None:
        self.rt, self.sid, self.tty = rt, sid, tty
        self.rate = rt.settings.stores[sid].personyze.rate_limit
        self.start = rt.state.ledger(sid)
        self.read = self.ingested = self.written = self.finished = self.pending = 0
        self._ledger_at = self._plain_at = 0.0
        self._listed = False
        self._bar: Any = None

    def __enter__(self) -> ResyncProgress:
        if self.tty:
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            # The bar pulses while the store is listed (its size is unknown), then fills
            # with the writes of what was ingested (--wait).
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[line]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.sid, total=None, line="")
        return self

    def __exit__(self, *exc: object) -> None:
        self._show(force=True)
        if self._bar is not None:
            self._bar.stop()

    def eta(self) -> float:
        return max(0, self.ingested - self.finished) / self.rate

    def line(self) -> str:
        return (
            f"read={self.read} ingested={self.ingested} written={self.written} "
            f"eta={duration(self.eta())} at {self.rate:g}/s"
        )

    def update(self, counts: Any) -> None:
        """reconcile()'s progress callback: the running counts of the listing."""
        self.read = sum(v for k, v in counts.items() if k != "listed")
        self.ingested = counts.get("accepted", 0) + counts.get("accepted_wake", 0)
        self._show()

    def _refresh_ledger(self) -> None:
        led = self.rt.state.ledger(self.sid)
        self.pending = led["pending"]
        self.written = led["written"] - self.start["written"]
        self.finished = sum(led[k] - self.start[k] for k in self.FINISHED)

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._ledger_at >= self.LEDGER_EVERY_SECONDS:
            self._ledger_at = now
            self._refresh_ledger()
        if self._bar is not None:
            self._bar.update(
                self._task,
                line=self.line(),
                completed=self.finished,
                total=max(1, self.ingested) if self._listed else None,
            )
        elif force or now - self._plain_at >= self.PLAIN_EVERY_SECONDS:
            self._plain_at = now
            print(f"{self.sid}: {self.line()}", flush=True)

    def follow_writes(self) -> None:
        """--wait: keep showing progress until the workers have finished what was queued."""
        self._listed = True
        while True:
            self._show(force=True)
            if self.finished >= self.ingested or (
                self.pending == 0 and self.rt.state.due_count(self.sid) == 0
            ):
                return
            time.sleep(self.LEDGER_EVERY_SECONDS)


def cmd_connect(args: argparse.Namespace) -> int:
    """Register and repair the store's product webhook subscriptions; `--check` only reports.
    Exit 0 when all is connected (or was repaired), 1 on a store API error or (with --check)
    a missing or disabled subscription, 2 on configuration problems."""
    import redis

    from app.config import check_public_url
    from app.platforms.subscriptions import connect_store, describe
    from workers.subscriptions import public_url, record_public_url

    rt = _runtime()
    try:
        url = check_public_url(args.url, "--url") if args.url else public_url(rt)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    except redis.RedisError as e:
        url = None
        print(f"Redis unavailable ({type(e).__name__}): pass --url", file=sys.stderr)
    if not url:
        print("no public URL: pass --url https://PUBLIC_BASE (or set PUBLIC_URL)", file=sys.stderr)
        return 2
    rc = 0
    for sid in [args.store] if args.store else list(rt.settings.stores):
        store = rt.settings.stores.get(sid)
        if store is None:
            print(f"unknown store {sid!r}", file=sys.stderr)
            rc = 2
            continue
        outcomes = connect_store(rt.settings, store, url, check_only=args.check)
        if not outcomes:
            print(
                f"{sid}: no platform webhook secret configured, nothing to connect", file=sys.stderr
            )
            rc = max(rc, 2)
        for o in outcomes:
            if o.error:
                print(f"{sid} {o.platform}: error: {o.error}", file=sys.stderr)
                rc = max(rc, 1)
            elif o.problem:
                print(f"{sid} {o.platform}: {o.problem}", file=sys.stderr)
                rc = max(rc, 2)
            elif o.plan is not None:
                print(f"{sid} {o.platform} -> {o.url}: {describe(o.plan, check_only=args.check)}")
                if args.check and not o.plan.ok:
                    rc = max(rc, 1)
    if not args.check and args.url:
        try:
            record_public_url(rt, url)
        except redis.RedisError as e:
            print(
                f"could not record the URL in Redis ({type(e).__name__}): set PUBLIC_URL so "
                "the scheduler keeps the subscriptions repaired",
                file=sys.stderr,
            )
    return rc


def cmd_scheduler(args: argparse.Namespace) -> int:
    import signal
    import threading

    import redis

    from app.logging_setup import configure_logging
    from app.observability import SchedulerPulse, init_sentry
    from workers.dispatch import Dispatcher
    from workers.reconcile import run_periodic
    from workers.subscriptions import run_periodic as keep_subscriptions

    rt = _runtime()
    configure_logging(rt.settings.log_level)
    init_sentry(rt.settings, "scheduler")  # crashes, and the Crons check-ins below
    try:  # state of an older version, if any (read as it is until then)
        for sid in rt.settings.stores:
            rt.state.migrate(sid)
    except redis.RedisError as e:
        print(f"migration skipped, Redis unavailable: {type(e).__name__}", file=sys.stderr)
    d = Dispatcher(rt)
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    threading.Thread(
        target=run_periodic, args=(rt, d.stop_event), daemon=True, name="reconcile"
    ).start()
    threading.Thread(
        target=keep_subscriptions, args=(rt, d.stop_event), daemon=True, name="subscriptions"
    ).start()
    with contextlib.suppress(KeyboardInterrupt):
        d.run(on_turn=SchedulerPulse(rt.redis, rt.settings.key_prefix))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring Redis state written by an older version to the current layout (the scheduler
    also does it when it starts); safe to run while everything runs, and to repeat."""
    rt = _runtime()
    for sid in rt.settings.stores:
        got = rt.state.migrate(sid, refile=True)
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
            {
                "id": 808950810,
                "sku": "IPOD2008PINK",
                "price": price,
                "compare_at_price": None,
                "inventory_quantity": 10,
                "inventory_policy": "deny",
            },  # 2024-07+ shape
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
        "X-Shopify-API-Version": SHOPIFY_API_VERSION,
    }


def cmd_send_sample(args: argparse.Namespace) -> int:
    import requests

    from app.devserver import DEV_SHOP_DOMAIN, DEV_SHOPIFY_SECRET

    secret = args.secret or os.environ.get("SHOPIFY_WEBHOOK_SECRET", DEV_SHOPIFY_SECRET)
    secret = secret.split(",")[0]
    shop = args.shop or os.environ.get("SHOPIFY_SHOP_DOMAIN", DEV_SHOP_DOMAIN)
    if args.topic == "products/delete":
        payload: dict[str, Any] = {"id": args.product_id}
    else:
        payload = sample_product(args.product_id, args.price)
    body = json.dumps(payload).encode()
    resp = requests.post(
        f"{args.url.rstrip('/')}/webhooks/shopify",
        data=body,
        headers=shopify_headers(body, secret, args.topic, shop),
        timeout=10,
    )
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
    s.add_argument(
        "--topic",
        default="products/update",
        choices=["products/create", "products/update", "products/delete"],
    )
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
    st.add_argument("--json", action="store_true", help="JSON for scripts (default: tables)")
    st.set_defaults(func=cmd_status)

    q = sub.add_parser("dlq", help="dead letters: list, replay or purge")
    q.add_argument("action", choices=["list", "replay", "purge"])
    q.add_argument("ids", nargs="*", help="product ids (default: all)")
    q.add_argument("--store", help="default: every store")
    q.add_argument("--json", action="store_true", help="list: JSON lines (default: a table)")
    q.set_defaults(func=cmd_dlq)

    r = sub.add_parser("resync", help="backfill: read the store catalog, sync what differs")
    r.add_argument("--store", help="default: every store")
    r.add_argument(
        "--delete-missing",
        action="store_true",
        help="also delete Personyze rows whose internal_id the store does not list",
    )
    r.add_argument(
        "--wait",
        action="store_true",
        help="show progress until the workers have written what was queued",
    )
    r.set_defaults(func=cmd_resync)

    cn = sub.add_parser("connect", help="register and repair the store's webhook subscriptions")
    cn.add_argument(
        "--url",
        help="the service's public base, e.g. https://sync.example.com "
        "(default: PUBLIC_URL, else the URL the last connect used)",
    )
    cn.add_argument("--store", help="default: every store")
    cn.add_argument(
        "--check",
        action="store_true",
        help="only report; exit 1 if a subscription is missing or disabled",
    )
    cn.set_defaults(func=cmd_connect)

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
