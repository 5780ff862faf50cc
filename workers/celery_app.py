"""The Celery app (`workers.celery_app:celery`), configured for loss tolerance.

Messages are wake-ups only, so the settings aim at "a lost or repeated message costs a little
time, never an update": late acks, redelivery when a worker dies, one message prefetched,
JSON only, and a soft shutdown that fits the 30 s Heroku and Kubernetes give on SIGTERM."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from app import runtime as runtime_mod
from app.core.redisconn import tls_options
from app.runtime import Runtime
from workers.broker import TRANSPORT as BROKER_TRANSPORT

SYNC_TASK = "personyze_sync.sync_product"


def make_celery(rt: Runtime) -> Celery:
    app = Celery("personyze_sync", set_as_current=False)
    broker = rt.broker_url
    conf: dict[str, Any] = {
        "broker_url": broker,
        # kombu's Redis transport with the fix that lets a worker outlive a Redis restart
        "broker_transport": BROKER_TRANSPORT,
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": rt.settings.sync_queue,
        # The lease outlives the hard limit (checked by Settings): a task never writes after
        # its product was handed to another worker.
        "task_soft_time_limit": rt.settings.task_soft_time_limit_seconds,
        "task_time_limit": rt.settings.task_time_limit_seconds,
        # Longer than any task can run, so a slow task is not redelivered while it runs.
        "broker_transport_options": {"visibility_timeout": 3600},
        "worker_soft_shutdown_timeout": 25.0,
        "worker_enable_soft_shutdown_on_idle": False,
        "broker_connection_retry_on_startup": True,
        # A Redis restart: tasks running when the broker connection drops are cancelled
        # (their products are retried after the lease) instead of finishing into a consumer
        # being rebuilt, where their time-limit timers fired late at other tasks' processes
        # and a corrupted result pipe killed the worker (tests/test_redis_restart.py).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }
    if broker.startswith("rediss://"):
        # The certificate is checked unless REDIS_TLS_VERIFY=false (Heroku's self-signed ones).
        conf["broker_use_ssl"] = tls_options(rt.settings.redis_tls_verify)
    app.conf.update(conf)
    app.runtime = rt  # type: ignore[attr-defined]

    from workers.heartbeat import Heartbeat
    from workers.tasks import register

    register(app)
    app.steps["worker"].add(Heartbeat)
    return app


def __getattr__(name: str) -> Any:
    """`celery` is built on first use, from the environment, so importing this module in a
    test or a tool does not read settings or connect anywhere."""
    if name == "celery":
        global celery
        celery = make_celery(runtime_mod.build())
        from app.logging_setup import configure_logging
        from app.observability import init_sentry

        configure_logging(celery.runtime.settings.log_level)
        init_sentry(celery.runtime.settings, "worker")
        return celery
    raise AttributeError(name)


class BoundTask(Task):
    """Binds the task's identity into every log line (warehouse's WarehouseTask idea)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import structlog

        structlog.contextvars.bind_contextvars(task_id=self.request.id, task=self.name)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            structlog.contextvars.clear_contextvars()
