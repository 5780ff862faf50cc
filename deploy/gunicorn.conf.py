"""gunicorn settings shared by the Procfile, the Dockerfile and `make run`.

Sync workers, 2 x cores + 1 of them: a webhook is a little CPU around one short Redis round
trip, and with threads (gthread) every request pays for GIL hand-offs around that round trip:
less throughput and a longer tail (docs/design.md has the figures and the benchmark). Sync
workers want a proxy in front that buffers requests (Heroku's router, ingress-nginx);
WEB_WORKER_CLASS=gthread and WEB_THREADS switch back where that is not so."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
threads = int(os.environ.get("WEB_THREADS", "1"))
keepalive = 5
timeout = 30
graceful_timeout = 25
accesslog = None
preload_app = False


def on_starting(server):
    """Prometheus counters live per process; with several workers they must be aggregated
    through a shared directory, or each scrape shows one random worker's counts."""
    import tempfile

    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="psync-prom-")
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
