"""``cdcsync review PIPELINE``: the review UI for data stewards (:mod:`sync.review`).

Registered on the main group at the end of :mod:`sync.cli`. Flask is imported
only when the command runs, so ``cdcsync --help`` stays quick.

Exit codes: 0 when stopped by SIGTERM or SIGINT; 2 for a usage or
configuration error (``--token-env`` naming an unset variable, a port in use).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
from typing import Any

import click

from sync.signals import from_handler

DEFAULT_TOKEN_ENV = "CDCSYNC_REVIEW_TOKEN"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; see --token-env).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--token-env", default=None, metavar="NAME",
              help=f"Environment variable holding the password every request must give by "
                   f"HTTP basic auth (the user name is recorded as who decided). Default: "
                   f"{DEFAULT_TOKEN_ENV}, if set; without a token anyone who reaches the port "
                   "may decide.")
@click.option("--proxies", default=0, show_default=True, type=click.IntRange(0, 10),
              help="Reverse proxies in front that set X-Forwarded-For/-Proto/-Host/-Prefix "
                   "(trust that many hops).")
def review(pipeline: str, host: str, port: int, token_env: str | None, proxies: int) -> None:
    """Serve the review UI: conflicts and quarantined rows, decided in a browser."""
    from sync.cli import EXIT_OK, EXIT_USAGE, _fail, _load

    cfg = _load(pipeline)
    token = os.environ.get(token_env or DEFAULT_TOKEN_ENV) or None
    if token_env and token is None:
        _fail(f"--token-env {token_env}: that environment variable is not set (or empty)",
              EXIT_USAGE)
    import logging

    from werkzeug.serving import make_server

    from sync.review.app import create_app

    # A server's access log and its decisions, whatever the CLI's quieter default.
    for name in ("werkzeug", "cdcsync.review"):
        logging.getLogger(name).setLevel(
            min(logging.INFO, logging.getLogger("cdcsync").getEffectiveLevel()))

    app = create_app(cfg, token=token, proxies=proxies)
    try:
        server = make_server(host, port, app, threaded=True, request_handler=_handler())
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE)
    _announce(server, host, token is not None)

    def stop(*_: Any) -> None:
        from_handler(server.shutdown)  # shutdown() waits for serve_forever to return

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    sys.exit(EXIT_OK)


def _handler() -> Any:
    """Werkzeug's request handler with a plain access log (no terminal colour codes)."""
    from werkzeug.serving import WSGIRequestHandler

    class PlainLog(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            self.log("info", '"%s" %s %s', self.requestline, code, size)

    return PlainLog


def _announce(server: Any, host: str, with_token: bool) -> None:
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"cdcsync review on http://{shown}:{server.server_port}/ "
               f"({'basic auth: your name and the review token' if with_token else 'no login'})",
               err=True)
    if not with_token and not _loopback(host):
        click.secho(f"warning: listening on {host} without a token: anyone who reaches this "
                    f"port can decide conflicts. Set {DEFAULT_TOKEN_ENV} or put an "
                    "authenticating proxy in front.", fg="yellow", err=True)
