"""Sentry: errors of the web app and the workers, with secrets and payloads scrubbed before an
event leaves the process."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.logging_setup import scrub

_DROP_HEADERS = {"authorization", "x-shopify-hmac-sha256", "x-wc-webhook-signature",
                 "webhook-signature", "svix-signature", "cookie"}


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """Never ship a request body (store payloads), a signature or a key to Sentry."""
    req = event.get("request")
    if isinstance(req, dict):
        req.pop("data", None)
        req.pop("cookies", None)
        headers = req.get("headers")
        if isinstance(headers, dict):
            req["headers"] = {
                k: ("[redacted]" if k.lower() in _DROP_HEADERS else v) for k, v in headers.items()
            }
    return scrub(event)


def init_sentry(settings: Settings, component: str) -> bool:
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        max_request_body_size="never",
        include_local_variables=False,
        before_send=before_send,
        integrations=[FlaskIntegration(), CeleryIntegration(monitor_beat_tasks=False)],
    )
    sentry_sdk.set_tag("component", component)
    return True


def report(message: str, **context: Any) -> None:
    """Send one message-level event (e.g. the first 401 of an account)."""
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        for k, v in scrub(context).items():
            scope.set_extra(k, v)
        sentry_sdk.capture_message(message, level="error")
