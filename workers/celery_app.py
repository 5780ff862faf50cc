"""The worker's Celery app (`workers.celery_app:celery`), configured for loss tolerance.

Messages are wake-ups only, so the settings aim at "a lost or repeated message costs a little
time, never an update": late acks, redelivery when a worker dies, one message prefetched,
JSON only, and a soft shutdown that fits the 30 s Heroku and Kubernetes give on SIGTERM.

This is the one place the worker app is built. Its configuration comes from the runtime when
Celery first reads `conf`, so importing this module reads no settings and connects nowhere."""

from __future__ import annotations

from typing import Any

from celery import Celery

import workers.tasks  # noqa: F401 - declares the tasks (shared) this app runs
from app import runtime as runtime_mod
from app.broker import broker_config
from app.logging_setup import configure_logging
from app.observability import init_sentry
from app.runtime import Runtime
from workers.heartbeat import Heartbeat


def worker_config(rt: Runtime) -> dict[str, Any]:
    """The broker connection (app/broker.py, shared with the publishers) and how the worker
    consumes."""
    s = rt.settings
    return broker_config(s, rt.broker_url) | {
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # The lease outlives the hard limit (checked by Settings): a task never writes after
        # its product was handed to another worker.
        "task_soft_time_limit": s.task_soft_time_limit_seconds,
        "task_time_limit": s.task_time_limit_seconds,
        "worker_soft_shutdown_timeout": 25.0,
        "worker_enable_soft_shutdown_on_idle": False,
        # A Redis restart: tasks running when the broker connection drops are cancelled
        # (their products are retried after the lease) instead of finishing into a consumer
        # being rebuilt, where their time-limit timers fired late at other tasks' processes
        # and a corrupted result pipe killed the worker (tests/test_redis_restart.py).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


class WorkerCelery(Celery):
    """A Celery app on a `Runtime`: the one given (tests), else one built from the
    environment the first time it is needed (the `celery worker` process)."""

    def __init__(self, rt: Runtime | None = None) -> None:
        super().__init__("personyze_sync", set_as_current=False)
        self._runtime = rt
        # Celery evaluates a callable default when `conf` is first read, so building the app
        # reads nothing, and a configuration that cannot be built fails that first use.
        self.add_defaults(lambda: worker_config(self.runtime))
        self.steps["worker"].add(Heartbeat)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            rt = runtime_mod.build()
            configure_logging(rt.settings.log_level)
            init_sentry(rt.settings, "worker")
            self._runtime = rt
        return self._runtime


def make_celery(rt: Runtime | None = None) -> WorkerCelery:
    """The worker app on `rt` (Flask's `celery_init_app` idea), or on the environment's
    runtime when `rt` is None."""
    return WorkerCelery(rt)


celery = make_celery()
