"""Operators' surface: an HTML page at /admin for people, JSON endpoints for scripts.

Without ADMIN_TOKEN it is off (404), never open. Scripts send `Authorization: Bearer
$ADMIN_TOKEN`. People log in through a form that sets a session cookie (HttpOnly,
SameSite=Strict, Secure over https) holding a MAC of its issue time keyed by the token, never
the token itself; changing ADMIN_TOKEN logs everyone out. A POST authenticated by that
cookie must also carry a CSRF token derived from the session (and, when the browser sends
one, an Origin of this host): SameSite=Strict alone leaves same-site subdomains able to post.

Product ids may hold `/` (Standard Webhooks ids, SKUs): the id is one percent-encoded path
segment, and the route takes everything between the store and the action."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from app.core import activity
from app.runtime import Runtime
from app.web import current_runtime

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
bp.add_app_template_filter(activity.duration, "duration")
COOKIE = "psync_admin"
SESSION_SECONDS = 12 * 3600
DLQ_SHOWN = 100
RECENT_SHOWN = 15


def _token() -> bytes:
    token = current_runtime().settings.admin_token
    if token is None or not token.get_secret_value():
        abort(404)  # an empty ADMIN_TOKEN must not mean "no password"
    return token.get_secret_value().encode()


def _mac(purpose: str, value: str) -> str:
    return hmac.new(_token(), f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()


def _session_ok(cookie: str) -> bool:
    issued, _, mac = cookie.partition(".")
    if not issued.isdigit() or not hmac.compare_digest(mac, _mac("session", issued)):
        return False
    return 0 <= time.time() - int(issued) < SESSION_SECONDS


def csrf_token() -> str:
    return _mac("csrf", request.cookies.get(COOKIE, ""))


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


@bp.before_request
def _auth() -> Any:
    token = _token()
    g.admin_by = None
    bearer = request.headers.get("Authorization", "")
    if bearer:
        given = bearer.removeprefix("Bearer ").strip().encode()
        if not hmac.compare_digest(given, token):
            abort(401)
        g.admin_by = "bearer"
        return None
    if request.endpoint in ("admin.login", "admin.static"):
        return None
    if _session_ok(request.cookies.get(COOKIE, "")):
        g.admin_by = "cookie"
        if request.method == "POST" and not (
            hmac.compare_digest(request.form.get("csrf", ""), csrf_token()) and _same_origin()
        ):
            abort(403, description="missing or wrong CSRF token")
        return None
    if request.method == "GET" and request.endpoint == "admin.page":
        return redirect(url_for("admin.login"), 303)
    abort(401)


@bp.after_request
def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if resp.mimetype == "text/html":
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
    return resp


def _https() -> bool:
    return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        given = request.form.get("token", "").strip().encode()
        if hmac.compare_digest(given, _token()):
            issued = str(int(time.time()))
            resp = redirect(url_for("admin.page"), 303)
            resp.set_cookie(
                COOKIE,
                f"{issued}.{_mac('session', issued)}",
                max_age=SESSION_SECONDS,
                httponly=True,
                samesite="Strict",
                secure=_https(),
                path="/admin",
            )
            return resp
        error = "Wrong token."
    return render_template("admin/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    resp = redirect(url_for("admin.login"), 303)
    resp.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="Strict", secure=_https())
    return resp


def _store(store: str) -> Runtime:
    rt = current_runtime()
    if store not in rt.settings.stores:
        abort(404, description="unknown store")
    return rt


@bp.get("/")
@bp.get("")  # registered first: url_for builds /admin
def page() -> ResponseReturnValue:
    rt = current_runtime()
    stores = []
    for sid in rt.settings.stores:
        view = activity.overview(rt.state, rt.settings.stores[sid])
        view.update(
            id=sid,
            recent=activity.recent(rt.state, sid, RECENT_SHOWN),
            dead=rt.state.dlq_page(sid, DLQ_SHOWN),
        )
        stores.append(view)
    return render_template(
        "admin/index.html",
        stores=stores,
        csrf=csrf_token(),
        note=request.args.get("note", "")[:200],
        quote=quote,
        now=time.time(),
        by=g.admin_by,
    )


@bp.get("/status")
def status() -> ResponseReturnValue:
    rt = current_runtime()
    return jsonify({sid: activity.overview(rt.state, s) for sid, s in rt.settings.stores.items()})


@bp.get("/dlq/<store>")
def dlq_list(store: str) -> ResponseReturnValue:
    return jsonify(_store(store).state.dlq_list(store))


@bp.post("/dlq/<store>/<any(replay, purge):action>")
@bp.post("/dlq/<store>/<path:pid>/<any(replay, purge):action>")
def dlq_act(store: str, action: str, pid: str | None = None) -> ResponseReturnValue:
    """Replay (back to pending, fresh retry budget) or purge one entry, or all of them."""
    rt = _store(store)
    pids = [pid] if pid is not None else rt.state.dlq_ids(store)
    if action == "purge":
        result: dict[str, list[str]] = {"purged": [p for p in pids if rt.state.dlq_purge(store, p)]}
    else:
        outcomes = {p: rt.state.dlq_replay(store, p) for p in pids}
        result = {
            "replayed": [p for p, o in outcomes.items() if o == "replayed"],
            "superseded": [p for p, o in outcomes.items() if o == "superseded"],
        }
        if pid is not None and outcomes[pid] == "missing":
            abort(404, description="no such dead letter")
    if g.admin_by == "cookie":  # a person at the page: back to it, saying what happened
        note = f"{store}: " + ", ".join(f"{k} {len(v)}" for k, v in result.items())
        return redirect(url_for("admin.page", note=note) + f"#store-{store}", 303)
    return jsonify(result)
