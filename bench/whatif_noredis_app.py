"""Upper-bound what-if for bench/ingest.py (measurement only, the app is not changed): the
real `app:create_app()` with `State.record` reduced to serializing the pending doc and
answering "accepted", i.e. without its Redis round trip. What the app gains from this is the
most any change to the Redis step (client, script, round trips) could give the web process.
Served as `gunicorn bench.whatif_noredis_app:create_app()`."""

from __future__ import annotations

from app.core import state


def _record(self, ev, received_at=None, keep_raw=True, *_args, **_kwargs):
    if ev.product is not None:
        try:
            ev.product.to_json(keep_raw)
        except TypeError:  # an older Product.to_json without keep_raw
            ev.product.to_json()
    return state.Recorded.ACCEPTED_WAKE


state.State.record = _record  # type: ignore[method-assign]

from app import create_app  # noqa: E402

__all__ = ["create_app"]
