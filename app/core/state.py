"""The Redis-held truth about every (store, product): pending, synced, due, ledger, DLQ.

Celery messages are only wake-ups (docs/design.md). Every transition of a product's state is one
Lua script in `lua/`, so a crash between two Redis calls can never leave half a transition,
and two workers or two web processes can never interleave inside one.

Per store, keys share the hash tag `{store}`. What stays per product is small and lives in
bucket hashes that Redis keeps in its compact listpack encoding; everything else exists only
while the product needs it (docs/design.md, Memory):
    S:<n>       bucket hash, field = product id: the synced record (kind, version, content
                hash; kept after a delete as the tombstone) and the ids of the product's latest
                deliveries (duplicates are told from stale events by them); lua/_record.lua
    P:<id>      hash, only while pending or dead-lettered: pv/pk/pd/pt pending version, kind,
                doc, received-at; att/ff/errs attempts, first failure time, error history;
                dv dead version
    cool:<id>   expiring mark: a fresh write holds back the next one (burst coalescing)
    lease:<id>  the short claim a worker holds while it works on the product
    due         sorted set: product id -> when it may next be woken
    woken       sorted set: product id -> when its wake-up was published (until claimed)
    ledger      hash of counters (docs/design.md invariant 8)
    dlq         hash: product id -> dead-letter entry (json)
"""

from __future__ import annotations

import functools
import hashlib
import struct
import time
import zlib
from dataclasses import dataclass
from enum import IntEnum
from importlib import resources
from typing import Any

import orjson
import redis
from redis.commands.core import Script

from app.core.mapping import DELETED_HASH
from app.core.model import CODE_KINDS, KIND_CODES, Event
from app.core.redisconn import ThreadScript, text

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
# Subscription repairs per platform, counted in the store's stats hash (workers/subscriptions.py)
REPAIRS_FIELD = "subscription_repairs:"
LEDGER_FIELDS = (
    "received",
    "ignored",
    "duplicates",
    "stale",
    "coalesced",
    "skipped_unchanged",
    "written",
    "dead",
    "pending",
)


# Buckets of synced records per store: enough that each bucket stays within Redis's default
# hash-max-listpack-entries, so records keep the compact listpack encoding (docs/design.md,
# Memory). Changing it needs `personyze-sync migrate` with everything stopped (a
# process on the old count would look in the wrong bucket).
BUCKETS = 1024
# Scripts that read or write the packed synced record (or use its clock) get lua/_record.lua.
_RECORD_USERS = frozenset({"ingest", "claim", "complete", "migrate", "sweep"})


def _ledger_of(raw: dict[bytes | str, bytes | str]) -> dict[str, int]:
    """A ledger hash as read, every field present (0 when never counted)."""
    got = {text(key): int(v) for key, v in raw.items()}
    return {f: got.get(f, 0) for f in LEDGER_FIELDS}


def repairs_of(stats: dict[str, float]) -> dict[str, int]:
    """Subscription repairs by platform, out of a store's `State.stats`."""
    return {
        k.removeprefix(REPAIRS_FIELD): int(v)
        for k, v in stats.items()
        if k.startswith(REPAIRS_FIELD)
    }


@functools.cache
def lua_source(name: str) -> str:
    """A script's source (with the record helpers it uses), read from the package once."""
    lua = resources.files("app.core").joinpath("lua")
    src = lua.joinpath(f"{name}.lua").read_text()
    if name in _RECORD_USERS:
        src = lua.joinpath("_record.lua").read_text() + src
    return src


def delivery_digest(dedupe_key: str) -> bytes:
    """6 bytes per delivery id, kept in the product's record: two ids of one product collide
    with odds of 2^-48, and a collision would only count a new delivery as a duplicate."""
    return hashlib.blake2b(dedupe_key.encode(), digest_size=6).digest()


def bucket_of(pid: str, buckets: int = BUCKETS) -> int:
    return zlib.crc32(pid.encode()) % buckets


def _script(r: redis.Redis, name: str) -> Script:
    """Register a Lua script once; redis-py runs it by EVALSHA and reloads it after a flush."""
    return r.register_script(lua_source(name))


class Recorded(IntEnum):
    DUPLICATE = 0
    STALE = 1
    ACCEPTED_WAKE = 2
    ACCEPTED = 3


@dataclass(slots=True)
class Claim:
    """What a worker learned when it took the lease on a product."""

    token: str
    version: int
    kind: str
    doc: bytes
    synced_hash: str
    attempts: int
    first_failure: float | None
    errors: list[dict[str, Any]]
    received_at: float | None


class Keys:
    """Key names; the store id in braces keeps one store's keys in one cluster slot."""

    def __init__(self, prefix: str, buckets: int = BUCKETS) -> None:
        self.prefix = prefix
        self.buckets = buckets
        self.kick = f"{prefix}:kick"

    def _s(self, store: str) -> str:
        return f"{self.prefix}:{{{store}}}"

    def product(self, store: str, pid: str) -> str:
        return f"{self._s(store)}:P:{pid}"

    def lease(self, store: str, pid: str) -> str:
        return f"{self._s(store)}:lease:{pid}"

    def due(self, store: str) -> str:
        return f"{self._s(store)}:due"

    def ledger(self, store: str) -> str:
        return f"{self._s(store)}:ledger"

    def dlq(self, store: str) -> str:
        return f"{self._s(store)}:dlq"

    def stats(self, store: str) -> str:
        return f"{self._s(store)}:stats"

    def lock(self, store: str, job: str) -> str:
        """A periodic job's once-per-interval lock (workers/periodic.py)."""
        return f"{self._s(store)}:{job}-lock"

    def checked(self, store: str) -> str:
        """Shopify webhook rows already checked against the Admin API (workers/sync.py)."""
        return f"{self._s(store)}:checked"

    def recent(self, store: str) -> str:
        return f"{self._s(store)}:recent"

    def writes_per_minute(self, store: str) -> str:
        return f"{self._s(store)}:wpm"

    def record(self, store: str, pid: str) -> str:
        """The bucket hash holding the product's synced record."""
        return f"{self._s(store)}:S:{bucket_of(pid, self.buckets)}"

    def cool(self, store: str, pid: str) -> str:
        return f"{self._s(store)}:cool:{pid}"

    def woken(self, store: str) -> str:
        return f"{self._s(store)}:woken"

    def account(self, account: str, what: str) -> str:
        return f"{self.prefix}:acct:{{{account}}}:{what}"


class State:
    """The state machine's operations; each is one atomic Redis round trip."""

    def __init__(
        self,
        r: redis.Redis,
        prefix: str,
        *,
        wake_from_web: bool = False,
        cooldown: float = 0.0,
    ) -> None:
        self.r = r
        self.cooldown = cooldown
        self.keys = Keys(prefix)
        self.wake_from_web = wake_from_web
        self._ingest = ThreadScript(r, lua_source("ingest"))  # the webhook path
        self._ignore = _script(r, "ignore")
        self._claim = _script(r, "claim")
        self._complete = _script(r, "complete")
        self._release = _script(r, "release")
        self._dead = _script(r, "dead")
        self._replay = _script(r, "replay")
        self._sweep = _script(r, "sweep")
        self._migrate = _script(r, "migrate")

    @property
    def kick_flag(self) -> str:
        """Whether transitions nudge the dispatcher (it publishes the Celery wake-ups)."""
        return "0" if self.wake_from_web else "1"

    # -- web side ---------------------------------------------------------------------------

    def record(
        self, ev: Event, received_at: float | None = None, keep_raw: bool = True
    ) -> Recorded:
        """Dedupe, version-check and store one event (docs/design.md invariants 1-3)."""
        k = self.keys
        if ev.kind == "upsert" and ev.product:
            doc = ev.product.to_json(keep_raw)
        else:  # a refresh remembers which store API to fetch from
            doc = ev.platform.encode() if ev.kind == "refresh" else b""
        res = self._ingest(
            keys=[
                k.record(ev.store, ev.product_id),
                k.product(ev.store, ev.product_id),
                k.due(ev.store),
                k.ledger(ev.store),
                k.dlq(ev.store),
                k.kick,
                k.woken(ev.store),
                k.cool(ev.store, ev.product_id),
            ],
            args=[
                delivery_digest(ev.dedupe_key),
                ev.version,
                KIND_CODES[ev.kind],
                doc,
                f"{received_at or time.time():.6f}",
                "1" if self.wake_from_web else "0",
                ev.product_id,
                ev.store,
                self.kick_flag,
                "1" if ev.settle else "0",
            ],
        )
        return Recorded(int(res))

    def ignore(self, store: str) -> None:
        self._ignore(keys=[self.keys.ledger(store)])

    # -- worker side ------------------------------------------------------------------------

    def claim(self, store: str, pid: str, token: str, lease_seconds: float) -> Claim | str:
        k = self.keys
        res = self._claim(
            keys=[
                k.product(store, pid),
                k.lease(store, pid),
                k.due(store),
                k.record(store, pid),
                k.woken(store),
                k.cool(store, pid),
            ],
            args=[token, int(lease_seconds * 1000), pid],
        )
        status: str = res[0].decode()
        if status != "ok":
            return status
        pv, pk, pd, _sv, sh, att, ff, errs, pt = res[1:]
        return Claim(
            token=token,
            version=int(pv),
            kind=CODE_KINDS[pk.decode()],
            doc=pd,
            synced_hash=sh.decode(),
            attempts=int(att),
            first_failure=float(ff) if ff else None,
            errors=orjson.loads(errs) if errs else [],
            received_at=float(pt) if pt else None,
        )

    def complete(
        self,
        store: str,
        pid: str,
        claim: Claim,
        content_hash: str,
        outcome: str,
        failures_key: str = "",
    ) -> bool:
        """Record the synced state. Returns True when a newer version is already waiting."""
        assert outcome in ("written", "skipped_unchanged")
        k = self.keys
        res = self._complete(
            keys=[
                k.product(store, pid),
                k.lease(store, pid),
                k.due(store),
                k.ledger(store),
                k.kick,
                failures_key,
                k.record(store, pid),
                k.cool(store, pid),
            ],
            args=[
                claim.token,
                claim.version,
                _raw_hash(content_hash),
                "d" if content_hash == DELETED_HASH else "u",
                outcome,
                pid,
                store,
                self.kick_flag,
                f"{self.cooldown:.6f}",
            ],
        )
        return int(res) == 1

    def release(
        self,
        store: str,
        pid: str,
        claim: Claim,
        delay: float,
        errors: list[dict[str, Any]] | None = None,
    ) -> float:
        """Reschedule `delay` s from now; with `errors`, it counts as a failed attempt."""
        k = self.keys
        res = self._release(
            keys=[k.product(store, pid), k.lease(store, pid), k.due(store)],
            args=[
                claim.token,
                claim.version,
                f"{max(0.0, delay):.6f}",
                pid,
                "1" if errors is not None else "0",
                orjson.dumps(errors or []),
            ],
        )
        return float(res)

    def dead_letter(self, store: str, pid: str, claim: Claim, errors: list[dict[str, Any]]) -> str:
        """Move to the DLQ: "dead", or "superseded" (a newer version arrived meanwhile), or
        "lease_lost" (another worker owns the key now)."""
        k = self.keys
        entry = orjson.dumps(
            {
                "version": str(claim.version),
                "kind": KIND_CODES[claim.kind],
                "doc": claim.doc.decode(),
                "received_at": f"{claim.received_at or 0:.6f}",
                "dead_at": time.time(),
                "errors": errors,
            }
        )
        res = self._dead(
            keys=[
                k.product(store, pid),
                k.lease(store, pid),
                k.due(store),
                k.ledger(store),
                k.dlq(store),
            ],
            args=[claim.token, claim.version, entry, pid],
        )
        return ("dead", "superseded", "lease_lost")[int(res)]

    # -- dispatcher / sweeper ---------------------------------------------------------------

    def sweep(
        self, store: str, limit: int, grace: float, queued: int
    ) -> tuple[list[str], float | None]:
        """Due keys to wake now (each handed to one sweeper only, never one whose wake-up is
        still outstanding) and seconds to the next; first, keys whose wake-up is older than the
        `queued` messages the broker holds and than `grace` are taken as lost and due again."""
        k = self.keys
        res = self._sweep(keys=[k.due(store), k.woken(store)], args=[limit, grace, queued])
        nxt = float(res[0])
        return [x.decode() for x in res[1:]], (None if nxt < 0 else nxt)

    def wait_kick(self, timeout: float) -> str | None:
        """Block until an ingest says a store has a newly due key (or `timeout` passes)."""
        res = self.r.blpop([self.keys.kick], timeout=max(0.01, timeout))
        if res:
            # Drain what is queued: the sweep that follows covers every key kicked so far.
            self.r.lpop(self.keys.kick, 1000)
        return text(res[1]) if res else None

    # -- operator side ----------------------------------------------------------------------

    def drain_kicks(self) -> None:
        self.r.lpop(self.keys.kick, 1000)

    def note_call(
        self,
        store: str,
        outcome: str,
        latency: float | None,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Count a Personyze call by outcome and, for a write, the time since its webhook was
        received (a histogram kept in Redis, so every worker feeds the same /metrics). With
        `pipe`, the commands join the caller's pipeline (one round trip for a write's notes)."""
        key = self.keys.stats(store)
        own = pipe is None
        p = self.r.pipeline(transaction=False) if pipe is None else pipe
        p.hincrby(key, f"calls:{outcome}", 1)
        if latency is not None:
            bucket = next((b for b in LATENCY_BUCKETS if latency <= b), "inf")
            p.hincrby(key, f"le:{bucket}", 1)
            p.hincrbyfloat(key, "lat_sum", latency)
        if own:
            p.execute()

    def stats(self, store: str) -> dict[str, float]:
        return {text(k): float(v) for k, v in self.r.hgetall(self.keys.stats(store)).items()}

    def note_repairs(self, store: str, platform: str, n: int) -> None:
        """Subscriptions the scheduler re-created or re-enabled (read back by `repairs_of`)."""
        self.r.hincrby(self.keys.stats(store), REPAIRS_FIELD + platform, n)

    def ledger(self, store: str) -> dict[str, int]:
        return _ledger_of(self.r.hgetall(self.keys.ledger(store)))

    def status(self, store: str) -> dict[str, Any]:
        """What `personyze-sync status`, /admin and /metrics show for a store: one pipelined
        round trip."""
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(k.ledger(store))
        pipe.zcard(k.due(store))
        pipe.zcard(k.woken(store))
        pipe.zrange(k.due(store), 0, 0, withscores=True)
        pipe.zrange(k.woken(store), 0, 0, withscores=True)
        pipe.hlen(k.dlq(store))
        raw, due, woken, first_due, first_woken, dlq = pipe.execute()
        led = _ledger_of(raw)
        return {
            "ledger": led,
            "balance": ledger_balance(led),
            "due": int(due) + int(woken),
            "backlog_age_seconds": round(_age(first_due, first_woken), 3),
            "dlq": int(dlq),
        }

    def due_count(self, store: str) -> int:
        """Keys waiting for a worker: due, or woken and not claimed yet."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zcard(self.keys.due(store))
        pipe.zcard(self.keys.woken(store))
        return sum(int(n) for n in pipe.execute())

    def dlq_ids(self, store: str) -> list[str]:
        return [text(pid) for pid in self.r.hkeys(self.keys.dlq(store))]

    def dlq_list(self, store: str) -> dict[str, dict[str, Any]]:
        raw = self.r.hgetall(self.keys.dlq(store))
        return {text(pid): orjson.loads(v) for pid, v in raw.items()}

    def dlq_page(self, store: str, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Up to `limit` dead letters, newest first, without their product documents (HSCAN:
        a DLQ of 10k entries is not read whole, as the admin page shows only a page)."""
        out = []
        for pid, raw in self.r.hscan_iter(self.keys.dlq(store), count=limit):
            entry = orjson.loads(raw)
            entry.pop("doc", None)
            out.append((text(pid), entry))
            if len(out) >= limit:
                break
        return sorted(out, key=lambda x: -float(x[1].get("dead_at", 0)))

    def dlq_replay(self, store: str, pid: str) -> str:
        """ "replayed", "superseded" (a newer version is already pending) or "missing"."""
        k = self.keys
        res = self._replay(
            keys=[k.product(store, pid), k.due(store), k.ledger(store), k.dlq(store), k.kick],
            args=[pid, store, self.kick_flag],
        )
        return ("missing", "replayed", "superseded")[int(res)]

    def dlq_purge(self, store: str, pid: str) -> bool:
        """Forget a dead entry; the ledger keeps counting it as dead (it was not synced)."""
        return bool(self.r.hdel(self.keys.dlq(store), pid))

    def woken_count(self, store: str) -> int:
        """Wake-ups published and not yet claimed."""
        return int(self.r.zcard(self.keys.woken(store)))

    # -- layout migration -------------------------------------------------------------------

    def migrate(self, store: str, refile: bool = False) -> dict[str, int]:
        """Fold state of the pre-bucket layout into the bucketed records (only products that
        still have a per-product hash: cheap, the scheduler does it at start); with `refile`
        (`personyze-sync migrate` only: it reads every record) also re-file records whose
        bucket changed. One script per product, so it is safe while everything runs."""
        k = self.keys
        base = _glob_escape(k._s(store))
        folded = moved = 0
        for key in self.r.scan_iter(f"{base}:P:*", count=1000):
            pid = text(key).split(":P:", 1)[1]
            folded += int(self._migrate(keys=[key, k.record(store, pid)], args=["fold", pid]))
        for key in self.r.scan_iter(f"{base}:S:*", count=1000) if refile else ():
            for field, _ in self.r.hscan_iter(key, count=1000):
                pid = text(field)
                target = k.record(store, pid)
                if target != text(key):
                    moved += int(self._migrate(keys=[key, target], args=["move", pid]))
        return {"folded": folded, "moved": moved}

    # -- one product, decoded (tests and operators) -----------------------------------------

    def product(self, store: str, pid: str) -> ProductState:
        """Everything Redis holds about one product, decoded, in one pipelined round trip.

        What a test asserts (or an operator debugging one product wants to see), without
        reading the pending hash's field names or the packed record of lua/_record.lua: those
        are the storage layout, free to change with a migration; what the state means is not."""
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(k.product(store, pid))
        pipe.hget(k.record(store, pid), pid)
        pipe.hexists(k.dlq(store), pid)
        pipe.zscore(k.due(store), pid)
        pipe.zscore(k.woken(store), pid)
        pipe.exists(k.lease(store, pid))
        pipe.pttl(k.cool(store, pid))
        raw, rec, dead, due, woken, leased, cool_ms = pipe.execute()
        h: dict[str, bytes] = {key.decode(): v for key, v in raw.items()}
        synced_kind, synced_version, synced_hash, deliveries = _decode_record(rec)
        if synced_kind is None and "sv" in h:  # synced before the bucketed records (migrate)
            synced_version = _version(h["sv"])
            legacy_hash = h.get("sh", b"").decode()
            deleted = legacy_hash == DELETED_HASH or h.get("sk") == b"d"
            synced_kind = "delete" if deleted else "upsert"
            synced_hash = DELETED_HASH if deleted else legacy_hash
        return ProductState(
            pending_version=_version(h["pv"]) if "pv" in h else None,
            pending_kind=CODE_KINDS[h["pk"].decode()] if "pk" in h else None,
            pending_doc=h.get("pd"),
            received_at=float(h["pt"]) if h.get("pt") else None,
            attempts=int(h.get("att", b"0")),
            first_failure=float(h["ff"]) if h.get("ff") else None,
            errors=tuple(orjson.loads(h["errs"])) if h.get("errs") else (),
            dead_version=_version(h["dv"]) if "dv" in h else None,
            dead_lettered=bool(dead),
            synced_version=synced_version,
            synced_kind=synced_kind,
            synced_hash=synced_hash,
            deliveries=deliveries,
            due_at=float(due) if due is not None else None,
            woken_at=float(woken) if woken is not None else None,
            leased=bool(leased),
            cooldown_left=max(0, int(cool_ms)) / 1000,
        )


@dataclass(frozen=True, slots=True)
class ProductState:
    """One product's state as `State.product` reads it: what is pending, what was synced,
    whether it waits (due), is in a worker's hands (woken, leased) or is dead-lettered.

    A product nobody has sent is all None, False and 0; one that is synced and not pending
    has only the synced fields (its pending hash is gone, docs/design.md, Memory)."""

    pending_version: int | None  # integer microseconds (docs/design.md invariant 2)
    pending_kind: str | None  # "upsert", "delete" or "refresh" (fetch from the store's API)
    pending_doc: bytes | None  # an upsert's normalized product (Product.from_json)
    received_at: float | None  # when the pending version's webhook arrived (epoch s)
    attempts: int  # failed attempts of the pending version
    first_failure: float | None
    errors: tuple[dict[str, Any], ...]  # each failed attempt's time and error
    dead_version: int | None  # the version that was dead-lettered, until superseded
    dead_lettered: bool  # an entry in the store's dead-letter hash
    synced_version: int | None
    synced_kind: str | None  # "upsert", or "delete": the tombstone
    synced_hash: str | None  # the written row's content hash (hex), DELETED_HASH if deleted
    deliveries: int  # delivery ids remembered to tell duplicates (at most the latest 3)
    due_at: float | None  # when it may next be woken (Redis clock, epoch s)
    woken_at: float | None  # when its outstanding wake-up was published
    leased: bool  # a worker holds the claim
    cooldown_left: float  # seconds its burst cooldown still holds it back

    @property
    def pending(self) -> bool:
        return self.pending_version is not None

    @property
    def tombstone(self) -> bool:
        """Deleted at its synced version: an older update must not bring it back."""
        return self.synced_kind == "delete"

    @property
    def unknown(self) -> bool:
        """Redis holds nothing about it: never received (or refused before it was recorded)."""
        return self == _UNKNOWN


_UNKNOWN = ProductState(
    pending_version=None,
    pending_kind=None,
    pending_doc=None,
    received_at=None,
    attempts=0,
    first_failure=None,
    errors=(),
    dead_version=None,
    dead_lettered=False,
    synced_version=None,
    synced_kind=None,
    synced_hash=None,
    deliveries=0,
    due_at=None,
    woken_at=None,
    leased=False,
    cooldown_left=0.0,
)


# Layout of a synced record: lua/_record.lua.
_RECORD_KINDS = {b"u": "upsert", b"d": "delete"}
_DIGEST_BYTES = 6


def _version(raw: bytes) -> int:
    """A version as Lua wrote it (integer microseconds, possibly in a float's notation)."""
    return int(float(raw))


def _decode_record(rec: bytes | None) -> tuple[str | None, int | None, str | None, int]:
    """(synced kind, version, content hash, delivery ids kept) of a packed record."""
    if not rec:
        return None, None, None, 0
    kind = _RECORD_KINDS.get(rec[:1])
    (version,) = struct.unpack(">d", rec[1:9])
    ring = rec[25:] if kind == "upsert" else rec[9:]
    if kind is None:
        return None, None, None, len(ring) // _DIGEST_BYTES
    content = rec[9:25].hex() if kind == "upsert" else DELETED_HASH
    return kind, int(version), content, len(ring) // _DIGEST_BYTES


def _raw_hash(content_hash: str) -> bytes:
    """The 16 bytes the record keeps of a row hash (mapping.row_hash: 32 hex digits)."""
    if content_hash == DELETED_HASH:
        return b""
    try:
        raw = bytes.fromhex(content_hash)
    except ValueError:
        raw = b""
    if len(raw) != 16:  # not a row_hash; still a stable 16-byte stand-in for it
        raw = hashlib.blake2b(content_hash.encode(), digest_size=16).digest()
    return raw


def _glob_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


def _age(*firsts: list[tuple[bytes, float]]) -> float:
    """Seconds since the oldest of the sorted sets' first entries (ZRANGE 0 0 WITHSCORES)."""
    scores = [f[0][1] for f in firsts if f]
    return max(0.0, time.time() - min(scores)) if scores else 0.0


def ledger_balance(ledger: dict[str, int]) -> int:
    """received minus every outcome; 0 when nothing was lost or counted twice."""
    return ledger["received"] - sum(ledger[f] for f in LEDGER_FIELDS if f != "received")
