"""HTTP side of the Personyze sandbox, on the stdlib `ThreadingHTTPServer`.

Plain http.server rather than Flask because the faults need raw socket control (closing a
connection after committing a write, without any answer), and because `self.path` is the
raw request target: the where-parser must see the still-encoded path (see store.py).
HTTP/1.1 keep-alive with exact Content-Length, so a client's connection pool is exercised
the way it is against the real API.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import json
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

from .faults import FAULT_NAMES, Faults
from .store import BadRequest, Store, parse_modifiers, project

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "SANDBOX" + "0" * 30 + "KEY"
"""A fake 40-character key (real Personyze keys are 40 characters)."""
DEFAULT_PORT = 8099
MAX_BODY = 16 * 1024 * 1024
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
ACCOUNT = {"id": 1, "name": "Sandbox"}


class LogEntry(NamedTuple):
    """One served request; status 0 means the connection was dropped unanswered."""

    time: float
    method: str
    path: str
    status: int


class _Reply(NamedTuple):
    status: int
    body: str
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()


def _json_reply(value: Any) -> _Reply:
    return _Reply(200, json.dumps(value), JSON)


def _parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """JSON whatever the content type (`curl --data` labels JSON as a form); a real
    `a=1&b=2` form body is accepted as the documented legacy fallback."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("Body is not valid UTF-8") from exc
    if not text.strip():
        raise BadRequest("Empty body: expected a JSON object")
    try:
        data = json.loads(text)
    except ValueError as exc:
        is_form = "application/x-www-form-urlencoded" in content_type.lower()
        if is_form and not text.lstrip().startswith(("{", "[", '"')) and "=" in text:
            data = dict(parse_qsl(text, keep_blank_values=True))
        else:
            raise BadRequest(f"Malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("Body must be a JSON object")
    return data


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        if ":" in sandbox.host:
            self.address_family = socket.AF_INET6
        super().__init__((sandbox.host, sandbox.port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake keep-alive handler threads blocked on idle sockets so stop() is clean."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # BaseHTTPRequestHandler's own pending header lines (typeshed does not declare it)
    _headers_buffer: list[bytes]

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox %s - " + format, self.address_string(), *args)

    # -- plumbing --------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise OverflowError
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise OverflowError
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: _Reply) -> int:
        data = reply.body.encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers:
                self.send_header(name, value)
            # headers and body in one write: two small writes meet Nagle + delayed ACK
            self._headers_buffer.append(b"\r\n" + data)
            self.flush_headers()
        except OSError:
            self.close_connection = True
        return reply.status

    def _drop(self) -> None:
        """Close the socket without a byte of answer: the client cannot know the outcome."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"api:{self.server.sandbox.api_key}".encode()
        return hmac.compare_digest(decoded, expected)

    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        raw_path = self.path.split("?", 1)[0]
        try:
            body = self._read_body()
        except OverflowError:
            self.close_connection = True
            self._send(_Reply(413, "Request body too large"))
            return
        except ValueError:
            self.close_connection = True
            self._send(_Reply(400, "Malformed request body framing"))
            return
        if raw_path.startswith("/_control/"):
            self._send(self._control(method, raw_path, body))
            return
        reply = self._serve(method, raw_path, body)
        # logged before answering, so a client that got its answer always finds the entry
        sandbox.record(method, raw_path, 0 if reply is None else reply.status)
        # latency sits between commit and answer: a slow call is "in flight" and logged
        if sandbox.faults.latency_ms:
            time.sleep(sandbox.faults.latency_ms / 1000.0)
        if reply is None:
            self._drop()
        else:
            self._send(reply)

    # -- the emulated API -------------------------------------------------------------

    def _serve(self, method: str, raw_path: str, body: bytes) -> _Reply | None:
        """The answer to send, or None to drop the connection unanswered."""
        faults = self.server.sandbox.faults
        remaining = faults.forced_503_remaining()
        if remaining > 0:
            return self._503(faults, max(1, math.ceil(remaining)))
        wait = faults.rate_limit_wait()
        if wait is not None:
            return self._503(faults, wait)
        if not self._authorized():
            return _Reply(
                401, "Please, log in", headers=(("WWW-Authenticate", 'Basic realm="api"'),)
            )
        if faults.roll(faults.error_503_rate):
            return self._random_503(faults)
        if faults.roll(faults.error_400_rate):
            return _Reply(400, "Rejected input (sandbox fault)")
        if faults.roll(faults.error_500_rate):
            return _Reply(500, faults.error_500_text)
        if faults.roll(faults.drop_before_commit_rate):
            return None
        try:
            reply = self._handle(method, raw_path, body)
        except BadRequest as exc:
            as_500 = faults.permanent_errors_as_500 and method != "GET"
            reply = _Reply(500 if as_500 else 400, str(exc))
        except Exception:  # a sandbox bug must look like a Personyze 500, not hang the client
            log.exception("sandbox: unhandled error for %s %s", method, raw_path)
            reply = _Reply(500, "Internal server error")
        if faults.roll(faults.drop_after_commit_rate):
            return None
        return reply

    @staticmethod
    def _503(faults: Faults, seconds: float) -> _Reply:
        """Personyze's 503: "stand by a number of seconds", the number in the body."""
        text = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
        headers = (("Retry-After", text),) if faults.retry_after_header else ()
        return _Reply(503, text, headers=headers)

    def _random_503(self, faults: Faults) -> _Reply:
        if faults.retry_after_503 is None:
            return _Reply(503, "Service temporarily unavailable")
        return self._503(faults, faults.retry_after_503)

    def _handle(self, method: str, raw_path: str, body: bytes) -> _Reply:
        store = self.server.sandbox.store
        segments = raw_path.split("/")
        if len(segments) < 3 or segments[0] != "" or segments[1] != "rest" or not segments[2]:
            return _Reply(404, "Not found")
        obj = unquote(segments[2])
        if obj == "account":
            if method != "GET":
                raise BadRequest("account is read-only")
            return _json_reply(ACCOUNT)
        if obj not in store.tables:
            raise BadRequest(f"Unknown object: {obj!r}")
        q = parse_modifiers(segments[3:])
        if method == "GET":
            rows = store.select(obj, q)
            if q.id is None:
                return _json_reply(project(rows, q))
            if not rows:
                raise BadRequest("Row not found")
            return _json_reply(project(rows[:1], q)[0])
        content_type = self.headers.get("Content-Type", "")
        if method == "POST":
            if q.id is not None or q.where is not None:
                raise BadRequest("POST takes no id or where; it inserts (or upserts) one row")
            return _json_reply(store.insert(obj, _parse_body(body, content_type)))
        if q.id is None and q.where is None:
            raise BadRequest(f"{method} needs an id or a where condition")
        if method == "PUT":
            return _json_reply(store.update(obj, q, _parse_body(body, content_type)))
        return _json_reply(store.delete(obj, q))

    # -- control endpoints ---------------------------------------------------------------

    def _control(self, method: str, raw_path: str, body: bytes) -> _Reply:
        sandbox = self.server.sandbox
        if not self._authorized():
            return _Reply(401, "Please, log in")
        name = raw_path[len("/_control/") :].strip("/")
        if name == "faults" and method == "GET":
            return _json_reply(sandbox.faults.as_dict())
        if name == "faults" and method == "POST":
            try:
                sandbox.faults.update(**_parse_body(body, "application/json"))
            except BadRequest as exc:
                return _Reply(400, str(exc))
            except (TypeError, ValueError) as exc:
                return _Reply(400, f"Bad fault settings: {exc}")
            return _json_reply(sandbox.faults.as_dict())
        if name == "log" and method == "GET":
            return _json_reply([e._asdict() for e in list(sandbox.request_log)])
        if name == "reset" and method == "POST":
            sandbox.reset()
            return _json_reply({"ok": True})
        return _Reply(404, f"Unknown control endpoint: {method} {raw_path}")


class Sandbox:
    """A local Personyze: `with Sandbox(rate_limit=5) as sb: PersonyzeClient(sb.api_key,
    sb.url)`. Keyword arguments beyond host/port/key are fault settings (faults.py)."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        **faults: Any,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.store = Store()
        self.faults = Faults(**faults)
        self.request_log: list[LogEntry] = []
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r})"

    @property
    def root_url(self) -> str:
        """`http://host:port` without the `/rest` prefix (the control endpoints live here)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL to give a PersonyzeClient, e.g. `http://127.0.0.1:8099/rest`."""
        return f"{self.root_url}/rest"

    def start(self) -> Sandbox:
        """Bind (port 0 picks a free port) and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"personyze-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Block until stopped (Ctrl-C from the CLI)."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, method: str, path: str, status: int) -> None:
        with self._log_lock:
            self.request_log.append(LogEntry(time.time(), method, path, status))

    def clear_log(self) -> None:
        with self._log_lock:
            self.request_log.clear()

    def rows(self, obj: str) -> list[dict[str, Any]]:
        """Every row of `obj` (copies), ordered by primary key."""
        return self.store.rows(obj)

    def reset(self) -> None:
        """Empty tables, request log and faults: a fresh Personyze account."""
        self.store.reset()
        self.clear_log()
        self.faults.reset()


# -- command line --------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sandbox options, reusable by the `personyze-sync sandbox` subcommand."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    f = parser.add_argument_group("faults")
    f.add_argument("--rate-limit", type=float, default=None, help="requests/second, else 503")
    f.add_argument(
        "--retry-after-header",
        action="store_true",
        help="503s also carry their seconds in a Retry-After header (default: body only)",
    )
    f.add_argument("--error-400-rate", type=float, default=0.0, help="0..1")
    f.add_argument("--error-500-rate", type=float, default=0.0, help="0..1")
    f.add_argument(
        "--error-500-text", default=Faults.error_500_text, help="plain-text body of those 500s"
    )
    f.add_argument(
        "--permanent-errors-as-500",
        action="store_true",
        help="rejected writes answer 500 with their text instead of 400",
    )
    f.add_argument("--error-503-rate", type=float, default=0.0, help="0..1")
    f.add_argument("--retry-after-503", type=float, default=None, help="seconds, random 503s")
    f.add_argument("--latency-ms", type=float, default=0.0)
    f.add_argument("--drop-before-commit-rate", type=float, default=0.0, help="0..1")
    f.add_argument("--drop-after-commit-rate", type=float, default=0.0, help="0..1")
    f.add_argument("--force-503-for", type=float, default=0.0, help="seconds from start")
    f.add_argument("--seed", type=int, default=None, help="seed for random faults")


def sandbox_from_args(args: argparse.Namespace) -> Sandbox:
    faults = {name: getattr(args, name) for name in FAULT_NAMES}
    return Sandbox(api_key=args.api_key, host=args.host, port=args.port, **faults)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM."""
    sandbox = sandbox_from_args(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:  # a SIGTERM may come at any point after the handler is in place
        sandbox.start()
        auth_url = sandbox.url.replace("http://", f"http://api:{sandbox.api_key}@", 1)
        print(f"Personyze sandbox serving {sandbox.url} (user 'api', key {sandbox.api_key})")
        print(f"  try: curl '{auth_url}/placeholders'", flush=True)
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sandbox.server --port 8099 --rate-limit 5`."""
    parser = argparse.ArgumentParser(prog="personyze-sandbox", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
