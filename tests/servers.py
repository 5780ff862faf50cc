"""Real servers for tests: the Procfile's processes (gunicorn, celery worker, scheduler)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from app.core.redisconn import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def working(celery, concurrency: int = 4):
    """A real Celery worker (threads pool) on `celery`'s queue while the block runs."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(
        celery,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        shutdown_timeout=15,
        loglevel="WARNING",
    ) as w:
        yield w


@contextlib.contextmanager
def dispatching(rt):
    """The scheduler's dispatcher loop for `rt`, in a thread, while the block runs (yielded:
    its `woken` counts the wake-ups it published)."""
    from workers.dispatch import Dispatcher

    d = Dispatcher(rt)
    loop = threading.Thread(target=d.run, daemon=True)
    loop.start()
    try:
        yield d
    finally:
        d.stop()
        loop.join(10)


@contextlib.contextmanager
def syncing(rt, concurrency: int = 4, dispatcher: bool = True):
    """The sync side for `rt` while the block runs: a worker and, unless `dispatcher` is
    False, the dispatcher (yielded; None without it)."""
    from workers.celery_app import make_celery

    with contextlib.ExitStack() as stack:
        d = stack.enter_context(dispatching(rt)) if dispatcher else None
        stack.enter_context(working(make_celery(rt), concurrency))
        yield d


@contextlib.contextmanager
def peak(measure, interval: float = 0.005):
    """The largest value `measure()` gave while the block ran, sampled in a thread; read it
    as `got[0]` after the block."""
    got, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            got[0] = max(got[0], measure())
            done.wait(interval)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield got
    finally:
        done.set()
        t.join(5)


# A developer's or CI's own store, Personyze and Sentry settings: never inherited by a test's
# settings or children (a test must not send to a real store, account or Sentry project).
AMBIENT_PREFIXES = ("SHOPIFY_", "PERSONYZE_", "WOOCOMMERCE_", "BIGCOMMERCE_", "STANDARD_")
AMBIENT_NAMES = ("STORES_FILE", "SENTRY_DSN", "STOREFRONT_DOMAIN", "PUBLIC_URL")


def ambient(name: str) -> bool:
    return name.startswith(AMBIENT_PREFIXES) or name in AMBIENT_NAMES


def settings_env(settings) -> dict[str, str]:
    """The environment that reproduces a Settings object in a child process."""
    env = {k: v for k, v in os.environ.items() if not ambient(k)}
    for name, value in settings.model_dump().items():
        if value is None or name in ("stores",):
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    return env


class Gunicorn:
    def __init__(
        self, env: dict[str, str], app: str = "app:create_app()", workers: int = 2, threads: int = 4
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(env, WEB_CONCURRENCY=str(workers), WEB_THREADS=str(threads))
        self.proc = subprocess.Popen(
            [
                bin_path("gunicorn"),
                "-c",
                "deploy/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{self.port}",
                app,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        end = time.time() + 20
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                requests.get(self.url + "/healthz", timeout=0.5)
                return
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def bin_path(name: str) -> str:
    """A console script of this virtualenv (gunicorn, celery, personyze-sync)."""
    return str(Path(sys.executable).parent / name)


CLI = bin_path("personyze-sync")


class Process:
    """A Procfile process in its own process group (so a test can SIGKILL the whole pool at
    once), its output kept in `log` for the failure message (discarded without one)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path | None = None) -> None:
        self.log = log
        self._out = open(log, "wb") if log else None  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._out or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._out else subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log else ""

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._out:
            self._out.close()


class CeleryWorkers(Process):
    """`celery worker` with the Procfile's flags (its REMAP_SIGTERM aside: a test stops the
    workers warm, after the products it waits for are settled)."""

    def __init__(
        self,
        env: dict[str, str],
        concurrency: int = 4,
        loglevel: str = "WARNING",
        log: Path | None = None,
    ) -> None:
        args = ["-A", "workers.celery_app:celery", "worker", "--loglevel", loglevel]
        args += ["--concurrency", str(concurrency), "--without-gossip", "--without-mingle"]
        super().__init__([bin_path("celery"), *args], env, log)


def eventually(check, timeout: float = 20.0, interval: float = 0.05):
    """Poll until `check()` is truthy; return its value (fails the test on timeout)."""
    end = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > end:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        time.sleep(interval)
