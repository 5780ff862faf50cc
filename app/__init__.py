"""personyze-sync: keep a Personyze product catalog equal to a store's catalog.

`create_app()` is the WSGI factory (gunicorn `app:create_app()`).
"""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app import runtime
from app.config import Settings
from app.logging_setup import configure_logging
from app.observability import init_sentry


def create_app(settings: Settings | None = None) -> Flask:
    rt = runtime.build(settings)
    configure_logging(rt.settings.log_level)
    init_sentry(rt.settings, "web")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = rt.settings.max_body_bytes
    app.extensions["personyze_sync"] = rt

    from app.web import admin, health, metrics, webhooks

    for bp in (webhooks.bp, health.bp, metrics.bp, admin.bp):
        app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        # JSON errors with our own wording; 413 for bodies over MAX_BODY_BYTES comes here.
        return jsonify(status=e.name.lower().replace(" ", "_"), error=e.description), e.code

    return app
