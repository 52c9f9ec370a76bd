"""The daemon's HTTP endpoints: ``/metrics``, ``/healthz`` and ``/readyz``.

A stdlib :class:`~http.server.ThreadingHTTPServer` in a daemon thread; no
framework. ``/metrics`` serves :data:`sync.metrics.REGISTRY` in the
Prometheus text format (or OpenMetrics when the scraper asks for it);
``/healthz`` and ``/readyz`` call the daemon's callbacks and answer 200 with
their JSON when the returned dict has a true ``"ok"``, else 503 (also when
the callback raises, with the error in the body).

Liveness (``/healthz``) should only fail when a restart would help (a stuck
reader thread); readiness (``/readyz``) when this process should not get
work (the state store or broker is unreachable, still starting up).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("cdcsync.http")

Check = Callable[[], dict[str, Any]]


class Server:
    """A running endpoint server; :meth:`close` stops it (also as a context manager)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the one picked when ``serve`` was given port 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and wait for the serving thread."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(host: str, port: int, *, health: Check, ready: Check) -> Server:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread.

    ``port=0`` picks a free port: read it from :attr:`Server.port`. The
    callbacks run in the request's thread and must be quick and thread-safe.
    Raises :class:`OSError` when the address cannot be bound.
    """
    handler = type("Handler", (_Handler,), {"checks": {"/healthz": health, "/readyz": ready}})
    server_cls = _Server6 if ":" in host else _Server
    httpd = server_cls((host, port), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                              name=f"cdcsync-http-{httpd.server_address[1]}", daemon=True)
    thread.start()
    log.info("serving /metrics, /healthz and /readyz on %s:%d", host, httpd.server_address[1])
    return Server(httpd, thread)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    checks: dict[str, Check] = {}
    server_version = "cdcsync"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        url = urlsplit(self.path)
        if url.path == "/metrics":
            status, ctype, data = self._metrics(url.query)
        elif url.path in self.checks:
            status, ctype, data = self._check(self.checks[url.path])
        else:
            status, ctype, data = 404, "text/plain; charset=utf-8", b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _metrics(self, query: str) -> tuple[int, str, bytes]:
        from prometheus_client.exposition import choose_encoder

        from sync.metrics import REGISTRY

        encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
        names = parse_qs(query).get("name[]")
        registry: Any = REGISTRY.restricted_registry(names) if names else REGISTRY
        return 200, ctype, encoder(registry)

    @staticmethod
    def _check(fn: Check) -> tuple[int, str, bytes]:
        try:
            result = dict(fn())
        except Exception as exc:  # a failing check is an unhealthy answer, not a 500
            log.warning("health check failed: %s: %s", type(exc).__name__, exc)
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        status = 200 if result.get("ok") else 503
        data = json.dumps(result, default=str, sort_keys=True).encode() + b"\n"
        return status, "application/json", data

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
