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
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

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


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords, ``password=`` of conninfo strings and known secret values."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if not secret:
            continue
        if text == secret:
            return MASK
        if len(secret) >= _MIN_SUBSTRING_SECRET:
            text = text.replace(secret, MASK)
    span = url_password_span(text)
    if span is not None and span[0] < span[1]:
        text = text[: span[0]] + MASK + text[span[1] :]
    return _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


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
