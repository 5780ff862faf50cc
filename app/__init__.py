"""personyze-sync: keep a Personyze product catalog equal to a store's catalog.

`create_app()` is the WSGI factory (gunicorn `app:create_app()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from app import runtime
from app.config import Settings
from app.logging_setup import configure_logging
from app.observability import init_sentry

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def create_app(settings: Settings | None = None) -> Flask:
    rt = runtime.build(settings)
    configure_logging(rt.settings.log_level)
    sentry = init_sentry(rt.settings, "web")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = rt.settings.max_body_bytes
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from app.web import EXTENSION, admin, health, metrics, webhooks

    app.extensions[EXTENSION] = rt

    for bp in (health.bp, metrics.bp, admin.bp):
        app.register_blueprint(bp)
    hooks: WSGIApplication = webhooks.WebhookApp(rt)
    if sentry:
        from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

        hooks = SentryWsgiMiddleware(hooks)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/webhooks": hooks})  # type: ignore[method-assign]

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> ResponseReturnValue:
        # JSON errors with our own wording; 413 for bodies over MAX_BODY_BYTES comes here.
        return jsonify(status=e.name.lower().replace(" ", "_"), error=e.description), e.code or 500

    return app
