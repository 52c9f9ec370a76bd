"""Who is deciding, and proof that a form was posted from our own page.

* **Basic auth.** With a token configured, every request but ``/healthz``
  needs HTTP basic auth whose password is the token; the user name is the
  *actor* recorded on every decision (``ann``). Without a token the actor is
  ``review@<remote address>`` and the app should only listen on loopback (the
  CLI's default) or behind a proxy that authenticates.
* **CSRF.** A random token lives in the Flask session (a cookie signed with a
  per-process secret by itsdangerous) and in a hidden field of every form; a
  POST without the matching token is refused with 400. Browsers send basic
  auth credentials on cross-site requests too, so auth alone would not stop
  a forged form.
* **Headers.** No framing, no scripts, no third-party anything.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, Response, abort, current_app, g, request, session

TOKEN_KEY = "CDCSYNC_REVIEW_TOKEN"
REALM = "cdcsync review"
CSRF_FIELD = "csrf_token"
MAX_ACTOR = 100  # conflicts.decided_by holds 128 characters
OPEN_ENDPOINTS = {"overview.healthz", "static"}

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def install(app: Flask, token: str | None) -> None:
    app.config[TOKEN_KEY] = token or None
    app.secret_key = secrets.token_bytes(32)
    app.config.update(
        SESSION_COOKIE_NAME="cdcsync_review",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.before_request(authenticate)
    app.before_request(check_csrf)
    app.after_request(harden)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["CSRF_FIELD"] = CSRF_FIELD


def actor() -> str:
    """Who is deciding in this request (set by :func:`authenticate`)."""
    return str(g.get("actor") or f"review@{request.remote_addr or 'unknown'}")


def _challenge(message: str) -> Response:
    resp = Response(message + "\n", status=401, mimetype="text/plain")
    resp.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return resp


def authenticate() -> Response | None:
    token: str | None = current_app.config.get(TOKEN_KEY)
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if token is None:
        g.actor = f"review@{request.remote_addr or 'unknown'}"
        return None
    auth = request.authorization
    if auth is None or auth.type != "basic" or not hmac.compare_digest(
            (auth.password or "").encode("utf-8"), token.encode("utf-8")):
        return _challenge("cdcsync review: log in with your name as the user name and the "
                          "review token as the password")
    user = (auth.username or "").strip()
    if not user or len(user) > MAX_ACTOR or not user.isprintable():
        return _challenge("cdcsync review: the user name is recorded as who decided: give your "
                          f"name (1 to {MAX_ACTOR} printable characters)")
    g.actor = user
    return None


def csrf_token() -> str:
    """This session's form token (created on first use)."""
    tok = session.get(CSRF_FIELD)
    if not isinstance(tok, str) or not tok:
        tok = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = tok
    return tok


def check_csrf() -> None:
    if request.method != "POST":
        return
    sent = request.form.get(CSRF_FIELD, "")
    have = session.get(CSRF_FIELD)
    if not isinstance(have, str) or not have or not hmac.compare_digest(
            sent.encode("utf-8"), have.encode("utf-8")):
        abort(400, description="This form is out of date or did not come from this review "
                               "page (the review server may have restarted). Reload the page "
                               "and decide again.")


def harden(resp: Response) -> Response:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if request.method == "GET" and resp.mimetype == "text/html":
        resp.headers.setdefault("Cache-Control", "no-store")  # pages hold live data
    return resp
