"""Celery tasks, declared once for any app that includes this module (the worker app of
workers/celery_app.py, a test's own). `sync_product` is a wake-up for one key: the truth is
in Redis, so the task only says which key to look at."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable
from weakref import WeakKeyDictionary

import redis
import structlog
from celery import Celery, Task, shared_task

from app.runtime import Runtime
from app.wakeups import SYNC_TASK
from workers.sync import Syncer


@runtime_checkable
class RuntimeApp(Protocol):
    """What a task needs of its app: the per-process runtime (workers/celery_app.py)."""

    @property
    def runtime(self) -> Runtime: ...


class BoundTask(Task[Any, Any]):
    """Binds the task's identity into every log line (warehouse's WarehouseTask idea)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        structlog.contextvars.bind_contextvars(task_id=self.request.id, task=self.name)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            structlog.contextvars.clear_contextvars()

    @property
    def runtime(self) -> Runtime:
        app = self.app
        if not isinstance(app, RuntimeApp):
            raise TypeError(f"{self.name} runs on an app with a runtime (workers/celery_app.py)")
        return app.runtime


# One Syncer per app and process: built by the first task a process runs (after the fork, so
# with its own connections).
_syncers: WeakKeyDictionary[Celery, Syncer] = WeakKeyDictionary()


# A Redis error is infrastructure, not a bug: the key is retried after its lease, so it is
# `throws` (logged without a traceback, and not a Sentry event: docs/design.md, Failures where
# operators look).
@shared_task(
    name=SYNC_TASK,
    base=BoundTask,
    bind=True,
    acks_late=True,
    ignore_result=True,
    throws=(redis.RedisError,),
)
def sync_product(task: BoundTask, store: str, product_id: str) -> str:
    syncer = _syncers.get(task.app)
    if syncer is None:
        rt = task.runtime
        syncer = _syncers[task.app] = Syncer(rt.settings, rt.state)
    return syncer.run(store, product_id)
