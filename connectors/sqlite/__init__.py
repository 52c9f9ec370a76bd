"""The SQLite endpoint: the embedded default, needing nothing but Python's ``sqlite3``.

Capture is by triggers into a change table (``_capture``), the row version of
a key is the sequence number of its latest change, and the service's own
writes are tagged by a session marker its apply transaction holds, so they
are never read back as edits. Public surface: :class:`SqliteEndpoint` and
:func:`open_endpoint` (the registry's entry point).
"""

from connectors.sqlite._endpoint import SqliteEndpoint, open_endpoint

__all__ = ["SqliteEndpoint", "open_endpoint"]
