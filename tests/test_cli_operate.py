"""The CLI for people: `status` and `dlq list` tables, `resync` progress on a terminal (a real
pty) and plain lines otherwise, each run as the installed `personyze-sync` command."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess

import pytest

from tests.fake_shopify import gql_product
from tests.servers import CLI, ROOT, settings_env
from tests.support import dead_letters


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [CLI, *args],
        env=dict(env, COLUMNS="160"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p


def run_on_tty(args: list[str], env: dict[str, str]) -> str:
    """Run with stdout on a pseudo-terminal, as a person's shell would; return what it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [CLI, *args],
        env=dict(env, COLUMNS="160", TERM="xterm"),
        cwd=ROOT,
        stdout=slave,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(120) == 0, proc.stderr.read().decode()
    os.close(master)
    return out.decode(errors="replace")


@pytest.fixture
def dead_two(sync_settings, sandbox, rt):
    dead_letters(rt, sandbox, "1", "2")
    return settings_env(sync_settings)


def test_status_is_a_table_per_store_and_json_for_scripts(dead_two):
    table = run(["status"], dead_two).stdout
    assert "store default" in table
    assert re.search(r"dead letters\s*│\s*2", table)
    assert re.search(r"ledger balance\s*│\s*0", table)
    assert re.search(r"Personyze account\s*│\s*writing", table)
    data = json.loads(run(["status", "--json"], dead_two).stdout)
    assert data["default"]["dlq"] == 2 and data["default"]["pause"]["paused"] is False
    assert data["default"]["writes_per_minute"] == 0


def test_dlq_list_is_a_table_with_the_last_error(dead_two):
    out = run(["dlq", "list"], dead_two).stdout
    rows = [line for line in out.splitlines() if re.match(r"│ default\s*│", line)]
    assert len(rows) == 2 and all("PersonyzeBadRequest" in r for r in rows)
    assert {re.split(r"\s*│\s*", r)[2] for r in rows} == {"1", "2"}


@pytest.fixture
def resync_env(shop, shop_settings):
    for i in range(1, 31):
        shop.products[i] = gql_product(i, at=f"2026-01-01T00:00:{i:02d}Z", title=f"p{i}")
    settings = shop_settings()
    return settings_env(settings)


def test_resync_prints_plain_progress_lines_when_not_a_terminal(resync_env):
    out = run(["resync"], resync_env).stdout
    lines = out.splitlines()
    assert re.fullmatch(r"default: read=30 ingested=30 written=0 eta=\d+ s at 1000/s", lines[-2])
    assert "\x1b[" not in out  # no terminal codes in logs
    assert lines[-1].startswith("default: ") and "listed=30" in lines[-1]


def test_resync_draws_a_progress_bar_on_a_terminal(resync_env, rt, worker, dispatcher):
    out = run_on_tty(["resync", "--wait"], resync_env)
    assert "\x1b[" in out and "━" in out  # a live bar, drawn with terminal control codes
    assert re.search(r"read=30 ingested=30 written=30 eta=0 s at 1000/s", out)
    assert "listed=30" in out
    # --wait returned only once the workers had written everything queued
    assert rt.state.ledger("default")["written"] == 30
