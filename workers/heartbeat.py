"""A file the worker touches every few seconds, for an exec liveness probe.

`celery inspect ping` is the usual probe but costs a broker round trip, times out on busy
workers and restarts every worker while Redis is down; a file touched by the worker's own
timer only says what a liveness probe should: the worker's event loop still turns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import bootsteps

INTERVAL_SECONDS = 10.0


class Heartbeat(bootsteps.StartStopStep):
    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.path = Path(os.environ.get("WORKER_HEARTBEAT_FILE", ""))
        self.tref = None

    def include_if(self, worker: Any) -> bool:
        return bool(os.environ.get("WORKER_HEARTBEAT_FILE"))

    def start(self, worker: Any) -> None:
        self.beat()
        self.tref = worker.timer.call_repeatedly(INTERVAL_SECONDS, self.beat, priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
        self.path.unlink(missing_ok=True)

    def beat(self) -> None:
        self.path.touch()
