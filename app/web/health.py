"""Probes: /healthz says the process serves, /readyz that Redis answers (so a replica that
cannot record events is taken out of the load balancer instead of answering 503s)."""

from __future__ import annotations

import redis
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.web import current_runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    try:
        current_runtime().redis.ping()
    except redis.RedisError:
        return jsonify(status="redis unavailable"), 503
    return jsonify(status="ready")
