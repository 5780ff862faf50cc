"""A local Sentry: a real HTTP server that accepts what the real sentry-sdk sends (envelopes
to `/api/<project>/envelope/`, gzip or brotli or plain) and parses them per the envelope
format (develop.sentry.dev/sdk/data-model/envelopes/: a JSON header line, then per item a
JSON header line and a payload of `length` bytes, or up to the next newline)."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Envelope:
    headers: dict[str, Any]
    items: list[Item] = field(default_factory=list)


def parse_envelope(raw: bytes) -> Envelope:
    head, _, rest = raw.partition(b"\n")
    env = Envelope(json.loads(head))
    while rest.strip():
        item_head, _, rest = rest.partition(b"\n")
        headers = json.loads(item_head)
        length = headers.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        env.items.append(Item(headers, payload))
    return env


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only when the SDK found brotli installed

        return brotli.decompress(body)
    return body


class SentryReceiver:
    def __init__(self) -> None:
        self.raw: list[bytes] = []  # every envelope, decompressed, as received
        self.envelopes: list[Envelope] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raw = _decode(body, self.headers.get("Content-Encoding", ""))
                with receiver.lock:
                    receiver.raw.append(raw + b"\n" + str(self.headers).encode())
                    receiver.envelopes.append(parse_envelope(raw))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://publickey@127.0.0.1:{self.server.server_port}/1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def items(self, type_: str) -> list[Item]:
        with self.lock:
            return [i for e in self.envelopes for i in e.items if i.type == type_]

    def events(self) -> list[dict[str, Any]]:
        return [i.json() for i in self.items("event")]

    def checkins(self) -> list[dict[str, Any]]:
        return [i.json() for i in self.items("check_in")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
