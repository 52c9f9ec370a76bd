"""Logging of cdcsync: text or JSON lines, a context that follows a batch, secrets masked.

* :func:`configure` installs one handler (text, or JSON lines with
  ``--log-json``) for the ``cdcsync`` loggers and the libraries' logs.
* :func:`log_context` sets fields (``batch_id``, ``pipeline``, ``entity``,
  ``endpoint``, anything else) that every log line inside the block carries.
  They live in a :class:`contextvars.ContextVar`, which a new thread does not
  inherit: to let a batch id set where the batch was read follow it to the
  apply in a worker thread or process, put :func:`current_context` in the
  task message and open ``log_context(**message["log"])`` in the worker.
* A filter masks passwords (``password=...``, ``"password": ...``, URL
  user-info, bearer tokens and values registered with
  :func:`register_secrets`) in every message and traceback.

Only the standard library is imported here: the CLI configures logging before
any command runs and must start at once.
"""

from __future__ import annotations

import json as _json
import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

MASK = "***"  # as config.secrets.MASK (not imported: config pulls pydantic in)

#: The context fields every line names when they are set, in this order.
FIELDS = ("batch_id", "pipeline", "entity", "endpoint")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("cdcsync_log_context", default=_EMPTY)


# --- the context that follows a batch ---------------------------------------------------


@contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Add ``fields`` to every log line inside the block (nested blocks add to outer ones).

    A field given as ``None`` is removed for the block. Yields the whole
    context now in force. Values should be JSON-safe (they travel in task
    messages).
    """
    merged = dict(_context.get())
    for name, value in fields.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    token = _context.set(MappingProxyType(merged))
    try:
        yield dict(merged)
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    """A copy of the fields in force, to carry in a task message to another thread or process."""
    return dict(_context.get())


def new_batch_id() -> str:
    """A fresh batch id: 16 hex digits, unique enough to grep a batch's lines across processes."""
    return uuid.uuid4().hex[:16]


# --- secrets ----------------------------------------------------------------------------

_SECRET_NAME = (r"[\w.-]*(?:password|passwd|pwd|secret|api[_-]?key"
                r"|access[_-]?token|refresh[_-]?token|auth[_-]?token)")
_VALUE = r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;&'"})\]]+)"""
# password=x, password = 'x y', PGPASSWORD=x, ?password=x&, secret_key=x
_KEY_EQUALS = re.compile(rf"(?i)(\b{_SECRET_NAME}\s*=\s*){_VALUE}")
# 'password': 'x', "client_secret": "x" (dict reprs, JSON)
_KEY_COLON = re.compile(rf"""(?i)(["']{_SECRET_NAME}["']\s*:\s*){_VALUE}""")
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/-]+=*)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")

_known: tuple[str, ...] = ()  # longest first; replaced whole, so readers need no lock
_known_lock = threading.Lock()
_MIN_KNOWN = 3  # shorter registered secrets would garble every line (as config/secrets.py)


def register_secrets(values: Iterable[str]) -> None:
    """Mask these exact values wherever they appear (e.g. the config's ``${ENV}`` secrets)."""
    global _known
    with _known_lock:
        new = {v for v in values if isinstance(v, str) and len(v) >= _MIN_KNOWN}
        _known = tuple(sorted(new.union(_known), key=len, reverse=True))


def _mask_url(m: re.Match[str]) -> str:
    url = m.group(0)
    start = url.index("://") + 3
    cut = len(url)
    for stop in "?#":
        i = url.find(stop, start)
        if i != -1:
            cut = min(cut, i)
    at = url.rfind("@", start, cut)  # user-info ends at the last @: unencoded @ in a password
    colon = url.find(":", start, at) if at != -1 else -1
    if colon == -1 or colon + 1 == at:
        return url
    return url[: colon + 1] + MASK + url[at:]


def mask_secrets(text: str) -> str:
    """``text`` with passwords, URL passwords, bearer tokens and registered secrets masked."""
    for secret in _known:
        text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL.sub(_mask_url, text)
    text = _KEY_EQUALS.sub(lambda m: m.group(1) + MASK, text)
    text = _KEY_COLON.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def without_password(message: str, password: str, host: str) -> str:
    """A driver's ``message`` about a connection whose settings hold ``password`` and
    ``host``: without the password, nor the part of one holding a raw ``@`` that the
    driver (ending the password at the first ``@`` of a URL) took for, and quoted as,
    the host's, and masked as :func:`mask_secrets` does."""
    if len(password) >= _MIN_KNOWN:  # (shorter, replacing it would garble the message)
        message = message.replace(password, MASK)
    leaked = host.rpartition("@")[0]
    if leaked:
        message = message.replace(f"{leaked}@", f"{MASK}@")
    return mask_secrets(message)


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    _plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


class ContextFilter(logging.Filter):
    """Attaches the fields of :func:`log_context` to a record, in the thread that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "cdcsync_context"):
            record.cdcsync_context = dict(_context.get())
        return True


# --- formats ----------------------------------------------------------------------------

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "cdcsync_context", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Context fields, then ``extra=`` fields of the call: the four known ones first."""
    found: dict[str, Any] = dict(getattr(record, "cdcsync_context", None) or _context.get())
    for name, value in record.__dict__.items():
        if name not in _STANDARD and not name.startswith("_"):
            found[name] = value
    tracing = sys.modules.get("sync.tracing")  # trace ids only once tracing is in use
    if tracing is not None:
        found.update(tracing.current_ids())
    ordered = {f: found.pop(f) for f in FIELDS if found.get(f) is not None}
    ordered.update((k, v) for k, v in found.items() if v is not None)
    return ordered


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (ISO 8601 UTC), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message [batch_id=... pipeline=...]`` for people."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if not fields:
            return line
        suffix = " ".join(f"{k}={v}" for k, v in fields.items())
        head, sep, rest = line.partition("\n")  # keep a traceback below the first line
        return f"{head} [{suffix}]{sep}{rest}"


# --- installing it ----------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    try:
        return logging.getLevelNamesMapping()[level.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None


def configure(json: bool = False, level: int | str = logging.INFO, *,
              stream: TextIO | None = None, libraries: int | str | None = None) -> logging.Handler:
    """Send logs to ``stream`` (standard error by default) as text or JSON lines.

    ``level`` applies to the ``cdcsync`` loggers; ``libraries`` to everything
    else (dramatiq, SQLAlchemy, drivers), by default the same as ``level``.
    The handler sits on the root logger so libraries' lines share the format,
    and calling this again replaces it (one handler, never duplicates). It
    masks secrets (:class:`SecretFilter`) and carries :func:`log_context`.
    Returns the handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_cdcsync", False)]:
        root.removeHandler(old)
    handler: logging.Handler = (_StderrHandler() if stream is None
                                else logging.StreamHandler(stream))
    handler._cdcsync = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretFilter())
    root.addHandler(handler)
    own = _level(level)
    others = own if libraries is None else _level(libraries)
    root.setLevel(others)
    logging.getLogger("cdcsync").setLevel(own if own != others else logging.NOTSET)
    return handler


def handoff() -> dict[str, Any]:
    """This process's log set-up and registered secrets, for a child process to take
    on (:func:`take_on`): a spawned process starts with neither."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_cdcsync", False)]
    return {
        "configured": bool(ours),
        "json": bool(ours) and isinstance(ours[0].formatter, JsonFormatter),
        "level": logging.getLogger("cdcsync").getEffectiveLevel(),
        "libraries": root.level,
        "secrets": _known,
    }


def take_on(setup: dict[str, Any]) -> None:
    """Log as the parent process whose :func:`handoff` this is."""
    register_secrets(setup["secrets"])
    if setup["configured"]:
        configure(json=setup["json"], level=setup["level"], libraries=setup["libraries"])
