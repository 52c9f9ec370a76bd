"""Recognising and masking secrets in configuration values.

Used by :func:`config.render_config` and by the models' ``repr`` so that a
password never reaches a terminal or a log by way of the configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

#: Setting names whose value is a secret wherever they appear.
SECRET_KEYS = frozenset({"password", "secret", "client_secret", "token", "api_key"})

# The password of a libpq key=value connection string: password=x or password='x y'.
_CONNINFO_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)")
# scheme:// -- or scheme:/ and scheme:///, so that a URL missing or doubling a slash
# (a mistake config check reports, echoing the value) is still masked.
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/{1,3}")
# A URL within a longer text (a message): up to a blank or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/{1,3}[^\s'\"<>]+")

# Secrets shorter than this are masked only where they are a whole value, since
# replacing every occurrence of one or two characters would garble the output.
_MIN_SUBSTRING_SECRET = 3


def is_secret_key(name: object) -> bool:
    return isinstance(name, str) and name.lower() in SECRET_KEYS


def url_password_span(text: str) -> tuple[int, int] | None:
    """Where the password of ``scheme://user:password@host/...`` is in ``text``.

    The user information ends at the last ``@`` before any ``?`` or ``#``, so a
    password that (wrongly) is not percent-encoded and contains ``/`` or ``@``
    is still found whole.
    """
    m = _URL_SCHEME.search(text)
    if m is None:
        return None
    start = m.end()
    cut = len(text)
    for stop in "?#":
        i = text.find(stop, start)
        if i != -1:
            cut = min(cut, i)
    at = text.rfind("@", start, cut)
    if at == -1:
        return None
    colon = text.find(":", start, at)
    if colon == -1:
        return None
    return colon + 1, at


def _mask_url(m: re.Match[str]) -> str:
    url = m.group(0)
    span = url_password_span(url)
    if span is None or span[0] == span[1]:
        return url
    return url[: span[0]] + MASK + url[span[1] :]


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords, ``password=`` of conninfo strings and known secret values.

    A text that is one URL has its password masked up to the last ``@`` (see
    :func:`url_password_span`); in a longer text (an error message) every URL is,
    each ending at a blank or a quote.
    """
    for secret in sorted(set(secrets), key=len, reverse=True):
        if not secret:
            continue
        if text == secret:
            return MASK
        if len(secret) >= _MIN_SUBSTRING_SECRET:
            text = text.replace(secret, MASK)
    span = url_password_span(text)
    if span is not None and span[0] < span[1] and _URL_SCHEME.match(text):
        text = text[: span[0]] + MASK + text[span[1] :]
    else:
        text = _URL_IN_TEXT.sub(_mask_url, text)
    return _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


def secrets_in(value: Any) -> set[str]:
    """The secrets written in a JSON-like tree (a pipeline file's data): values of
    secret settings, URL passwords, conninfo ``password=`` values.

    A password holding an ``@`` is also given in its ``@``-separated parts: a driver
    that splits the URL at the first ``@`` shows the rest as a host name.
    """
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if is_secret_key(k) and isinstance(v, str | int | float) and v != "":
                found.add(str(v))
            found |= secrets_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            found |= secrets_in(v)
    elif isinstance(value, str):
        span = url_password_span(value)
        if span is not None and span[0] < span[1]:
            found.add(value[span[0] : span[1]])
        for m in _CONNINFO_PASSWORD.finditer(value):
            found.add(m.group(2).strip("'"))
        found |= {part for secret in found if "@" in secret for part in secret.split("@")}
    return {s for s in found if s}


def mask_tree(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like tree with every secret masked (see :func:`mask_text`)."""
    known = frozenset(secrets)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if is_secret_key(k) and v not in (None, ""):
                out[k] = MASK
            else:
                out[k] = mask_tree(v, known)
        return out
    if isinstance(value, list | tuple):
        return [mask_tree(v, known) for v in value]
    if isinstance(value, str):
        return mask_text(value, known)
    return value
