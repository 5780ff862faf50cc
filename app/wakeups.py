"""The wake-up message: what the web process (WAKE_FROM_WEB) and the scheduler's dispatcher
publish so a worker syncs one key (docs/design.md, Wake-ups and the dispatcher).

A message carries only the key; what to write is read from Redis when it runs, so a lost or
repeated message costs time, never an update. Publishing needs no worker code: the task is
named, not imported, and this module is what the web and the dispatcher share."""

from __future__ import annotations

from celery import Celery

from app.broker import broker_config
from app.config import Settings

# The task's name on the wire: workers of the previous release consume it too, so it stays.
SYNC_TASK = "personyze_sync.sync_product"


class Waker:
    """Publishes wake-ups through a send-only Celery app on the sync queue's broker."""

    def __init__(self, settings: Settings, broker_url: str) -> None:
        self.queue = settings.sync_queue
        self.celery: Celery = Celery("personyze_sync", set_as_current=False)
        self.celery.config_from_object(broker_config(settings, broker_url))

    def publish(self, store: str, pid: str) -> None:
        """Wake `store`'s product `pid`: the key is the whole message."""
        self.celery.send_task(SYNC_TASK, args=[store, pid], queue=self.queue)
