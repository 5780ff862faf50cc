"""`make run` (= `personyze-sync dev`): everything starts on embedded defaults, a signed
sample webhook lands in the sandbox, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import requests

from app.core.redisconn import free_port
from tests.servers import CLI, eventually


def descendants(pid: int) -> set[int]:
    """Every process whose ancestry leads to `pid`, read from /proc (no psutil needed)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        kids = {c for c, p in parents.items() if p in frontier}
        frontier = kids - out
        out |= kids
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_dev_runs_everything_and_ctrl_c_stops_it(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_URL", "PERSONYZE_", "SHOPIFY_", "STORES_FILE"))
    }
    log = open(tmp_path / "dev.log", "w+")  # noqa: SIM115 - the child writes to it until the end
    proc = subprocess.Popen(
        [CLI, "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        banner = eventually(
            lambda: (
                "Ctrl-C stops everything" in Path(log.name).read_text()
                and Path(log.name).read_text()
            ),
            timeout=60,
        )
        assert f"http://127.0.0.1:{port}" in banner
        command = re.search(r"personyze-sync send-sample --url \S+", banner).group(0)
        children = descendants(proc.pid)
        assert len(children) >= 5  # redis, sandbox, gunicorn, celery, scheduler
        assert requests.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        sent = subprocess.run(
            [CLI, *command.split()[1:]],
            env=dict(env, SHOPIFY_WEBHOOK_SECRET="dev-shopify-secret"),
            capture_output=True,
            text=True,
        )
        assert sent.stdout.startswith("200"), sent.stdout + sent.stderr
        redis_url = re.search(r"REDIS_URL=(\S+)", banner).group(1)

        def written():
            out = subprocess.run(
                [CLI, "status", "--json"],
                env=dict(env, REDIS_URL=redis_url),
                capture_output=True,
                text=True,
            ).stdout
            return '"written": 1' in out

        eventually(written, timeout=30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        eventually(lambda: not any(alive(p) for p in children), timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in descendants(proc.pid):
            os.kill(p, signal.SIGKILL)
        log.close()
