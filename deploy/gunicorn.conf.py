"""gunicorn settings shared by the Procfile, the Dockerfile and `make run`.

Threads per process (gthread) because a webhook spends its time waiting on one Redis round
trip; processes for the CPU part (HMAC, JSON)."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
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
