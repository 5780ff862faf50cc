"""The HTTP side: the webhook receiver (a bare WSGI app, the hot path) and the Flask
blueprints for probes, metrics and the admin page."""

from __future__ import annotations

from flask import current_app

from app.runtime import Runtime

EXTENSION = "personyze_sync"


def current_runtime() -> Runtime:
    """The runtime `create_app()` put on the Flask app serving this request."""
    rt: Runtime = current_app.extensions[EXTENSION]
    return rt
