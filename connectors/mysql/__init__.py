"""MySQL/MariaDB connector: ROW-binlog source and batched, conditional sink.

Imported only when a pipeline uses ``kind: mysql`` (see ``connectors/registry.py``).
"""

from connectors.mysql.endpoint import MysqlEndpoint, open_endpoint
from connectors.mysql.sink import MysqlSink
from connectors.mysql.source import MysqlSource

__all__ = ["MysqlEndpoint", "MysqlSink", "MysqlSource", "open_endpoint"]
