"""Probes: /healthz says the process serves, /readyz that Redis answers (so a replica that
cannot record events is taken out of the load balancer instead of answering 503s)."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    try:
        current_app.extensions["personyze_sync"].redis.ping()
    except redis.RedisError:
        return jsonify(status="redis unavailable"), 503
    return jsonify(status="ready")
