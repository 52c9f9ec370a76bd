"""The review app: :func:`create_app` for one pipeline, its error pages and filters."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from sync.review import conflicts, format, overview, pipeline, quarantine, security

log = logging.getLogger("cdcsync.review")


def create_app(cfg: Any, *, token: str | None = None, proxies: int = 0) -> Flask:
    """A WSGI app serving the review pages of the pipeline ``cfg`` (``config.PipelineConfig``).

    Parameters
    ----------
    token:
        With a token, every request (but ``/healthz``) needs HTTP basic auth
        with it as the password; the user name is recorded as who decided.
        Without one, the decider is ``review@<remote address>``.
    proxies:
        How many reverse proxies in front of the app set ``X-Forwarded-For``,
        ``-Proto``, ``-Host`` and ``-Prefix``: those headers are trusted from
        that many hops (remote address for the actor, links under a sub-path).
        0 (default) trusts none.
    """
    app = Flask("sync.review", template_folder="templates", static_folder=None)
    app.config[pipeline.CONFIG_KEY] = cfg
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20  # forms only: a note, a few radio buttons
    app.jinja_env.autoescape = True  # every template is .html already; be explicit
    app.jinja_env.filters.update(when=format.when, key=format.key, text=format.text_of,
                                 op=quarantine.op_label)
    app.jinja_env.globals["pipeline_name"] = str(cfg.pipeline)
    app.jinja_env.globals["actor"] = security.actor
    security.install(app, token)
    if token:
        from sync.logs import register_secrets

        register_secrets([token])
    for bp in (overview.bp, conflicts.bp, quarantine.bp):
        app.register_blueprint(bp)
    app.teardown_appcontext(pipeline.close_store)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_prefix=proxies)
    return app


def _http_error(exc: HTTPException) -> Any:
    if exc.code is None or exc.code < 400 or exc.response is not None:
        return exc
    html = render_template("error.html", code=exc.code, title=exc.name,
                           message=exc.description or "")
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return html, exc.code, headers


def _unexpected(exc: Exception) -> Any:
    """Anything else: logged with its traceback, shown as one line without one.

    A connector's error (an endpoint unreachable, a permanent apply failure)
    names what failed and is safe to show; anything else is described by its
    type only, since its text may hold what a page should not.
    """
    from connectors.base import ConnectorError

    log.error("review: %s %s failed", request.method, request.path, exc_info=exc)
    if isinstance(exc, ConnectorError):
        message = f"An endpoint failed: {exc}."
    else:
        message = (f"Internal error ({type(exc).__name__}); the review server's log has the "
                   "details.")
    if request.method == "POST":
        message += " Go back and reload the page to see whether the decision was recorded."
    return render_template("error.html", code=500, title=InternalServerError.name,
                           message=message), 500
