"""Celery tasks. `sync_product` is a wake-up for one key: the truth is in Redis."""

from __future__ import annotations

from celery import Celery

from workers.sync import Syncer


def register(app: Celery) -> None:
    from workers.celery_app import SYNC_TASK, BoundTask

    syncer: dict[str, Syncer] = {}

    @app.task(name=SYNC_TASK, base=BoundTask, acks_late=True, ignore_result=True, shared=False)
    def sync_product(store: str, product_id: str) -> str:
        if "s" not in syncer:  # one per worker process (after fork: its own connections)
            rt = app.runtime  # type: ignore[attr-defined]
            syncer["s"] = Syncer(rt.settings, rt.state)
        return syncer["s"].run(store, product_id)
