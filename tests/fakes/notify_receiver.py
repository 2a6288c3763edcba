"""A loopback receiver for alerts: Apprise's ``json://127.0.0.1:PORT/path`` POSTs land here.

Apprise's JSON plugin POSTs ``{"version", "title", "message", "type", "attachments"}`` to the
URL's path (user:password as HTTP basic auth).  ``mode`` says how the receiver answers:
``ok`` (200), ``error`` (500) or ``silent`` (reads the request, never answers until it is
closed, at most ``hold_seconds``).  Every POST is recorded in ``posts`` (path, JSON body,
Authorization header), in arrival order; ``on_post(post)``, when set, is called as each arrives
(a test can look at the state of a run at the moment its alert lands).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class NotifyReceiver:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; use it as a context manager."""

    def __init__(self, mode: str = "ok", hold_seconds: float = 10.0):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's name)
                owner._answer(self)

            def log_message(self, *args):  # keep test output clean
                pass

        self.mode, self.hold_seconds = mode, hold_seconds
        self.posts: list[dict] = []
        self.on_post = None
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self._closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def url(self, path: str = "/alerts", auth: str | None = None, query: str = "") -> str:
        """The Apprise URL of this receiver: ``json://[auth@]127.0.0.1:PORT/path[?query]``."""
        return f"json://{auth + '@' if auth else ''}127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def __enter__(self) -> "NotifyReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()  # releases a silent handler
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        """The posts, once at least ``count`` have arrived (or ``timeout`` s passed)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout)
            return list(self.posts)

    def titles(self) -> list[str]:
        with self.lock:
            return [p["json"].get("title", "") for p in self.posts]

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"unparsed": raw.decode(errors="replace")}
        post = {"path": h.path, "json": body, "authorization": h.headers.get("Authorization")}
        if self.on_post is not None:
            post["seen"] = self.on_post(post)
        with self.arrived:
            self.posts.append(post)
            self.arrived.notify_all()
        if self.mode == "silent":
            self._closing.wait(self.hold_seconds)
            h.close_connection = True
            return
        status = 500 if self.mode == "error" else 200
        data = b'{"error": "Internal Server Error"}' if status == 500 else b"{}"
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
