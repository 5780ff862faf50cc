"""The floor for bench/ingest.py: a bare Flask app on the same gunicorn config whose one POST
route reads the body and answers 200. Served as `gunicorn bench.bare_app:create_app()`."""

from __future__ import annotations

from flask import Flask, Response, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/shopify")
    def shopify() -> Response:
        request.get_data()
        return Response(b'{"status":"ok"}', status=200, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b"ok", status=200)

    return app
