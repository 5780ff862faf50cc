"""Operator endpoints behind `Authorization: Bearer $ADMIN_TOKEN`: status, DLQ, resync.
Without ADMIN_TOKEN they are off (404), never open."""

from __future__ import annotations

import hmac

from flask import Blueprint, abort, current_app, jsonify, request

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _auth() -> None:
    token = current_app.extensions["personyze_sync"].settings.admin_token
    if token is None or not token.get_secret_value():
        abort(404)  # an empty ADMIN_TOKEN must not mean "no password"
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        abort(401)


def _store(store: str):
    rt = current_app.extensions["personyze_sync"]
    if store not in rt.settings.stores:
        abort(404, description="unknown store")
    return rt


@bp.get("/status")
def status():
    rt = current_app.extensions["personyze_sync"]
    return jsonify({sid: rt.state.status(sid) for sid in rt.settings.stores})


@bp.get("/dlq/<store>")
def dlq_list(store: str):
    return jsonify(_store(store).state.dlq_list(store))


@bp.post("/dlq/<store>/<any(replay, purge):action>")
@bp.post("/dlq/<store>/<pid>/<any(replay, purge):action>")
def dlq_act(store: str, action: str, pid: str | None = None):
    """Replay (back to pending, fresh retry budget) or purge one entry, or all of them."""
    rt = _store(store)
    pids = [pid] if pid else list(rt.state.dlq_list(store))
    if action == "purge":
        return jsonify(purged=[p for p in pids if rt.state.dlq_purge(store, p)])
    outcomes = {p: rt.state.dlq_replay(store, p) for p in pids}
    return jsonify(replayed=[p for p, o in outcomes.items() if o == "replayed"],
                   superseded=[p for p, o in outcomes.items() if o == "superseded"])
