"""Connection URLs and DSNs checked when the pipeline file is loaded.

A URL that no driver can use is a configuration error, reported with the file,
line and field, rather than a driver's exception at the first connection
(which named neither the endpoint nor the setting, and echoed the password).
The drivers are imported only here, inside the checks: the messages they give
are masked by the loader like every other problem's.
"""

from __future__ import annotations

_AT_HINT = ("the URL's user name or password holds an '@' that is not percent-encoded"
            " (drivers end the password at the first '@' and take the rest for the host):"
            " write it as %40")


def unencoded_at(url: str) -> bool:
    """Does the user information of ``scheme://user:pass@host/...`` hold a raw ``@``?

    An ``@`` with a ``/`` between it and the last ``@`` is taken for one in the path
    (``sqlite:///a@b/c@d.db``), not reported.
    """
    start = url.find("://")
    if start == -1:
        return False
    start += 3
    cut = min((i for i in (url.find("?", start), url.find("#", start)) if i != -1),
              default=len(url))
    first, last = url.find("@", start, cut), url.rfind("@", start, cut)
    return first != last and "/" not in url[first:last]


def postgres_dsn_problem(dsn: str) -> str | None:
    """Why libpq cannot use ``dsn`` (a URL or key=value string), or ``None``."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    if unencoded_at(dsn):
        return _AT_HINT
    try:
        conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        return f"not a valid PostgreSQL connection string: {str(exc).strip()}"
    return None


def sqlalchemy_url_problem(url: str) -> str | None:
    """Why SQLAlchemy cannot use ``url``, or ``None``; no connection is made.

    The dialect is loaded (a plugin lookup), not its driver: a driver that is not
    installed is still reported when the store is opened.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if unencoded_at(url):
        return _AT_HINT
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "should be an SQLAlchemy URL like sqlite:///state.db"
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        return (f"unknown database {parsed.drivername!r}: SQLAlchemy has no dialect of that"
                " name (e.g. sqlite:///state.db, postgresql+psycopg://host/db,"
                " mysql+pymysql://host/db)")
    return None
